"""API tokens limited to courses: ``api_tokens.courses`` (a JSON list of course names; NULL: every course).

Revision ID: 0008_token_courses
Revises: 0007_routing_state
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_token_courses"
down_revision = "0007_routing_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("courses", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("courses")
