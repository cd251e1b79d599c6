"""The store's data access: idempotent batch writes and the installed-packages table.

Writes use ``INSERT … ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL dialects) keyed on the
client-supplied ids, so writing the same event twice stores it once; this is what makes journal
replay safe. One ``Session`` per unit of work, committed explicitly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import Table, case, exists, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, aliased

from ..records import FeedbackEvent, OutcomeRecord, SolveRecord
from .database import create_store_engine, dump_json, head_revision, redacted_url, resolve_db_url, upgrade_schema
from .errors import StoreError, StoreUnavailable
from .schema import PluginSchema, schemas_behind, store_schemas
from .items import RejectedItem, StoreItem, check_item, escaped_entry, item_type_tag  # noqa: F401 - check_item re-exported
from .models import Context, DeadLetter, Feedback, InstalledPackage, LearnerOutcome, LearnerOutcomeSolve, Solve, utcnow

#: Feedback kinds that are verdicts on a solve (``correct`` → 1; ``incorrect``, ``correction`` → 0).
VERDICT_KINDS = ("correct", "incorrect", "correction")

log = logging.getLogger(__name__)

#: Tries of a first-use migration that meets a locked (being-created) SQLite file.
_SCHEMA_ATTEMPTS = 8


ContextKey = tuple[str, str, str]


def context_key(record: SolveRecord) -> ContextKey:
    context = record.context
    return (context.platform or "", context.course or "", context.activity or "")


class Store:
    """A connection to the usage and feedback store (SQLite file or PostgreSQL), migrated on first use.

    ``db`` is a SQLAlchemy URL or a SQLite file path; None means ``$TRM_DB_URL`` or the default
    file in the user data directory. Nothing touches the database before the first operation.
    ``plugins``: the plugin manager whose schemas (``trm_store_schemas``) live in this store beside the
    core's; default the process's (``trm_modules.plugins.get_plugin_manager``), asked on first use.
    """

    def __init__(
        self, db: str | None = None, *, migrate: bool = True, sqlite_synchronous: str = "FULL", plugins: Any = None
    ) -> None:
        self.url = resolve_db_url(db)
        self._plugins = plugins
        self.engine = create_store_engine(self.url, sqlite_synchronous=sqlite_synchronous)
        self.dialect = self.engine.dialect.name
        self._migrate = migrate
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._context_ids: dict[ContextKey, int] = {}
        self._insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[self.dialect]

    def __repr__(self) -> str:
        return f"Store({redacted_url(self.url)!r})"

    # -- schema -----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Migrate a fresh or older database to the shipped head (once per ``Store``); ``StoreUnavailable`` if unreachable."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            for attempt in range(1, _SCHEMA_ATTEMPTS + 1):
                try:
                    schemas = self.schemas()
                    with self.engine.connect() as connection:
                        behind = schemas_behind(connection, schemas)
                    if behind:
                        if not self._migrate:
                            raise StoreError(
                                f"the database {redacted_url(self.url)} is not at the newest schema "
                                f"({', '.join(behind)}); run `trm db upgrade --db URL`"
                            )
                        upgrade_schema(self.engine, schemas=schemas)
                    break
                except StoreError:
                    raise
                except SQLAlchemyError as exc:
                    # A fresh SQLite file being switched to WAL or migrated by another process answers
                    # "database is locked" at once (no busy wait for lock upgrades): try again shortly.
                    if "database is locked" in str(exc) and attempt < _SCHEMA_ATTEMPTS:
                        time.sleep(0.1 * attempt)
                        continue
                    raise StoreUnavailable(
                        f"cannot reach or migrate the store at {redacted_url(self.url)}: {_first_line(exc)}"
                    ) from exc
            self._schema_ready = True

    def upgrade(self, revision: str = "head") -> str:
        """Run the shipped migrations up to ``revision``; returns the revision the database is at."""
        try:
            reached = upgrade_schema(self.engine, revision, schemas=self.schemas())
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot migrate the store at {redacted_url(self.url)}: {_first_line(exc)}") from exc
        self._schema_ready = reached == head_revision()
        return reached

    def plugin_manager(self) -> Any:
        """The plugins whose tables live in this store (default: the process's plugin manager)."""
        if self._plugins is None:
            from ..plugins import get_plugin_manager

            self._plugins = get_plugin_manager()
        return self._plugins

    def schemas(self) -> list[PluginSchema]:
        """The core's schema and those of this store's plugins (``SchemaClash`` if two name one table)."""
        return store_schemas(self.plugin_manager())

    def ping(self) -> None:
        """Reach the database (migrating it on first use); ``StoreUnavailable`` if it does not answer."""
        self.ensure_schema()
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot reach the store at {redacted_url(self.url)}: {_first_line(exc)}") from exc

    def session(self) -> Session:
        """A new ORM session on the (migrated) store; the caller commits and closes it."""
        self.ensure_schema()
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- writes -----------------------------------------------------------------------------

    def write(self, items: Sequence[StoreItem]) -> list[RejectedItem]:
        """Write ``items`` idempotently in one transaction; returns the items refused for good.

        A batch the database refuses for a row's sake (encoding, length, a constraint such as a void
        naming an unknown event) is split in halves until the offending items stand alone; those go
        to the ``dead_letters`` table with the reason and everything else is written. Any other
        failure raises ``StoreUnavailable``: nothing of the batch is then known to be written, and
        writing it again later is harmless (ids).
        """
        if not items:
            return []
        self.ensure_schema()
        # Retractions after the events they retract, so halves never put a void before its target.
        ordered = sorted(items, key=lambda item: isinstance(item, FeedbackEvent) and item.kind == "void")
        rejected: list[RejectedItem] = []
        self._write_isolating_refusals(ordered, rejected)
        if rejected:
            self._write_dead_letters(rejected)
        return rejected

    def _write_isolating_refusals(self, items: Sequence[StoreItem], rejected: list[RejectedItem]) -> None:
        try:
            self._write_in_one_transaction(items)
            return
        except Exception as exc:  # noqa: BLE001 - classified below: a bad row, or the database is away
            if not refused_for_good(exc):
                raise _unavailable(self.url, exc) from exc
            if len(items) == 1:
                rejected.append(RejectedItem(items[0], _first_line(exc)))
                return
        middle = len(items) // 2
        self._write_isolating_refusals(items[:middle], rejected)
        self._write_isolating_refusals(items[middle:], rejected)

    def _write_dead_letters(self, rejected: Sequence[RejectedItem]) -> None:
        self.add_dead_letters([(item_type_tag(r.item), r.item.id, escaped_entry(r.item), r.reason) for r in rejected])

    def add_dead_letters(self, letters: Sequence[tuple[str, str, str, str]]) -> None:
        """Keep ``(item_type, item_id, entry, reason)`` tuples in the dead_letters table (escaped to ASCII)."""
        if not letters:
            return
        now = utcnow()
        rows = [
            {
                "item_type": item_type[:16],
                "item_id": _escaped(item_id)[:200],
                "entry": _escaped(entry),
                "reason": _escaped(reason),
                "created_at": now,
            }
            for item_type, item_id, entry, reason in letters
        ]
        try:
            with Session(self.engine) as session, session.begin():
                session.execute(DeadLetter.__table__.insert(), rows)
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(self.url, exc) from exc
        for row in rows:
            log.error(
                "the store refused %s %r for good (%s); kept in its dead_letters table",
                row["item_type"],
                row["item_id"][:80],
                row["reason"],
            )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters (items refused for good), newest first."""
        with self.session() as session:
            return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)))

    def count_dead_letters(self) -> int:
        """How many items the database refused for good so far."""
        from sqlalchemy import func

        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)

    def _write_in_one_transaction(self, items: Sequence[StoreItem]) -> None:
        solves = [item for item in items if isinstance(item, SolveRecord)]
        # Retractions after the events they retract, so a void may name an event of the same batch.
        feedback = sorted((item for item in items if isinstance(item, FeedbackEvent)), key=lambda e: e.kind == "void")
        outcomes = [item for item in items if isinstance(item, OutcomeRecord)]
        new_contexts: dict[ContextKey, int] = {}
        with Session(self.engine) as session, session.begin():
            connection = session.connection()
            if solves:
                keys = [context_key(r) for r in solves]
                context_ids = self._resolve_context_ids(connection, set(keys), new_contexts)
                self._insert_solves(connection, solves, [context_ids[key] for key in keys])
                # Feedback that arrived before its solve (another process's queue): derive the verdict now.
                refresh_verdicts(connection, [r.id for r in solves], only_with_feedback=True)
            if feedback:
                connection.execute(
                    self._insert_ignoring_duplicates(Feedback.__table__), [_feedback_row(e) for e in feedback]
                )
                judged = {e.solve_id for e in feedback if e.kind in VERDICT_KINDS}
                voided = [e.voids for e in feedback if e.kind == "void" and e.voids]
                if voided:
                    judged.update(connection.scalars(select(Feedback.solve_id).where(Feedback.id.in_(voided))))
                refresh_verdicts(connection, sorted(judged))
            if outcomes:
                self._insert_outcomes(connection, outcomes)
        self._context_ids.update(new_contexts)  # only ids that were committed

    def _insert_outcomes(self, connection: Any, outcomes: Sequence[OutcomeRecord]) -> None:
        # Idempotent by id: an id already stored changes nothing, not even its solves.
        ids = [o.id for o in outcomes]
        stored = set(connection.scalars(select(LearnerOutcome.id).where(LearnerOutcome.id.in_(ids))))
        new = list({o.id: o for o in outcomes if o.id not in stored}.values())
        if not new:
            return
        connection.execute(self._insert_ignoring_duplicates(LearnerOutcome.__table__), [_outcome_row(o) for o in new])
        links = [{"outcome_id": o.id, "solve_id": solve_id} for o in new for solve_id in dict.fromkeys(o.solve_ids)]
        if links:
            connection.execute(self._insert_ignoring_duplicates(LearnerOutcomeSolve.__table__), links)

    def _insert_solves(self, connection: Any, solves: Sequence[SolveRecord], context_ids: Sequence[int]) -> None:
        # The hot path: one driver executemany of the statement SQLAlchemy compiled for this table,
        # with the values prepared as the column types would prepare them (JSON text; naive-UTC
        # "YYYY-MM-DD HH:MM:SS.ffffff" on SQLite), skipping per-row parameter processing.
        rows = [_solve_values(r, c, self.dialect) for r, c in zip(solves, context_ids)]
        if self.dialect == "postgresql":
            self._copy_solves_postgresql(connection, rows)
        else:
            connection.exec_driver_sql(self._solve_insert_sql, rows)

    def _copy_solves_postgresql(self, connection: Any, rows: list[tuple[Any, ...]]) -> None:
        # COPY into a transaction-scoped staging table, then one INSERT … SELECT … ON CONFLICT DO
        # NOTHING: the idempotency of the row-wise insert at the speed of COPY.
        columns = ", ".join(SOLVE_COLUMNS)
        connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS trm_incoming_solves "
            "(LIKE solves INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cursor = connection.connection.driver_connection.cursor()
        try:
            with cursor.copy(f"COPY trm_incoming_solves ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        connection.exec_driver_sql(
            f"INSERT INTO solves ({columns}) SELECT {columns} FROM trm_incoming_solves ON CONFLICT DO NOTHING"
        )
        connection.exec_driver_sql("DELETE FROM trm_incoming_solves")

    @functools.cached_property
    def _solve_insert_sql(self) -> str:
        compiled = self._insert_ignoring_duplicates(Solve.__table__).compile(dialect=self.engine.dialect)
        bound = list(compiled.positiontup or compiled.binds)
        if bound != list(SOLVE_COLUMNS):
            raise StoreError(f"the solves insert binds {bound}, expected {SOLVE_COLUMNS}")
        return str(compiled)

    def _insert_ignoring_duplicates(self, table: Table) -> Any:
        return self._insert(table).on_conflict_do_nothing()

    def _resolve_context_ids(
        self, connection: Any, keys: set[ContextKey], new: dict[ContextKey, int]
    ) -> dict[ContextKey, int]:
        known = {key: self._context_ids[key] for key in keys if key in self._context_ids}
        missing = sorted(keys - known.keys())
        if missing:
            table = Context.__table__
            connection.execute(
                self._insert_ignoring_duplicates(table),
                [{"platform": p, "course": c, "activity": a} for p, c, a in missing],
            )
            rows = connection.execute(
                select(table.c.id, table.c.platform, table.c.course, table.c.activity).where(
                    tuple_(table.c.platform, table.c.course, table.c.activity).in_(missing)
                )
            )
            for context_id, platform, course, activity in rows:
                new[(platform, course, activity)] = context_id
            known.update(new)
        return known

    # -- installed packages -------------------------------------------------------------------

    def record_installed_package(
        self,
        *,
        name: str,
        version: str,
        digest: str,
        codec: str,
        codec_params: dict[str, Any] | None = None,
        source: str = "",
        installed_at: datetime | None = None,
    ) -> None:
        """Remember that package ``name`` ``version`` (file ``digest``) is installed, with its task codec.

        Installing the same (name, version, digest) again is a no-op.
        """
        row = {
            "name": name,
            "version": version,
            "digest": digest,
            "codec": codec,
            "codec_params": codec_params or {},
            "source": source,
            "installed_at": installed_at or utcnow(),
        }
        with self.session() as session, session.begin():
            session.execute(self._insert_ignoring_duplicates(InstalledPackage.__table__), [row])

    def installed_package(self, name: str, version: str | None = None) -> InstalledPackage | None:
        """The most recently installed package ``name`` (of ``version`` if given), or None."""
        query = select(InstalledPackage).where(InstalledPackage.name == name)
        if version is not None:
            query = query.where(InstalledPackage.version == version)
        query = query.order_by(InstalledPackage.installed_at.desc(), InstalledPackage.id.desc()).limit(1)
        with self.session() as session:
            return session.scalars(query).first()

    def installed_packages(self) -> list[InstalledPackage]:
        """Every installed-package row, newest first."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(InstalledPackage).order_by(InstalledPackage.installed_at.desc(), InstalledPackage.id.desc())
                )
            )


