"""Where the store lives and how to connect: URL resolution, engine set-up, schema migration.

SQLite is the embedded default (one file in the user data directory, WAL mode, a busy timeout,
foreign keys on, ``BEGIN IMMEDIATE`` transactions so that concurrent writers queue up instead of
failing on a lock upgrade). PostgreSQL is reached by URL (psycopg 3: ``postgresql+psycopg://…``).
The schema changes only through Alembic migrations: the core's in ``trm_modules.store.migrations``,
each plugin's in its own folder with its own version table (``trm_modules.store.schema``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import platformdirs
import pydantic_core
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import StoreError
from .schema import CORE_SCHEMA, PluginSchema, check_no_clash, migrate_schema, schema_head, schema_revision

#: Environment variable naming the store (a SQLAlchemy URL or a SQLite file path).
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Key of the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK_KEY = 0x74726D5F6462  # "trm_db"


def default_data_dir() -> Path:
    """The per-user data directory of trm-modules (store file, journals)."""
    return Path(platformdirs.user_data_dir("trm-modules", appauthor=False))


def create_private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, unless it exists: files holding
    learner data are 0600 (SQLite gives its -wal and -shm files the database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL of the store: ``db`` (URL or SQLite path), else the default file in the user
    data dir (``Settings.db`` resolves ``TRM_DB_URL`` and ``TRM_HOME`` before this is called).

    A plain path becomes ``sqlite:///<absolute path>``; a URL is checked for a supported dialect.
    """
    raw = os.fspath(db) if db is not None else None
    if raw is None:
        return f"sqlite:///{default_data_dir() / 'store.sqlite3'}"
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise StoreError(
            f"cannot parse the database URL {_redact(raw)!r}: {exc}; expected e.g. "
            "'sqlite:///path/store.sqlite3' or 'postgresql+psycopg://user@host/db'"
        ) from exc
    if url.get_backend_name() not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"unsupported database {url.get_backend_name()!r} in {_redact(raw)!r}; expected one of {SUPPORTED_DIALECTS}"
        )
    return raw


def _redact(raw: str) -> str:
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except ArgumentError:
        return raw


def redacted_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    return _redact(url)


def dump_json(document: Any) -> str:
    """JSON text of a document for JSON columns (pydantic-core's Rust encoder: several times ``json.dumps``)."""
    return pydantic_core.to_json(document).decode()


def create_store_engine(url: str, *, sqlite_synchronous: str = "FULL", **engine_kwargs: Any) -> Engine:
    """An engine for ``url`` configured for the store (see module docstring).

    ``sqlite_synchronous``: ``FULL`` makes every SQLite commit durable against power loss
    (one WAL fsync per batch); ``NORMAL`` is durable against process crashes only.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_file(Path(parsed.database))
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            json_serializer=dump_json,
            **engine_kwargs,
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
        return create_engine(
            url, connect_args=connect_args, pool_pre_ping=True, json_serializer=dump_json, **engine_kwargs
        )
    raise StoreError(f"unsupported database {parsed.get_backend_name()!r}; expected one of {SUPPORTED_DIALECTS}")


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise StoreError(f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below): the sqlite3 module's implicit transactions would
        # neither cover DDL nor take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA secure_delete = ON")  # a deleted learner's rows leave no bytes in free pages
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so a busy database waits (busy_timeout)
        # instead of failing later with SQLITE_BUSY on the read→write upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def head_revision() -> str:
    """The newest core migration revision shipped with this version of trm-modules (plugins have their own)."""
    return schema_head(CORE_SCHEMA)


def current_revision(engine: Engine) -> str | None:
    """The core migration revision the database at ``engine`` is at (None for an empty database)."""
    with engine.connect() as connection:
        return schema_revision(connection, CORE_SCHEMA)


def upgrade_schema(engine: Engine, revision: str = "head", schemas: Sequence[PluginSchema] = (CORE_SCHEMA,)) -> str:
    """Migrate the database at ``engine``: the core to ``revision`` (default: newest), then, when the core goes
    to its head, every other schema in ``schemas`` (plugins' tables, ``store.schema``) to its own head.
    Returns the core revision reached.

    Safe to call from several processes at once: SQLite serialises on ``BEGIN IMMEDIATE``,
    PostgreSQL on an advisory lock; a schema already at its target is left untouched. All schemas
    migrate in one transaction, so a failing plugin migration leaves the database as it was.
    ``SchemaClash`` (before anything runs) when two schemas name one table.
    """
    from alembic.util.exc import CommandError

    check_no_clash(schemas)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        for schema in schemas:
            target = revision if schema.name == "core" else "head"
            if schema.name != "core" and revision not in ("head", head_revision()):
                continue  # plugins' tables follow a core at its head only
            try:
                migrate_schema(connection, schema, target)
            except CommandError as exc:
                known = schema_head(schema)
                raise StoreError(
                    f"cannot migrate the store schema {schema.name!r} (from {schema.owner!r}) at "
                    f"{redacted_url(str(engine.url.render_as_string(False)))} to {target!r}: {exc}. "
                    f"A database migrated by a newer release needs that release (this one knows "
                    f"revisions up to {known})"
                ) from exc
    reached = current_revision(engine)
    return reached or ""


def forget_deleted_pages(engine: Engine) -> None:
    """After deleting personal data from SQLite: copy the WAL into the database and truncate it, so no old
    page holding the deleted rows stays in the ``-wal`` file (freed pages are zeroed: ``secure_delete``).
    Nothing to do on PostgreSQL (dead rows are unreadable and vacuumed)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
