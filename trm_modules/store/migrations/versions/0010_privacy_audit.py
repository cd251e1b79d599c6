"""privacy_audit: one row per privacy request carried out (export, erase, expire) with the rows each provider
touched, never the learner it was about (``trm_modules.store.privacy``).

Revision ID: 0010_privacy_audit
Revises: 0009_drop_xapi_statements
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_privacy_audit"
down_revision = "0009_drop_xapi_statements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )
    op.create_index("ix_privacy_audit_created_at", "privacy_audit", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_privacy_audit_created_at", table_name="privacy_audit")
    op.drop_table("privacy_audit")
