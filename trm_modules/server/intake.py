"""What the solve and feedback routes do, between the HTTP shell and the host and store.

- ``solve``: the host answers; the answer goes out once its record is durable (``acknowledge``).
- ``feedback``: validated by kind (``FeedbackEvent``); an event about a solve this store does not
  know is refused with 404 unless the client marks it ``external``, and so is a ``void`` naming
  an event the store does not hold (it could never be stored); an id already stored is
  answered 200 with ``duplicate: true`` and changes nothing; otherwise 202 once durable.

``duplicate`` is exact for resends reaching one server: resends of one id are decided one at a
time, against the ids this server acknowledged and then the database. While the database is
away, feedback on solves this server answered is journaled and acknowledged; feedback that needs
the database to be checked is answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..host import Answer, Host
from ..records import FeedbackEvent, new_id
from ..store import Recorder, StoreUnavailable
from ..store.models import Feedback, Solve
from .acknowledge import RETRY_AFTER_S, IdClaims, RecentIds, acknowledged
from .problems import Problem
from .schemas import FeedbackAccepted, FeedbackRequest

#: Seconds a request waits for its event to become durable before it is answered 503.
DURABLE_TIMEOUT_S = 30.0


def store_unavailable(detail: str) -> Problem:
    """503 for a request that needs the database while it cannot be reached."""
    return Problem(503, "store-unavailable", "The store cannot be reached", detail,
                   headers={"Retry-After": str(RETRY_AFTER_S)})


@dataclass(frozen=True)
class _KnownFeedback:
    solve_id: str
    kind: str


class EventIntake:
    """Takes solves and feedback for one server; see the module docstring."""

    def __init__(self, host: Host, recorder: Recorder, durable_timeout_s: float = DURABLE_TIMEOUT_S) -> None:
        self.host = host
        self.recorder = recorder
        self.durable_timeout_s = durable_timeout_s
        self.recent_solves = RecentIds()
        self.recent_feedback = RecentIds()
        self.claims = IdClaims()

    async def solve(self, module: str, data: dict[str, Any], context: Any, solve_id: str | None) -> Answer:
        """The host's answer, returned once its record is durable (else a 503 problem)."""
        answer = await self.host.asolve(module, data, context, solve_id=solve_id)
        observed = await asyncio.wrap_future(answer.observed) if answer.observed is not None else []
        await acknowledged(observed, f"solve {answer.solve_id}", self.durable_timeout_s)
        self.recent_solves.remember(answer.solve_id)
        return answer

    async def feedback(self, body: FeedbackRequest) -> tuple[FeedbackAccepted, bool]:
        """(the accepted event, whether it is new): raises a 404/503 problem when refused."""
        event_id = body.id or new_id()
        async with self.claims.claim(event_id):
            known = await self._known_feedback(event_id)
            if known is not None:
                return FeedbackAccepted(id=event_id, solve_id=known.solve_id, kind=known.kind, duplicate=True), False
            if not body.external and not await self._solve_known(body.solve_id):
                raise Problem(404, "unknown-solve", "No such solve",
                              f"no solve {body.solve_id!r} was recorded by this store; send feedback on a solve_id "
                              "this server answered, or set \"external\": true for a solve answered elsewhere",
                              errors=[{"detail": "unknown solve", "pointer": "/solve_id"}])
            if body.kind == "void" and body.voids and await self._known_feedback(body.voids, strict=True) is None:
                raise Problem(404, "unknown-event", "No such feedback event",
                              f"the void names {body.voids!r}, which is no feedback event this store holds",
                              errors=[{"detail": "unknown feedback event", "pointer": "/voids"}])
            fields = body.model_dump(exclude_none=True, exclude={"external", "id"})
            event, observed = await self.host.afeedback(FeedbackEvent(id=event_id, source="api", **fields))
            await acknowledged(observed, f"feedback {event_id}", self.durable_timeout_s)
            self.recent_feedback.remember(event_id, _KnownFeedback(event.solve_id, event.kind))
        return FeedbackAccepted(id=event.id, solve_id=event.solve_id, kind=event.kind), True

    async def _known_feedback(self, event_id: str, strict: bool = False) -> _KnownFeedback | None:
        """The stored event ``event_id``, else None; while the database is away: None (``strict``: 503)."""
        remembered = self.recent_feedback.get(event_id)
        if remembered is not None:
            return remembered
        try:
            row = await run_in_threadpool(self._select, select(Feedback.solve_id, Feedback.kind)
                                          .where(Feedback.id == event_id))
        except (StoreUnavailable, SQLAlchemyError) as exc:
            if strict:
                raise store_unavailable(f"cannot check that feedback event {event_id!r} exists while the store is "
                                        "away; retry after the time in Retry-After") from exc
            return None  # the database is away: new as far as this server knows (the id keeps it stored once)
        return _KnownFeedback(row[0], row[1]) if row else None

    async def _solve_known(self, solve_id: str) -> bool:
        if solve_id in self.recent_solves:
            return True
        try:
            return await run_in_threadpool(self._select, select(Solve.id).where(Solve.id == solve_id)) is not None
        except (StoreUnavailable, SQLAlchemyError) as exc:
            raise store_unavailable(f"cannot check that solve {solve_id!r} exists while the store is away; retry "
                                    "after the time in Retry-After, or set \"external\": true") from exc

    def _select(self, query: Any) -> Any:
        with self.recorder.store.session() as session:
            return session.execute(query).first()
