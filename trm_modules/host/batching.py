"""Micro-batching: requests to one loaded version that arrive close together run as one batch.

One worker thread per loaded version forms batches of up to ``max_batch_size`` requests and runs
each as one ``model.solve`` call. A batch waits for the queue to *fill*, not for the first arrival:

- its target size is the number of callers the batcher has seen recently — the rows of a finished
  batch plus the requests that queued while it ran (a caller that just got its answer comes back
  for the next one) — so 16 callers in a loop give batches of 16, and one caller gives batches of 1;
- its wait is bounded: ``window_s``, or ``wait_fraction`` of the recent batches' compute time when
  that is longer, counted from the moment the worker is free to start the batch (a request that
  queued behind a running batch has not waited for company; it waited for the device).

Why: while a batch computes, the compute thread holds the interpreter most of the time and the
callers that just got answers cannot yet send their next requests; the moment it stops they can, and
waiting a few milliseconds for them turns many small batches into one full one. Waiting costs at
most ``wait_fraction`` of a batch's compute. TRM's early halting drops finished rows from the batch,
and every row's computation is independent of the others, so a batched answer equals the unbatched one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: ``run_batch(tokens (B, L) int64, puzzle_ids (B,) int64) -> (tokens (B, L), steps (B,), confidence (B,))``
BatchRunner = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RowResult:
    """One request's share of a batch result."""

    tokens: np.ndarray  # (L,)
    steps: int
    confidence: float
    batch_size: int


@dataclass
class _Request:
    tokens: np.ndarray
    puzzle_id: int
    future: Future
    arrived: float


class BatcherClosed(RuntimeError):
    """The version's batcher was closed while a request was waiting (the host is shutting down)."""


class MicroBatcher:
    """Collects concurrent single-example requests into batches for one model on one device."""

    def __init__(
        self,
        run_batch: BatchRunner,
        *,
        window_s: float = 0.002,
        max_batch_size: int = 64,
        wait_fraction: float = 0.1,
        name: str = "trm-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_batch_size = max_batch_size
        self.wait_fraction = wait_fraction
        self._recent: deque[tuple[int, float]] = deque(maxlen=8)  # (rows, seconds) of recent batches
        self._callers: deque[int] = deque(maxlen=4)  # callers seen around recent batches (rows + queued after)
        self._free_since = 0.0  # when the worker finished its last batch (perf_counter)
        self.batches = 0
        self.rows = 0
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, tokens: np.ndarray, puzzle_id: int = 0) -> "Future[RowResult]":
        """Queue one example (``tokens`` of shape (L,)); the future resolves to its ``RowResult``."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"{self._thread.name} is closed")
            self._queue.append(_Request(tokens, int(puzzle_id), future, time.perf_counter()))
            self._cond.notify()
        return future

    def close(self, wait: bool = True) -> None:
        """Stop the worker after the batch in progress; requests still queued fail with ``BatcherClosed``.

        With ``wait`` the call returns once the worker thread has ended.
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _take_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                for request in self._queue:
                    request.future.set_exception(BatcherClosed(f"{self._thread.name} closed"))
                self._queue.clear()
                return None
            wait, target = self.window_s, self.max_batch_size
            if self._recent:
                wait = max(wait, self.wait_fraction * sum(s for _, s in self._recent) / len(self._recent))
                target = min(target, max(self._callers))
            deadline = max(self._queue[0].arrived, self._free_since) + wait
            while len(self._queue) < target and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(len(self._queue), self.max_batch_size)
            return [self._queue.popleft() for _ in range(count)]

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                tokens = np.stack([r.tokens for r in batch]).astype(np.int64, copy=False)
                puzzle_ids = np.array([r.puzzle_id for r in batch], dtype=np.int64)
                started = time.perf_counter()
                out_tokens, steps, confidence = self.run_batch(tokens, puzzle_ids)
                self._recent.append((len(batch), time.perf_counter() - started))
            except BaseException as exc:  # noqa: BLE001 - the callers get the error, the worker lives on
                for request in batch:
                    request.future.set_exception(exc)
                continue
            finally:
                with self._cond:
                    self._free_since = time.perf_counter()
                    self._callers.append(len(batch) + len(self._queue))
            self.batches += 1
            self.rows += len(batch)
            for i, request in enumerate(batch):
                request.future.set_result(RowResult(out_tokens[i], int(steps[i]), float(confidence[i]), len(batch)))
