"""Delivery of solve records and feedback events to observer plugins, off the request path.

Requests put events on a queue and return; one thread calls ``trm_on_solve`` /
``trm_on_feedback`` on every observer, one plugin at a time, isolating failures. Each ``emit``
returns a future that completes once every observer was called with the event, holding what they
returned: the store plugin returns its write ticket, which is how the HTTP server answers only
once an event is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

import pluggy

from ..plugins import call_hook

log = logging.getLogger("trm_modules.host")

_STOP = object()


class EventDispatcher:
    """A queue and a thread that hand events to observer hooks in arrival order."""

    def __init__(self, pm: pluggy.PluginManager, max_queued: int = 100_000) -> None:
        self.pm = pm
        self.delivered = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def emit(self, hook_name: str, argument_name: str, event: Any) -> "Future[list[Any]]":
        """Queue ``event`` for ``hook_name`` (blocks only when ``max_queued`` events are waiting).

        The future completes with the observers' non-None results once all were called.
        """
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name="trm-events", daemon=True)
                    self._thread.start()
        delivered: Future[list[Any]] = Future()
        self._queue.put((hook_name, argument_name, (event, delivered)))
        return delivered

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered; False if ``timeout`` seconds passed first."""
        done = threading.Event()
        if self._thread is None:
            return True
        self._queue.put((None, None, done))
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            hook_name, argument_name, event = item
            if hook_name is None:  # a flush marker
                event.set()
                continue
            event, delivered = event
            results: list[Any] = []
            try:
                results = call_hook(self.pm, hook_name, **{argument_name: event})
                self.delivered += 1
            except Exception:  # noqa: BLE001 - call_hook isolates plugins; this guards the thread itself
                log.exception("delivering %s failed", hook_name)
            delivered.set_result(results)
