"""The xAPI LRS (adapter ``adapters/lrs``): statements with their filter indexes, attachments,
activities, and State / Activity Profile / Agent Profile documents.

Since issue #21 these tables belong to the LRS adapter, whose own migrations create them
(adapters/lrs/migrations, schema 'lrs') with their own version table: this revision is kept, empty, so that
databases at or past it keep their history. A database migrated by an older release already has the tables;
the adapter's first revision adopts them with every row.

Revision ID: 0004_xapi_lrs
Revises: 0003_dead_letters
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0004_xapi_lrs"
down_revision = "0003_dead_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the tables are the adapter's (see above)."""


def downgrade() -> None:
    """Nothing."""
