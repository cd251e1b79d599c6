"""A later release of the notes plugin: who the note is about.

Revision ID: notes_0002
Revises: notes_0001
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "notes_0002"
down_revision = "notes_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notes_entries") as batch:
        batch.add_column(sa.Column("learner", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notes_entries") as batch:
        batch.drop_column("learner")
