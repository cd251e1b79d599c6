"""Recording off the solve path: a queue, a background writer, and a journal for when the database is away.

Acknowledgement (the durability point)
--------------------------------------
``record_*`` returns a :class:`WriteTicket` at once; the item is *acknowledged* when its ticket is
done, which happens only after the item is durable: committed to the database, or appended to the
local journal and fsync'd (when the database cannot be reached), or, for an item the database
refuses for good (a void naming an unknown event), written with its reason to the journal's
``.rejected.jsonl`` file. ``record_*(…, durable=True)`` (or ``Recorder(durable=True)``) waits for
the acknowledgement before returning. Tickets complete in submission order: when one is done,
every item submitted before it is durable too. An item that was queued but not yet acknowledged
when the process died may be lost; an acknowledged one never is: the journal is replayed into the
database on start, before every batch while it holds anything, and every ``replay_interval_s``,
and replay is idempotent because every item carries its id.

SQLite commits are fsync'd (``synchronous=FULL``) by default, so acknowledgement holds across a
power loss, not only a process crash; PostgreSQL's default ``synchronous_commit=on`` does the same.

Group commit: everyone waiting on a ticket nudges the writer, which then writes everything queued
so far as one transaction (one fsync), so many concurrent requests share one commit. Asyncio code
awaits ``WriteTicket.wait_async`` without holding a thread.

Supervision: the writer thread never dies of an item. Rows the database refuses go to its
``dead_letters`` table (``Store.write``); should anything else escape the writer's loop, the batch
in hand is kept, the loop starts again after a pause, and ``stats.writer_restarts`` /
``stats.last_writer_error`` say so (``/healthz``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
import atexit
import heapq
import itertools
import logging
import os
import threading
from collections import deque
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..records import FeedbackEvent, OutcomeRecord, SolveRecord
from .errors import RecorderClosed, RecorderOverloaded, StoreError, StoreUnavailable
from .journal import Journal, default_journal_path
from .items import StoreItem, check_item
from .storage import Store

log = logging.getLogger(__name__)

_MAX_RETRY_DELAY_S = 30.0


class WriteTicket:
    """The acknowledgement of one recorded item: done once the item is durable."""

    __slots__ = ("_recorder", "seq")

    def __init__(self, recorder: "Recorder", seq: int) -> None:
        self._recorder = recorder
        self.seq = seq

    def done(self) -> bool:
        """Whether the item is durable (in the database, the journal, or the rejected file)."""
        return self._recorder._durable_seq >= self.seq

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the item is durable; False if ``timeout`` seconds passed first."""
        return self._recorder._wait_durable(self.seq, timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """``wait`` for asyncio code: awaits the acknowledgement without blocking a thread."""
        return await self._recorder.wait_durable_async(self.seq, timeout)


@dataclass
class RecorderStats:
    """What a recorder has done so far (items)."""

    written: int = 0
    journaled: int = 0
    replayed: int = 0
    rejected: int = 0  #: refused for good by the database: in its dead_letters table
    writer_restarts: int = 0
    last_writer_error: str | None = None


class _Nudge:
    """Put behind an item someone waits for: the writer writes what is queued now instead of at its deadline."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Flush:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


def _set_result(future: "asyncio.Future[bool]", value: bool) -> None:
    if not future.done():
        future.set_result(value)


_STOP = object()
_open_recorders: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


@atexit.register
def _close_open_recorders() -> None:
    for recorder in list(_open_recorders):
        recorder.close()


class Recorder:
    """Writes solve records and feedback events to a :class:`Store` in the background.

    ``store``: a Store, or a URL / SQLite path for one (None: ``$TRM_DB_URL`` or the default).
    A batch is written when ``batch_size`` items are queued or ``flush_interval_s`` after its first
    item. ``journal_path`` defaults to one file per database URL in the user data directory. After a
    failed write the database is tried again after ``min_retry_delay_s``, doubling up to 30 s;
    meanwhile batches go straight to the journal.
    See the module docstring for when an item counts as acknowledged.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        journal_path: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        replay_interval_s: float = 30.0,
        max_queue: int = 100_000,
        enqueue_timeout_s: float = 1.0,
        durable: bool = False,
        durable_timeout_s: float = 60.0,
        min_retry_delay_s: float = 0.5,
    ) -> None:
        if batch_size < 1 or flush_interval_s < 0 or max_queue < 1:
            raise StoreError(
                f"Recorder needs batch_size ≥ 1, flush_interval_s ≥ 0 and max_queue ≥ 1; got "
                f"{batch_size}, {flush_interval_s}, {max_queue}"
            )
        self._owns_store = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store)
        # Which plugins' tables the store migrates is settled now, not by a first write at interpreter exit
        # (when plugins could no longer be imported).
        self.store.plugin_manager()
        self.journal = Journal(journal_path if journal_path is not None else default_journal_path(self.store.url))
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.replay_interval_s = replay_interval_s
        self.enqueue_timeout_s = enqueue_timeout_s
        self.durable = durable
        self.durable_timeout_s = durable_timeout_s
        self.min_retry_delay_s = min_retry_delay_s
        self.stats = RecorderStats()

        self.max_queue = max_queue
        # A deque and an Event rather than queue.Queue: producers append without waking the writer
        # per item (which would hand the GIL back and forth on every record); the writer is woken
        # when a batch is full, when someone waits, or by its own timer.
        self._buffer: deque[Any] = deque()
        self._submit_lock = threading.Lock()  # seq order == buffer order
        self._wake = threading.Event()
        self._controls_queued = 0  # flush / nudge / stop markers in the buffer (guarded by _submit_lock)
        self._next_seq = 1
        self._durable_seq = 0
        self._durable_changed = threading.Condition()
        self._closed = False
        self._retry_at = 0.0
        self._retry_delay = 0.0
        self._last_replay_attempt = 0.0
        self._in_hand: list[tuple[int, StoreItem]] = []
        self._stop_seen = False
        self._database_down = False  # the batch being persisted (kept across a restart)
        self._async_waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._async_lock = threading.Lock()
        self._waiter_order = itertools.count()
        self._writer_lock = threading.Lock()
        self._writer = self._start_writer()
        _open_recorders.add(self)

    def _start_writer(self) -> threading.Thread:
        writer = threading.Thread(target=self._supervise, name=f"trm-store-recorder-{id(self):x}", daemon=True)
        writer.start()
        return writer

    @property
    def database_available(self) -> bool:
        """False while the last write to the database failed (items go to the journal until it answers)."""
        return not self._database_down

    @property
    def pending(self) -> int:
        """Items submitted but not yet durable."""
        return self._next_seq - 1 - self._durable_seq

    @property
    def journal_path(self) -> Path:
        return self.journal.path

    # -- submitting -----------------------------------------------------------------------------

    def record_solve(self, record: SolveRecord, *, durable: bool | None = None) -> WriteTicket:
        """Queue ``record`` for writing; with ``durable`` (default: the recorder's) wait for its acknowledgement."""
        return self._submit(record, durable)

    def record_feedback(self, event: FeedbackEvent, *, durable: bool | None = None) -> WriteTicket:
        """Queue feedback ``event`` for writing (append-only; a retraction is a ``void`` event)."""
        return self._submit(event, durable)

    def record_outcome(self, outcome: OutcomeRecord, *, durable: bool | None = None) -> WriteTicket:
        """Queue a learner outcome (idempotent by id; acknowledged like feedback)."""
        return self._submit(outcome, durable)

    def _submit(self, item: StoreItem, durable: bool | None) -> WriteTicket:
        check_item(item)
        if len(self._buffer) >= self.max_queue:
            self._wait_for_room(item)
        with self._submit_lock:
            if self._closed:
                raise RecorderClosed(
                    f"the recorder for {self.store!r} is closed; {type(item).__name__} {item.id!r} was not recorded"
                )
            seq = self._next_seq
            self._next_seq = seq + 1
            self._buffer.append((seq, item))
        if len(self._buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        ticket = WriteTicket(self, seq)
        if self.durable if durable is None else durable:
            if not ticket.wait(self.durable_timeout_s):
                raise StoreError(
                    f"{type(item).__name__} {item.id!r} was queued but not durable within "
                    f"{self.durable_timeout_s} s (database and journal both failing?)"
                )
        return ticket

    def _wait_for_room(self, item: StoreItem) -> None:
        deadline = time.monotonic() + self.enqueue_timeout_s
        self._restart_dead_writer()
        self._wake.set()
        while len(self._buffer) >= self.max_queue:
            if time.monotonic() >= deadline:
                raise RecorderOverloaded(
                    f"the recorder queue ({self.max_queue} items) stayed full for "
                    f"{self.enqueue_timeout_s} s; {type(item).__name__} {item.id!r} was not "
                    "recorded: the database and the journal fall behind"
                )
            time.sleep(0.001)

    def _enqueue_control(self, marker: Any) -> None:
        with self._submit_lock:
            self._buffer.append(marker)
            self._controls_queued += 1
        self._wake.set()

    # -- waiting, replay, closing ---------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far now; True once it is all durable, False on ``timeout``."""
        if not self._writer.is_alive():
            return self._durable_seq >= self._next_seq - 1
        marker = _Flush()
        self._enqueue_control(marker)
        return marker.event.wait(timeout)

    def replay_journal(self) -> int:
        """Replay the journal into the database now (in the caller's thread); returns how many items it held."""

        def write(items: Sequence[StoreItem]) -> list:
            rejected = self.store.write(items)  # refused rows are in the dead_letters table
            self.stats.rejected += len(rejected)
            return []

        def dead_letters(letters: list[tuple[str, str, str, str]]) -> None:
            self.store.add_dead_letters(letters)
            self.stats.rejected += len(letters)

        replayed = self.journal.replay(write, dead_letters=dead_letters)
        self.stats.replayed += replayed
        return replayed

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the writer and release the database (also run at interpreter exit)."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
        self._enqueue_control(_STOP)
        self._writer.join(timeout)
        if self._writer.is_alive():
            log.error(
                "the store recorder did not finish within %s s; %d queued items are not yet durable",
                timeout,
                self._next_seq - 1 - self._durable_seq,
            )
        elif self._owns_store:
            self.store.close()
        _open_recorders.discard(self)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait_durable(self, seq: int, timeout: float | None) -> bool:
        if self._durable_seq >= seq:
            return True
        self._restart_dead_writer()
        self._enqueue_control(_Nudge(seq))  # group commit: write what is queued now
        with self._durable_changed:
            return self._durable_changed.wait_for(lambda: self._durable_seq >= seq, timeout)

    async def wait_durable_async(self, seq: int, timeout: float | None = None) -> bool:
        """Await until item ``seq`` is durable; False if ``timeout`` seconds passed first."""
        if self._durable_seq >= seq:
            return True
        self._restart_dead_writer()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self._async_lock:
            heapq.heappush(self._async_waiters, (seq, next(self._waiter_order), loop, future))
        if self._durable_seq >= seq:  # the writer may have passed seq before we were listed
            self._resolve_async_waiters()
        else:
            self._enqueue_control(_Nudge(seq))
        timer = loop.call_later(timeout, _set_result, future, False) if timeout is not None else None
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()

    def _resolve_async_waiters(self) -> None:
        durable = self._durable_seq
        with self._async_lock:
            ready = []
            while self._async_waiters and self._async_waiters[0][0] <= durable:
                ready.append(heapq.heappop(self._async_waiters))
        for _, _, loop, future in ready:
            try:
                loop.call_soon_threadsafe(_set_result, future, True)
            except RuntimeError:  # that event loop is closed: nobody waits any more
                pass

    def _mark_durable(self, seq: int) -> None:
        with self._durable_changed:
            self._durable_seq = seq
            self._durable_changed.notify_all()
        if self._async_waiters:
            self._resolve_async_waiters()

    # -- the writer thread ----------------------------------------------------------------------

    def _supervise(self) -> None:
        """The writer thread: run the loop; if anything escapes it, note it, pause, and run it again."""
        pause = 0.05
        while True:
            try:
                self._run()
                return
            except BaseException as exc:  # noqa: BLE001 - the writer must outlive any error
                self.stats.writer_restarts += 1
                self.stats.last_writer_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.critical(
                    "the store writer failed (%s); restarting it in %.2f s with its batch in hand",
                    self.stats.last_writer_error,
                    pause,
                    exc_info=exc,
                )
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _restart_dead_writer(self) -> None:
        """Start a new writer thread if the current one is gone (it never should be; this is the backstop)."""
        if self._writer.is_alive():
            return
        with self._writer_lock:
            if self._writer.is_alive() or self._closed:
                return
            self.stats.writer_restarts += 1
            self.stats.last_writer_error = self.stats.last_writer_error or "the writer thread was gone"
            log.critical("the store writer thread was gone; starting a new one")
            self._writer = self._start_writer()

    def _run(self) -> None:
        if self._in_hand:  # a batch the previous loop was persisting when it failed
            self._persist([item for _, item in self._in_hand])
            self._mark_durable(self._in_hand[-1][0])
            self._in_hand = []
        self._replay_if_due(force=True)
        stopping = self._stop_seen
        while not stopping:
            batch, flushes, stopping = self._collect_batch()
            self._stop_seen = stopping
            if batch:
                self._in_hand = batch
                self._persist([item for _, item in batch])
                self._mark_durable(batch[-1][0])
                self._in_hand = []
            else:
                self._replay_if_due()
            for marker in flushes:
                marker.event.set()

    def _collect_batch(self) -> tuple[list[tuple[int, StoreItem]], list[_Flush], bool]:
        """Up to ``batch_size`` items, ended early by a flush or a stop; a nudge only means "do not wait"."""
        if len(self._buffer) < self.batch_size and not self._controls_queued:
            self._wake.wait(self.flush_interval_s if self._buffer else min(self.replay_interval_s, 1.0))
        self._wake.clear()
        batch: list[tuple[int, StoreItem]] = []
        flushes: list[_Flush] = []
        while self._buffer and len(batch) < self.batch_size:
            entry = self._buffer.popleft()
            if not isinstance(entry, tuple):
                with self._submit_lock:
                    self._controls_queued -= 1
            if entry is _STOP:
                return batch, flushes, True
            if isinstance(entry, _Flush):
                flushes.append(entry)
                break
            if isinstance(entry, _Nudge):
                continue  # someone waits: write what is queued now (all of it: one commit for every waiter)
            batch.append(entry)
        return batch, flushes, False

    def _persist(self, items: Sequence[StoreItem]) -> None:
        """Make ``items`` durable: the database if it answers, else the journal; retries until one works."""
        while True:
            if time.monotonic() >= self._retry_at:
                try:
                    if self.journal.has_entries():
                        self.replay_journal()  # older items first, so voids find what they void
                    rejected = self.store.write(items)  # refused rows are in the dead_letters table
                    self.stats.written += len(items) - len(rejected)
                    self.stats.rejected += len(rejected)
                    self._database_answered()
                    return
                except Exception as exc:  # noqa: BLE001 - whatever the database does, the items must survive
                    self._database_failed(exc)
            try:
                self.journal.append(items)
                self.stats.journaled += len(items)
                return
            except OSError as exc:
                log.error(
                    "cannot append %d items to the journal %s (%s); retrying in 1 s", len(items), self.journal.path, exc
                )
                time.sleep(1.0)

    def _replay_if_due(self, force: bool = False) -> None:
        """Replay the journal every ``replay_interval_s``; while the database is down, try it again (or
        just reach it, when nothing is journaled) as soon as the back-off allows, so that it is seen
        to be back without waiting for traffic."""
        now = time.monotonic()
        if now < self._retry_at:
            return
        if not (force or self._database_down) and now - self._last_replay_attempt < self.replay_interval_s:
            return
        self._last_replay_attempt = now
        if self.journal.has_entries() or self._database_down:
            self.probe_database()

    def probe_database(self) -> bool:
        """Replay the journal (or, when it is empty, just reach the database) now; whether the database answered."""
        try:
            if self.journal.has_entries():
                self.replay_journal()
            else:
                self.store.ping()
        except Exception as exc:  # noqa: BLE001 - whatever the database does, it is "down" until it answers
            self._database_failed(exc)
            return False
        self._database_answered()
        return True

    def note_database_down(self, exc: Exception) -> None:
        """Record that the database could not be reached (e.g. at start): shown as down until it answers."""
        self._database_failed(exc)

    def _database_answered(self) -> None:
        self._database_down = False
        if self._retry_delay:
            log.warning("the store at %r answers again", self.store)
        self._retry_delay = 0.0
        self._retry_at = 0.0

    def _database_failed(self, exc: Exception) -> None:
        self._database_down = True
        if not self._retry_delay:
            level = logging.WARNING if isinstance(exc, StoreUnavailable) else logging.ERROR
            log.log(
                level,
                "cannot write to %r (%s); journaling to %s until it answers",
                self.store,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                self.journal.path,
                exc_info=not isinstance(exc, StoreUnavailable),
            )
        self._retry_delay = min(max(self._retry_delay * 2, self.min_retry_delay_s), _MAX_RETRY_DELAY_S)
        self._retry_at = time.monotonic() + self._retry_delay