SOLVE_COLUMNS = (
    "id",
    "module",
    "version",
    "digest",
    "context_id",
    "learner",
    "input",
    "output",
    "steps",
    "confidence",
    "valid",
    "latency_ms",
    "device",
    "created_at",
    "course",
    "cohort",
    "input_digest",
    "verdict",
)


def input_digest(document: Any) -> str:
    """sha256 (hex) of ``document``'s canonical JSON (sorted keys, no spaces): equal inputs, equal digests."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _solve_values(record: SolveRecord, context_id: int, dialect: str) -> tuple[Any, ...]:
    created: Any = record.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    if dialect == "sqlite":
        created = created.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return (
        record.id,
        record.module,
        record.version,
        record.digest,
        context_id,
        record.context.learner,
        dump_json(record.input),
        None if record.output is None else dump_json(record.output),
        record.steps,
        record.confidence,
        record.valid,
        record.latency_ms,
        record.device,
        created,
        record.context.course or "",
        record.context.cohort,
        input_digest(record.input),
        None,
    )


def refresh_verdicts(connection: Any, solve_ids: Sequence[str], *, only_with_feedback: bool = False) -> None:
    """Set ``solves.verdict`` of ``solve_ids`` from their latest effective verdict (see ``store.queries``).

    Called in the transaction that writes the feedback (or the solves), so the derived column is
    never out of step with the events. ``only_with_feedback``: skip solves nobody has judged yet.
    """
    for start in range(0, len(solve_ids), 500):
        chunk = list(solve_ids[start : start + 500])
        judged, voider = aliased(Feedback), aliased(Feedback)
        latest = (
            select(case((judged.kind == "correct", 1), else_=0))
            .where(
                judged.solve_id == Solve.id,
                judged.kind.in_(VERDICT_KINDS),
                ~exists().where(voider.kind == "void", voider.voids == judged.id),
            )
            .order_by(judged.created_at.desc(), judged.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        statement = update(Solve).where(Solve.id.in_(chunk)).values(verdict=latest)
        if only_with_feedback:
            statement = statement.where(exists().where(Feedback.solve_id == Solve.id))
        connection.execute(statement.execution_options(synchronize_session=False))


def _outcome_row(outcome: OutcomeRecord) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "learner": outcome.learner,
        "course": outcome.course or "",
        "activity": outcome.activity or "",
        "score": outcome.score,
        "max_score": outcome.max_score,
        "normalised_score": outcome.normalised_score,
        "success": outcome.success,
        "asked": bool(outcome.solve_ids),
        "source": outcome.source,
        "created_at": outcome.created_at,
    }


def _feedback_row(event: FeedbackEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "solve_id": event.solve_id,
        "kind": event.kind,
        "value": event.value,
        "corrected_output": event.corrected_output,
        "source": event.source,
        "actor": event.actor,
        "voids": event.voids,
        "created_at": event.created_at,
    }


def refused_for_good(exc: BaseException) -> bool:
    """Whether ``exc`` is the database (or its driver) refusing a row's content, not an outage.

    Refusals: integrity and data errors (a constraint, a value too long, an untranslatable
    character), raised through SQLAlchemy or straight from the driver (PostgreSQL ``COPY``), and
    values that cannot even be encoded (a lone surrogate). Everything else (connection lost,
    database locked, a missing table) is treated as the database being away: retried, never dropped.
    """
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    if isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, StatementError):  # SQLAlchemy wrapping a bind-time error (encoding a value)
        return isinstance(exc.orig, (ValueError, TypeError, UnicodeError))
    if isinstance(exc, (ValueError, TypeError, UnicodeError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError))


def _unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    if isinstance(exc, StoreUnavailable):
        return exc
    return StoreUnavailable(f"cannot write to the store at {redacted_url(url)}: {_first_line(exc)}")


def _escaped(text: str) -> str:
    """``text`` with anything outside printable ASCII escaped (safe for any column and any log)."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
