"""The store as a pluggy plugin: it observes solves and feedback through the host's hooks.

Register one instance with the host's plugin manager; replacing the store means registering a
different plugin under the same hooks::

    pm.register(StorePlugin.open(db_url), name="trm-store")
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ..hookspecs import hookimpl
from ..records import FeedbackEvent, SolveRecord
from .errors import StoreError
from .recorder import Recorder, WriteTicket

log = logging.getLogger(__name__)


class StorePlugin:
    """Records every ``trm_on_solve`` / ``trm_on_feedback`` event through a :class:`Recorder`, off the solve path.

    The hooks only queue and return the item's ``WriteTicket`` (acknowledgement follows
    asynchronously, see ``trm_modules.store.recorder``; the HTTP server waits on it before
    answering); a store that cannot keep up is logged, never raised into the host's request.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @classmethod
    def open(cls, db: str | None = None, **recorder_options: Any) -> "StorePlugin":
        """A plugin writing to the store at ``db`` (URL or SQLite path; None: ``$TRM_DB_URL`` or the default)."""
        return cls(Recorder(db, **recorder_options))

    @hookimpl
    def trm_on_solve(self, record: SolveRecord) -> WriteTicket | None:
        """Queue the solve record for the store; returns its write ticket (None if it was not taken)."""
        return self._queue(self.recorder.record_solve, record, "solve")

    @hookimpl
    def trm_on_feedback(self, event: FeedbackEvent) -> WriteTicket | None:
        """Queue the feedback event for the store; returns its write ticket (None if it was not taken)."""
        return self._queue(self.recorder.record_feedback, event, "feedback")

    @staticmethod
    def _queue(
        record: Callable[[Any], WriteTicket], item: SolveRecord | FeedbackEvent, kind: str
    ) -> WriteTicket | None:
        try:
            return record(item)
        except StoreError as exc:  # logged, never raised into the host's request
            log.error("%s %s was not recorded: %s", kind, item.id, exc)
            return None

    def package_installed(self, package: Any, source: str = "") -> None:
        """Remember an installed package (``trm_modules.package`` object) and its task codec for exports.

        Written synchronously (installs are rare); the same (name, version, digest) twice is a no-op.
        """
        manifest = package.manifest
        self.recorder.store.record_installed_package(
            name=manifest.name,
            version=manifest.version,
            digest=package.digest,
            codec=manifest.task.codec,
            codec_params=dict(manifest.task.params or {}),
            source=source or str(getattr(package, "path", "")),
        )

    def close(self) -> None:
        """Write what is queued and release the database."""
        self.recorder.close()
