"""Alembic migrations of the store, run programmatically by ``trm_modules.store.database.upgrade_schema``."""
