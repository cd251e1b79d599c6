"""The outbound xAPI queue: statements waiting for the configured LRS, each with its own retry schedule,
and the ones the LRS refused (dead letters).

The first revision of the store schema ``xapi_outbox``. A database migrated by a release before issue #21
already has the table (the core's revision 0005_xapi_outbox created it): it is adopted as it is, with every row.

Revision ID: xapi_outbox_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from trm_modules.store.schema import missing_tables

revision = "xapi_outbox_0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    if not missing_tables(op.get_bind(), ["xapi_outbox"]):
        return
    op.create_table(
        "xapi_outbox",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("statement_id", sa.String(36), nullable=False),
        sa.Column("statement", JSON_DOCUMENT, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_xapi_outbox_due", "xapi_outbox", ["state", "next_attempt_at", "seq"])


def downgrade() -> None:
    op.drop_table("xapi_outbox")
