"""Trials ended by their policies while ``trm serve`` runs (``trm_modules.store.trial_policy``).

A ``TrialEvaluator`` thread evaluates every running trial (a module's canary) that has a stored policy,
every ``trial_evaluation_s`` seconds and shortly after a verdict arrives (``correct`` / ``incorrect``
feedback, from any route: it observes ``trm_on_feedback``; at most once per ``trial_nudge_gap_s``).
A promote or rollback goes through this replica's ``ReplicatedRouting.change`` — the call the admin
activate and canary routes make — with its audit row in the same transaction, so when every replica
evaluates, one decision lands and every replica follows it through the routing watcher.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from ..hookspecs import hookimpl
from ..records import FeedbackEvent
from ..store import StoreError, Store
from ..store.trial_policy import TrialRound, evaluate_trials
from .routing import ReplicatedRouting

log = logging.getLogger("trm_modules.server")

VERDICT_KINDS = frozenset({"correct", "incorrect"})
#: After a verdict, wait this long before evaluating (the recorder writes it within milliseconds).
SETTLE_S = 0.5


class TrialEvaluator:
    """Evaluates the running trials of one replica's store periodically and when verdicts arrive."""

    def __init__(
        self, store: Store, routing: ReplicatedRouting, *, interval_s: float = 60.0, nudge_gap_s: float = 2.0
    ) -> None:
        self.store = store
        self.routing = routing
        self.interval_s = interval_s
        self.nudge_gap_s = nudge_gap_s
        self.rounds = 0
        self.last: TrialRound | None = None
        self._lock = threading.Lock()  # one evaluation at a time in this process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trm-trial-evaluator", daemon=True)

    def start(self) -> "TrialEvaluator":
        if self.interval_s > 0:
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def nudge(self) -> None:
        """Evaluate soon (a verdict arrived)."""
        self._wake.set()

    @hookimpl
    def trm_on_feedback(self, event: FeedbackEvent) -> None:
        if event.kind in VERDICT_KINDS:
            self.nudge()

    def evaluate_now(self) -> TrialRound:
        """Evaluate every running trial with a policy and end those it decides (what the thread does)."""
        with self._lock:
            result = evaluate_trials(self.store, self.routing.table, change=self.routing.change)
            self.rounds += 1
            self.last = result
            return result

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            if self._stop.is_set():
                return
            if self._wake.is_set():  # a verdict: let it (and the rest of a burst) be written, then evaluate once
                wait = max(last + self.nudge_gap_s - time.monotonic(), SETTLE_S)
                if self._stop.wait(wait):
                    return
            self._wake.clear()
            last = time.monotonic()
            try:
                self.evaluate_now()
            except (StoreError, SQLAlchemyError) as exc:
                log.warning("trials could not be evaluated: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must outlive one bad round
                log.exception("evaluating the trials failed")
