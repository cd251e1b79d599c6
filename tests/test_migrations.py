"""The store's Alembic migrations: one linear history, so every database upgrades to one head."""

from trm_modules.store.database import head_revision


def test_shipped_migrations_have_exactly_one_head():
    # Parallel branches each adding "the next" migration leave two heads; upgrade("head") then fails.
    assert head_revision()
