"""One compute thread per device: every model call of the host runs there.

Why: torch's CPU kernels parallelise with OpenMP, and every thread that calls them gets its own
team of worker threads that keep spinning for a while after each call. One team per loaded
version (a thread per batcher) oversubscribes the cores many times over; one thread per device
keeps one team, and on a device computing one batch at a time is as fast as it gets anyway.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

_executors: dict[str, ThreadPoolExecutor] = {}
_compute_threads: set[int] = set()
_lock = threading.Lock()


def _mark_compute_thread() -> None:
    _compute_threads.add(threading.get_ident())


def run_on_device(device: str, function: Callable[..., T], *args: object) -> T:
    """Run ``function(*args)`` on ``device``'s compute thread and return its result (exceptions propagate)."""
    if threading.get_ident() in _compute_threads:  # already on a compute thread: no hop, no deadlock
        return function(*args)
    executor = _executors.get(device)
    if executor is None:
        with _lock:
            executor = _executors.get(device)
            if executor is None:
                executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"trm-compute-{device}", initializer=_mark_compute_thread
                )
                _executors[device] = executor
    return executor.submit(function, *args).result()
