"""What the solve and feedback routes do, between the HTTP shell and the host and store.

- ``solve``: the host answers; the answer goes out once its record is durable (``acknowledge``).
- ``feedback``: validated by kind (``FeedbackEvent``); an event about a solve this store does not
  know is refused with 404 unless the client marks it ``external`` — or answered 503 with ``Retry-After``
  while the solve's id was issued less than ``PENDING_SOLVE_WINDOW_S`` ago: another replica answered it and
  its record may still be on the way from that replica's queue or journal — and so is a ``void`` naming
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
from datetime import datetime, timezone
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..host import Answer, Host
from ..records import FeedbackEvent, issued_at, new_id
from ..store import Recorder, StoreUnavailable
from ..store.models import Context, Feedback, Solve
from .acknowledge import RETRY_AFTER_S, IdClaims, RecentIds, acknowledged
from .auth import course_forbidden
from .problems import Problem
from .schemas import FeedbackAccepted, FeedbackRequest
from .tokens import TokenGrant

#: Seconds a request waits for its event to become durable before it is answered 503.
DURABLE_TIMEOUT_S = 30.0
#: For this long after a solve id was issued (its UUIDv7 time), feedback on it that finds no solve in the store
#: is answered 503 + Retry-After instead of 404: the replica that answered may not have written it yet (its
#: queue, or its journal replayed when it restarts after a kill).
PENDING_SOLVE_WINDOW_S = 600.0


def store_unavailable(detail: str) -> Problem:
    """503 for a request that needs the database while it cannot be reached."""
    return Problem(
        503, "store-unavailable", "The store cannot be reached", detail, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def _recently_issued(solve_id: str) -> bool:
    """Whether ``solve_id`` is a time-ordered id (``new_id``) issued within the pending window (or a little ahead,
    for replicas' clocks that differ)."""
    issued = issued_at(solve_id)
    if issued is None:
        return False
    age = (datetime.now(timezone.utc) - issued).total_seconds()
    return -60.0 <= age <= PENDING_SOLVE_WINDOW_S


@dataclass(frozen=True)
class _KnownFeedback:
    solve_id: str
    kind: str


@dataclass(frozen=True)
class _AnsweredSolve:
    course: str | None


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
        self.recent_solves.remember(answer.solve_id, _AnsweredSolve(getattr(context, "course", None) or None))
        return answer

    async def feedback(self, body: FeedbackRequest, grant: TokenGrant | None = None) -> tuple[FeedbackAccepted, bool]:
        """(the accepted event, whether it is new): raises a 404/503 problem when refused.

        A ``grant`` limited to courses admits feedback only on solves of its courses (403 otherwise),
        an ``external`` solve (whose course this store cannot know) not at all."""
        event_id = body.id or new_id()
        limited = grant is not None and grant.limited
        async with self.claims.claim(event_id):
            known = await self._known_feedback(event_id)
            if known is not None:
                if limited:
                    await self._require_course_of(known.solve_id, grant, "the solve this feedback id is about")
                return FeedbackAccepted(id=event_id, solve_id=known.solve_id, kind=known.kind, duplicate=True), False
            if limited and body.external:
                raise Problem(
                    403,
                    "course-forbidden",
                    "Outside the token's courses",
                    "feedback on an external solve names no course this store knows; a token limited to "
                    "courses gives feedback only on solves recorded in its courses",
                    errors=[{"detail": "external feedback with a course-limited token", "pointer": "/external"}],
                )
            if limited and await self._solve_known(body.solve_id):
                await self._require_course_of(body.solve_id, grant, f"solve {body.solve_id!r}")
            if limited and body.kind == "void" and body.voids:
                voided = await self._known_feedback(body.voids, strict=True)
                if voided is not None:
                    await self._require_course_of(voided.solve_id, grant, f"the solve of feedback {body.voids!r}")
            if not body.external and not await self._solve_known(body.solve_id):
                if _recently_issued(body.solve_id):
                    raise Problem(
                        503,
                        "solve-pending",
                        "The solve is not in the store yet",
                        f"solve {body.solve_id!r} was issued less than {PENDING_SOLVE_WINDOW_S:.0f} s ago and is "
                        "not in the store yet: the server that answered it may still be writing it; retry after "
                        "the time in Retry-After",
                        headers={"Retry-After": str(RETRY_AFTER_S)},
                        errors=[{"detail": "solve not stored yet", "pointer": "/solve_id"}],
                    )
                raise Problem(
                    404,
                    "unknown-solve",
                    "No such solve",
                    f"no solve {body.solve_id!r} was recorded by this store; send feedback on a solve_id "
                    'this server answered, or set "external": true for a solve answered elsewhere',
                    errors=[{"detail": "unknown solve", "pointer": "/solve_id"}],
                )
            if body.kind == "void" and body.voids and await self._known_feedback(body.voids, strict=True) is None:
                raise Problem(
                    404,
                    "unknown-event",
                    "No such feedback event",
                    f"the void names {body.voids!r}, which is no feedback event this store holds",
                    errors=[{"detail": "unknown feedback event", "pointer": "/voids"}],
                )
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
            row = await run_in_threadpool(
                self._select, select(Feedback.solve_id, Feedback.kind).where(Feedback.id == event_id)
            )
        except (StoreUnavailable, SQLAlchemyError) as exc:
            if strict:
                raise store_unavailable(
                    f"cannot check that feedback event {event_id!r} exists while the store is "
                    "away; retry after the time in Retry-After"
                ) from exc
            return None  # the database is away: new as far as this server knows (the id keeps it stored once)
        return _KnownFeedback(row[0], row[1]) if row else None

    async def course_of_solve(self, solve_id: str) -> tuple[bool, str | None]:
        """(whether the solve is known, its course or None): from what this server answered, else the store."""
        seen = self.recent_solves.get(solve_id)
        if isinstance(seen, _AnsweredSolve):
            return True, seen.course
        try:
            row = await run_in_threadpool(
                self._select,
                select(Context.course).join(Solve, Solve.context_id == Context.id).where(Solve.id == solve_id),
            )
        except (StoreUnavailable, SQLAlchemyError) as exc:
            raise store_unavailable(
                f"cannot check the course of solve {solve_id!r} while the store is away; retry "
                "after the time in Retry-After"
            ) from exc
        return (True, row[0] or None) if row is not None else (False, None)

    async def _require_course_of(self, solve_id: str, grant: TokenGrant | None, what: str) -> None:
        if grant is None or not grant.limited:
            return
        known, course = await self.course_of_solve(solve_id)
        if known and not grant.allows(course):
            raise course_forbidden(course, grant, what)
        if not known:
            raise course_forbidden(None, grant, what)

    async def _solve_known(self, solve_id: str) -> bool:
        if solve_id in self.recent_solves:
            return True
        try:
            return await run_in_threadpool(self._select, select(Solve.id).where(Solve.id == solve_id)) is not None
        except (StoreUnavailable, SQLAlchemyError) as exc:
            raise store_unavailable(
                f"cannot check that solve {solve_id!r} exists while the store is away; retry "
                'after the time in Retry-After, or set "external": true'
            ) from exc

    def _select(self, query: Any) -> Any:
        with self.recorder.store.session() as session:
            return session.execute(query).first()
