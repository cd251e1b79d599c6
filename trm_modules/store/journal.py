"""The local journal: where batches go when the database cannot take them, until replay.

A journal is a JSON-lines file, one item a line (``{"t": "solve"|"feedback", "r": {...}}``, ``store.items``).
Appends are one ``write`` of whole lines followed by ``fsync``, under an exclusive ``flock`` that
several processes share; replay holds the same lock while it writes the lines to the database and
then truncates the file, so no append can slip between reading and truncating. A line torn by a
crash (it was never acknowledged: acknowledgement follows the fsync) is skipped on replay.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterator, Sequence

from pydantic import ValidationError

from .database import default_data_dir
from .items import RejectedItem, StoreItem, decode_line, encode_item

log = logging.getLogger(__name__)


def default_journal_path(db_url: str) -> Path:
    """The journal of the store at ``db_url``: one file per database in the user data directory."""
    key = hashlib.sha256(db_url.encode()).hexdigest()[:16]
    return default_data_dir() / "journal" / f"{key}.jsonl"


class Journal:
    """An append-only, fsync'd, multi-process-safe JSON-lines file of items waiting for the database."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.stem + ".rejected.jsonl")
        self._thread_lock = threading.RLock()  # replay appends rejected items while locked

    def append(self, items: Sequence[StoreItem]) -> None:
        """Append ``items`` durably: when this returns, they survive a crash of this process or machine."""
        if items:
            self._append_lines(self.path, [encode_item(item) for item in items])

    def append_rejected(self, rejected: Sequence[RejectedItem]) -> None:
        """Keep items the database refused for good, with the reason, beside the journal (never replayed)."""
        if rejected:
            lines = ['{"reason":%s,"entry":%s}' % (json.dumps(r.reason), encode_item(r.item)) for r in rejected]
            self._append_lines(self.rejected_path, lines)
            for entry in rejected:
                log.error(
                    "the store refused %s %r for good (%s); kept in %s",
                    type(entry.item).__name__,
                    entry.item.id,
                    entry.reason,
                    self.rejected_path,
                )

    def has_entries(self) -> bool:
        """Whether the journal holds anything (items not yet replayed)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def replay(
        self,
        write: Callable[[Sequence[StoreItem]], list[RejectedItem]],
        chunk_size: int = 2000,
        dead_letters: Callable[[list[tuple[str, str, str, str]]], None] | None = None,
    ) -> int:
        """Write every journaled item with ``write`` (idempotent), then empty the journal; returns the count.

        A whole line that no longer reads as an item goes to ``dead_letters`` (``(type, id, line,
        reason)`` tuples, e.g. ``Store.add_dead_letters``), else to the rejected file: never dropped.

        If ``write`` raises (database still down), the journal is left as it was and the error
        propagates; a later replay writes it all again, which the ids make harmless.
        """
        if not self.has_entries():
            return 0
        with self._locked(self.path) as fd:
            raw = _read_all(fd)
            replayed = 0
            unreadable: list[tuple[str, str]] = []
            for chunk in _chunks(self._parse(raw, unreadable), chunk_size):
                self.append_rejected(write(chunk))
                replayed += len(chunk)
            if unreadable and dead_letters is not None:
                dead_letters([(_line_type(line), _line_id(line), line, reason) for line, reason in unreadable])
            else:
                self._append_unreadable(unreadable)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        if replayed:
            log.info("replayed %d journaled items from %s", replayed, self.path)
        return replayed

    def remove_lines(self, matches: Callable[[str], bool], path: Path | None = None) -> int:
        """Remove every line of the journal (or of ``path``, e.g. the rejected file) for which ``matches`` is true,
        under the lock appends and replays take; returns how many (a privacy erasure uses it)."""
        path = path or self.path
        if not path.exists():
            return 0
        with self._locked(path) as fd:
            lines = _read_all(fd).decode("utf-8", "backslashreplace").split("\n")
            kept = [line for line in lines if line.strip() and not matches(line)]
            removed = sum(1 for line in lines if line.strip()) - len(kept)
            if removed:
                os.ftruncate(fd, 0)
                if kept:
                    os.write(fd, ("\n".join(kept) + "\n").encode("utf-8"))
                os.fsync(fd)
        return removed

    def _parse(self, raw: bytes, unreadable: list[tuple[str, str]]) -> Iterator[StoreItem]:
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield decode_line(line.decode("utf-8"))
            except (ValueError, ValidationError, UnicodeDecodeError) as exc:
                reason = str(exc).splitlines()[0]
                if number == len(lines):  # a torn last line of a crashed append: it was never acknowledged
                    log.warning("skipping the torn last line of the journal %s: %s", self.path, reason)
                else:  # a whole line that no longer reads as an item: kept, never silently dropped
                    unreadable.append((line.decode("utf-8", "backslashreplace"), reason))

    def _append_unreadable(self, unreadable: list[tuple[str, str]]) -> None:
        if unreadable:
            self._append_lines(
                self.rejected_path,
                ['{"reason":%s,"line":%s}' % (json.dumps(reason), json.dumps(line)) for line, reason in unreadable],
            )
            log.error("kept %d unreadable journal lines in %s", len(unreadable), self.rejected_path)

    def _append_lines(self, path: Path, lines: list[str]) -> None:
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        with self._locked(path) as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                payload = b"\n" + payload  # a crash tore the previous line: keep ours whole
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)

    class _Lock:
        def __init__(self, journal: "Journal", path: Path) -> None:
            self.journal, self.path = journal, path

        def __enter__(self) -> int:
            self.journal._thread_lock.acquire()
            try:
                created = not self.path.exists()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                if created:
                    _fsync_directory(self.path.parent)
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                self.journal._thread_lock.release()
                raise
            return self.fd

        def __exit__(self, *exc_info: object) -> None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            finally:
                self.journal._thread_lock.release()

    def _locked(self, path: Path) -> "Journal._Lock":
        return Journal._Lock(self, path)


def _line_type(line: str) -> str:
    try:
        return str(json.loads(line).get("t", "unknown"))
    except (ValueError, AttributeError):
        return "unknown"


def _line_id(line: str) -> str:
    try:
        return str(json.loads(line)["r"]["id"])
    except (ValueError, KeyError, TypeError):
        return ""


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while True:
        part = os.pread(fd, 1 << 20, offset)
        if not part:
            return b"".join(parts)
        parts.append(part)
        offset += len(part)


def _chunks(items: Iterator[StoreItem], size: int) -> Iterator[list[StoreItem]]:
    chunk: list[StoreItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
