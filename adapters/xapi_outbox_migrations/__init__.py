"""Alembic revisions of the xAPI outbox table (store schema ``xapi_outbox``, version table ``alembic_version_xapi_outbox``)."""
