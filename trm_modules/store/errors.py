"""Typed errors of the usage and feedback store."""

from __future__ import annotations

from ..errors import TRMError


class StoreError(TRMError):
    """The store could not do what was asked (bad URL, failed migration, unknown module …)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused the connection; the recorder journals instead."""


class RecorderOverloaded(StoreError):
    """The recorder's queue stayed full for longer than allowed: the database and the journal fall behind."""


class RecorderClosed(StoreError):
    """A record was submitted to a recorder that has been closed."""
