"""Alembic revisions of the LTI adapter's tables (store schema ``lti``, version table ``alembic_version_lti``)."""
