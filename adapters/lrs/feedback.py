"""Which stored statements become feedback on a solve, and handing them to the host.

Only a statement that (1) uses one of the documented feedback verbs (``FEEDBACK_VERBS``), (2) has
a solve's activity IRI (``…/v1/solves/{id}``) as its object and (3) was not emitted by a
trm-modules server (``context.extensions`` carries ``EXT_EMITTED_BY``) becomes a ``FeedbackEvent``;
a ``voided`` statement that names a feedback statement becomes a ``void`` event. So an LRS that
forwards every statement back to ``/xapi`` (the server's own ``asked`` / ``responded`` statements
among them) cannot turn the server's outbound stream into corrections.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import select

from trm_modules.errors import TRMError
from trm_modules.records import FeedbackEvent
from trm_modules.store.models import Feedback

from ..xapi_statements import EXT_EMITTED_BY, FEEDBACK_VERBS, feedback_from_statement, voided_statement_id
from .outcomes import outcome_of


def emitted_by_a_server(statement: dict[str, Any]) -> bool:
    """Whether a trm-modules server wrote this statement (its own solves and feedback, sent out)."""
    extensions = (statement.get("context") or {}).get("extensions") or {}
    return EXT_EMITTED_BY in extensions


def feedback_of(statement: dict[str, Any]) -> FeedbackEvent | None:
    """The feedback event a stored statement gives on a solve, or None (not every statement is feedback)."""
    if emitted_by_a_server(statement) or statement["verb"]["id"] not in FEEDBACK_VERBS:
        return None
    return feedback_from_statement(statement)


class FeedbackBridge:
    """Turns newly stored statements into feedback events (``feedback``: usually ``Host.feedback``) and
    learner outcomes (``outcomes.outcome_of``; ``base``: this server's public URL, whose course IRIs
    name an outcome's course).

    ``receive`` returns once the events and outcomes are durable in the store, so the LRS
    acknowledges a statement only after the feedback or result it carries survives a crash.
    """

    def __init__(
        self,
        recorder: Any,
        feedback: Callable[[FeedbackEvent], Any],
        flush_observers: Callable[[], Any] = lambda: True,
        base: str = "http://127.0.0.1:8000",
    ) -> None:
        self.recorder = recorder
        self.feedback = feedback
        self.flush_observers = flush_observers
        self.base = base

    def events(self, statements: list[dict[str, Any]]) -> list[FeedbackEvent]:
        events: list[FeedbackEvent] = []
        voids = {
            s["id"]: voided_statement_id(s) for s in statements if voided_statement_id(s) and not emitted_by_a_server(s)
        }
        known = self._feedback_solve_ids([t for t in voids.values() if t])
        for statement in statements:
            target = voids.get(statement["id"])
            if target is None:
                event = feedback_of(statement)
                if event is not None:
                    events.append(event)
                    known[event.id] = event.solve_id
            elif target in known:
                events.append(
                    FeedbackEvent(id=statement["id"], solve_id=known[target], kind="void", voids=target, source="xapi")
                )
        return events

    def _feedback_solve_ids(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        candidates = set(ids) | {i.lower() for i in ids}
        with self.recorder.store.session() as session:
            rows = session.execute(select(Feedback.id, Feedback.solve_id).where(Feedback.id.in_(candidates)))
            return {row[0]: row[1] for row in rows}

    def receive(self, statements: list[dict[str, Any]]) -> list[FeedbackEvent]:
        """Hand the feedback in ``statements`` the store does not hold yet to the host; wait until it does.

        A statement sent again (a client's retry after a failed request) gives its feedback only if
        the first request did not get it stored.
        """
        events = self.events(statements)
        if events:
            known = self._feedback_solve_ids([e.id for e in events])
            events = [e for e in events if e.id not in known]
        for event in events:
            self.feedback(event)
        # Learner outcomes: idempotent by statement id in the store, so a resent statement changes nothing.
        outcomes = [o for o in (outcome_of(s, self.base) for s in statements) if o is not None]
        for outcome in outcomes:
            self.recorder.record_outcome(outcome, durable=False)
        if events or outcomes:
            if events:
                self.flush_observers()
            if not self.recorder.flush(self.recorder.durable_timeout_s):
                raise TRMError(
                    "the statements are stored but their feedback or outcomes were not durable in time; "
                    "retry the request (statement ids make the retry safe)"
                )
        return events
