"""LTI 1.3 tool: platform registrations, the tool's signing keys, login states, used nonces, launches
(read and written by the LTI adapter, adapters/lti/storage.py).

Since issue #21 these tables belong to the LTI adapter, whose own migrations create them
(adapters/lti/migrations, schema 'lti') with their own version table: this revision is kept, empty, so that
databases at or past it keep their history. A database migrated by an older release already has the tables;
the adapter's first revision adopts them with every row.

Revision ID: 0006_lti
Revises: 0005_xapi_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0006_lti"
down_revision = "0005_xapi_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the tables are the adapter's (see above)."""


def downgrade() -> None:
    """Nothing."""
