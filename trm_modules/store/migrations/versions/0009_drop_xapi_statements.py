"""Drop ``xapi_statements``: raw xAPI statements kept by the core that nothing read (the LRS adapter keeps
statements in its own tables).

Revision ID: 0009_drop_xapi_statements
Revises: 0008_token_courses
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_drop_xapi_statements"
down_revision = "0008_token_courses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("xapi_statements")


def downgrade() -> None:
    op.create_table(
        "xapi_statements",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("statement", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
