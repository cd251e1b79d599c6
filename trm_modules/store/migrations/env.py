"""Alembic environment: online only, on the connection handed over by ``upgrade_schema``."""

from __future__ import annotations

from alembic import context

from trm_modules.store.errors import StoreError
from trm_modules.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise StoreError("the store's migrations run only through trm_modules.store (`trm db upgrade`), "
                     "on an open connection; offline SQL generation is not supported")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
