"""Alembic revisions of the LRS adapter's tables (store schema ``lrs``, version table ``alembic_version_lrs``)."""
