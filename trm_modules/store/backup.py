"""Backups of the store: every table in it (the core's, and every plugin's: LTI, xAPI, outbox, …), while it serves.

- **SQLite**: SQLite's online backup API (``sqlite3.Connection.backup``) copies the live database
  page by page into a new file, consistent even while a server writes; the backup is itself a
  SQLite database. Restoring copies it back the same way, replacing the target's content.
- **PostgreSQL**: ``pg_dump --format=custom`` of the store's schema (the one its connection uses:
  ``public``, or the URL's ``search_path``), consistent as one snapshot while the server writes;
  restoring runs ``pg_restore --clean --if-exists --single-transaction`` into the database named,
  so a failed restore changes nothing. ``pg_dump`` must be at least the server's major version.

The password of a URL goes to the tools through a private passfile, never the command line. A backup
from one kind of database cannot be restored into the other (refused, by the file's signature).
Every table is counted before and after, so a backup or restore reports what it holds.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlalchemy.engine import make_url

from .database import create_private_file, create_store_engine, redacted_url, resolve_db_url
from .errors import StoreError, StoreUnavailable

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


class BackupError(StoreError):
    """A backup or restore could not be made (missing tool, wrong kind of file, the tool failed)."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup or restore holds: rows per table (every table of the store's schema)."""

    path: Path
    dialect: str
    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def table_rows(engine: Engine) -> dict[str, int]:
    """Rows of every table in the store's schema (core and plugins alike), by table name."""
    metadata = MetaData()
    try:
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in sorted(metadata.tables.items())
            }
    except Exception as exc:
        if "could not connect" in str(exc).lower() or "connection refused" in str(exc).lower():
            raise StoreUnavailable(f"the database at {redacted_url(str(engine.url))} cannot be reached: {exc}") from exc
        raise


def backup_store(db: str, output: str | os.PathLike[str]) -> BackupReport:
    """Write a backup of the store at ``db`` (URL or SQLite path) to ``output`` (created 0600)."""
    url = resolve_db_url(db)
    out = Path(output)
    dialect = make_url(url).get_backend_name()
    engine = create_store_engine(url)
    try:
        rows = table_rows(engine)
        if dialect == "sqlite":
            _sqlite_copy(_sqlite_path(url), out)
        else:
            _pg_dump(url, _pg_schema(engine), out)
    finally:
        engine.dispose()
    return BackupReport(out, dialect, rows)


def restore_store(backup: str | os.PathLike[str], db: str) -> BackupReport:
    """Replace the content of the store at ``db`` with ``backup`` (made by ``backup_store``)."""
    source = Path(backup)
    url = resolve_db_url(db)
    dialect = make_url(url).get_backend_name()
    try:
        with source.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BackupError(f"cannot read the backup {source}: {exc.strerror or exc}") from None
    kind = "sqlite" if head.startswith(SQLITE_MAGIC) else "postgresql" if head.startswith(PG_CUSTOM_MAGIC) else None
    if kind is None:
        raise BackupError(
            f"{source} is not a trm store backup (neither a SQLite database nor a pg_dump custom archive)"
        )
    if kind != dialect:
        raise BackupError(
            f"{source} is a {kind} backup and cannot be restored into a {dialect} store "
            f"({redacted_url(url)}); restore it into a {kind} database"
        )
    if dialect == "sqlite":
        target = _sqlite_path(url)
        create_private_file(target)
        _sqlite_copy(source, target, replace=False)
    else:
        _pg_restore(url, source)
    engine = create_store_engine(url)
    try:
        return BackupReport(source, dialect, table_rows(engine))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ SQLite
def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite store has nothing to back up or restore into")
    return Path(database)


def _sqlite_copy(source: Path, target: Path, *, replace: bool = True) -> None:
    """Copy ``source`` into ``target`` with SQLite's online backup API (both SQLite databases).

    ``replace``: write a new file (through a temporary name, renamed when complete) instead of
    copying into the live database at ``target`` (a restore, which other connections see at once)."""
    if not source.exists():
        raise StoreUnavailable(f"there is no SQLite store at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        if replace:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(handle)
            os.chmod(partial, 0o600)
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=1024)
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            finally:
                dst.close()
            os.replace(partial, target)
        else:
            dst = sqlite3.connect(target, timeout=30)
            try:
                src.backup(dst, pages=1024)
            finally:
                dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup from {source} to {target} failed: {exc}") from exc
    finally:
        src.close()


# -------------------------------------------------------------------------------------- PostgreSQL
def _pg_schema(engine: Engine) -> str:
    with engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
        if not inspect(connection).get_table_names(schema=schema):
            raise BackupError(f"the store's schema {schema!r} has no tables (nothing to back up)")
        return str(schema)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; PostgreSQL stores are backed up with pg_dump and restored "
            "with pg_restore (Debian: apt-get install postgresql-client)"
        )
    return found


def _run_pg(tool: str, url: str, arguments: list[str], what: str) -> None:
    """Run a PostgreSQL client tool on the database at ``url``: the driver is taken out of the URL and the
    password, if any, goes through a private passfile named in the connection URI (never the command line)."""
    parsed = make_url(url)
    with tempfile.TemporaryDirectory(prefix="trm-pg-") as folder:
        plain = parsed.set(drivername="postgresql", password=None)
        if parsed.password:
            passfile = Path(folder) / "pgpass"
            create_private_file(passfile)
            secret = str(parsed.password).replace("\\", "\\\\").replace(":", "\\:")
            passfile.write_text(f"*:*:*:*:{secret}\n")
            plain = plain.update_query_dict({"passfile": str(passfile)})
        conninfo = plain.render_as_string(hide_password=False)
        try:
            finished = subprocess.run(
                [_pg_tool(tool), *arguments, f"--dbname={conninfo}"], capture_output=True, text=True, timeout=3600
            )
        except subprocess.TimeoutExpired:
            raise BackupError(f"{what} did not finish within an hour") from None
    if finished.returncode != 0:
        message = finished.stderr.strip().splitlines()
        raise BackupError(f"{what} failed (exit {finished.returncode}): {' / '.join(message[-3:])}")


def _pg_dump(url: str, schema: str, out: Path) -> None:
    create_private_file(out)
    _run_pg(
        "pg_dump",
        url,
        ["--format=custom", "--no-owner", "--no-privileges", f"--schema={schema}", f"--file={out}"],
        f"pg_dump of {redacted_url(url)}",
    )


def _pg_restore(url: str, source: Path) -> None:
    _run_pg(
        "pg_restore",
        url,
        ["--clean", "--if-exists", "--single-transaction", "--no-owner", "--no-privileges", str(source)],
        f"pg_restore into {redacted_url(url)}",
    )
