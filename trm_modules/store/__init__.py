"""The usage and feedback store: every solve and every outcome event, idempotently, for retraining.

- :class:`Store`: the database (SQLite file by default, PostgreSQL by URL), migrated on first use.
- :class:`Recorder`: background, batched, journaled writes; see its module for acknowledgement.
- :class:`StorePlugin`: the hookimpls (``trm_on_solve``, ``trm_on_feedback``) for the host.
- :func:`recent_solves`, :func:`module_stats`: what ``trm logs`` and ``trm stats`` show.
- :func:`export_feedback_dataset`: the training set for the module's next version.
"""

from .database import default_data_dir, head_revision, resolve_db_url
from .errors import RecorderClosed, RecorderOverloaded, StoreError, StoreUnavailable
from .export import ExportSummary, export_feedback_dataset
from .journal import Journal, default_journal_path
from .plugin import StorePlugin
from .queries import ModuleStats, SolveSummary, module_stats, recent_solves
from .recorder import Recorder, RecorderStats, WriteTicket
from .items import RejectedItem
from .storage import Store

__all__ = [
    "ExportSummary",
    "Journal",
    "ModuleStats",
    "RecorderClosed",
    "RecorderOverloaded",
    "Recorder",
    "RecorderStats",
    "RejectedItem",
    "SolveSummary",
    "Store",
    "StoreError",
    "StorePlugin",
    "StoreUnavailable",
    "WriteTicket",
    "default_data_dir",
    "default_journal_path",
    "export_feedback_dataset",
    "head_revision",
    "module_stats",
    "recent_solves",
    "resolve_db_url",
]
