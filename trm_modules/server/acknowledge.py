"""Acknowledged means stored: the server answers 200/202 only once an event is durable.

The host hands every solve record and feedback event to its observers; the store's observer
returns a ``WriteTicket``. A route awaits those tickets (``acknowledged``) before it answers, so an
answer the client saw is in the database or in the fsync'd journal and survives ``kill -9``.
Concurrent requests share commits (the recorder's group commit), so waiting costs one fsync per
batch, not per request. If no ticket comes back (the recorder refused the item) or it is not
durable in time, the request is answered 503 with ``Retry-After``: the client retries with the
same id, which the store makes harmless.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable

from ..store import WriteTicket
from .problems import Problem

#: Seconds a client is asked to wait before retrying a request the store could not take.
RETRY_AFTER_S = 5


def not_recorded(what: str, why: str) -> Problem:
    """503: ``what`` was not made durable; retrying with the same id is safe."""
    return Problem(
        503,
        "not-recorded",
        "The event could not be recorded",
        f"{what} was not recorded: {why}; nothing was acknowledged, retry with the same id",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def acknowledged(observer_results: Iterable[Any], what: str, timeout_s: float) -> None:
    """Return once every write ticket among ``observer_results`` is durable, else raise a 503 problem."""
    tickets = [result for result in observer_results if isinstance(result, WriteTicket)]
    if not tickets:
        raise not_recorded(what, "the store did not take it (queue full or closed)")
    for ticket in tickets:
        if not await ticket.wait_async(timeout_s):
            raise not_recorded(what, f"neither the database nor the journal took it within {timeout_s:g} s")


class RecentIds:
    """A bounded memory of ids this server acknowledged (oldest forgotten first), with a value each."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, Any] = OrderedDict()

    def remember(self, key: str, value: Any = True) -> None:
        self._ids[key] = value
        self._ids.move_to_end(key)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def get(self, key: str) -> Any:
        return self._ids.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._ids


class IdClaims:
    """One request at a time per id (asyncio): concurrent resends of one event are decided in turn."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
