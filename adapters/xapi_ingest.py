"""Receiving xAPI statements like an LRS does: check, de-duplicate by id, store raw, turn into feedback.

``XapiInbox.receive`` is what ``POST``/``PUT /xapi/statements`` of ``trm serve`` call. Every
statement is stored verbatim (table ``xapi_statements``, keyed by its id). A statement whose
object is a solve (``…/solves/{solve_id}``, see ``xapi_statements``) also becomes a
``FeedbackEvent`` with source ``"xapi"`` and the statement's id; a ``voided`` statement naming
such a statement becomes a ``void`` event. A statement id seen before is not processed again,
so a batch posted twice lands as feedback once; the same id with different content is a conflict.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from trm_modules.errors import TRMError
from trm_modules.records import FeedbackEvent
from trm_modules.store import Recorder
from trm_modules.store.models import Feedback, XapiStatement

from .xapi_statements import check_statement, feedback_from_statement, voided_statement_id

#: Properties an LRS sets itself; two posts of one statement may differ in them.
LRS_ASSIGNED = ("stored", "authority", "version")


class StatementConflict(TRMError):
    """A statement id is already stored with different content (xAPI: 409 Conflict)."""

    def __init__(self, statement_id: str, pointer: str) -> None:
        super().__init__(f"statement {statement_id} is already stored with different content; "
                         "statement ids are immutable (send a new id, or void the old statement)")
        self.statement_id = statement_id
        self.pointer = pointer


def _comparable(statement: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in statement.items() if k not in LRS_ASSIGNED}


class XapiInbox:
    """Receives statements for one store; ``feedback`` is called with each event (usually ``Host.feedback``).

    ``flush_observers`` (usually ``Host.flush``) must return once the events given to ``feedback``
    were handed to the store's recorder: a statement is acknowledged only after its feedback.
    """

    def __init__(self, recorder: Recorder, feedback: Any, flush_observers: Any = None) -> None:
        self.recorder = recorder
        self.feedback = feedback
        self.flush_observers = flush_observers or (lambda: True)
        self._lock = threading.Lock()  # check-then-store of ids is one step per server

    def _stored(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.recorder.store.session() as session:
            rows = session.execute(select(XapiStatement.id, XapiStatement.statement).where(XapiStatement.id.in_(ids)))
            return {row[0]: row[1] for row in rows}

    def _feedback_solve_ids(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        with self.recorder.store.session() as session:
            rows = session.execute(select(Feedback.id, Feedback.solve_id).where(Feedback.id.in_(ids)))
            return {row[0]: row[1] for row in rows}

    def receive(self, statements: list[Any]) -> tuple[list[str], list[FeedbackEvent]]:
        """Store ``statements``; returns their ids (request order) and the feedback events they gave.

        Raises ``XapiStatementError`` (invalid statement; nothing is stored) or ``StatementConflict``.
        """
        checked = [check_statement(s, f"/{i}") for i, s in enumerate(statements)]
        ids = [s["id"] for s in checked]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, sid in enumerate(ids) if ids.index(sid) != i)
            raise StatementConflict(ids[duplicate], f"/{duplicate}/id")
        with self._lock:
            known = self._stored(ids)
            fresh = []
            for index, statement in enumerate(checked):
                previous = known.get(statement["id"])
                if previous is None:
                    fresh.append(statement)
                elif _comparable(previous) != _comparable(statement):
                    raise StatementConflict(statement["id"], f"/{index}")
            events = self._feedback_of(fresh)
            for event in events:
                self.feedback(event)
            if events:
                self.flush_observers()
            stored_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            tickets = [self.recorder.record_xapi_statement({**s, "stored": stored_at}) for s in fresh]
            if tickets and not tickets[-1].wait(self.recorder.durable_timeout_s):
                raise TRMError("the statements were queued but not durable in time; retry the request "
                               "(statement ids make the retry safe)")
        return ids, events

    def _feedback_of(self, statements: list[dict[str, Any]]) -> list[FeedbackEvent]:
        events: list[FeedbackEvent] = []
        voided = {s["id"]: voided_statement_id(s) for s in statements if voided_statement_id(s)}
        known_solves = self._feedback_solve_ids(list(voided.values()))
        for statement in statements:
            target = voided.get(statement["id"])
            if target is None:
                event = feedback_from_statement(statement)
                if event is not None:
                    events.append(event)
                    known_solves[event.id] = event.solve_id
                continue
            solve_id = known_solves.get(target)
            if solve_id is not None:
                events.append(FeedbackEvent(id=statement["id"], solve_id=solve_id, kind="void", voids=target,
                                            source="xapi"))
        return events
