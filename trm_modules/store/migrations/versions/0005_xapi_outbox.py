"""The outbound xAPI queue (adapter ``adapters/xapi.py``): statements waiting for the configured LRS,
each with its own retry schedule, and the ones the LRS refused (dead letters).

Since issue #21 these tables belong to the xAPI forwarding adapter, whose own migrations create them
(adapters/xapi_outbox_migrations, schema 'xapi_outbox') with their own version table: this revision is kept,
empty, so that databases at or past it keep their history. A database migrated by an older release already has
the tables; the adapter's first revision adopts them with every row.

Revision ID: 0005_xapi_outbox
Revises: 0004_xapi_lrs
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0005_xapi_outbox"
down_revision = "0004_xapi_lrs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the tables are the adapter's (see above)."""


def downgrade() -> None:
    """Nothing."""
