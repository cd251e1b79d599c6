"""Routing state shared by replicas: which version of each module serves, per store, with a revision.

One row per module (table ``routing_state``): the active version, the promote history, course
pins, the canary and its share, and yanked versions, as one ``RoutingState`` document, plus a
``revision`` that counts its changes. Every replica on one database applies the same rows, so N
``trm serve`` processes behind a load balancer answer with the same versions, and a restarted
replica comes back with the state it left.

Conflicting admin writes (the rule, documented in the README's deployment section):

- every change is a compare-and-swap on the module's revision: read the row, apply the operation
  to the newest state, write it only ``WHERE revision = <the revision read>``, else read again and
  retry. Two replicas changing one module at once are serialised; each change is applied on top of
  the other, and for the same field the later write wins (last-writer-wins, in revision order);
- a client that wants "only if nobody changed it since I looked" sends the revision it saw
  (``expected_revision``; HTTP ``If-Match``); a write against an older revision is refused with
  ``StaleRevision`` (HTTP 412) and changes nothing.

Propagation: on PostgreSQL each change sends ``NOTIFY trm_routing, '<module>'`` in its own
transaction (delivered at commit); ``RoutingWatcher`` LISTENs and hands the new rows to its callback
within milliseconds, and re-reads every row every few seconds in case a notification was missed
(a dropped connection). SQLite has no notifications: the watcher polls the revisions (a few rows)
every 0.2 s.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .errors import StoreError, StoreUnavailable
from .models import RoutingRecord, utcnow
from .storage import Store

log = logging.getLogger(__name__)

#: PostgreSQL notification channel of routing changes (payload: the module name).
CHANNEL = "trm_routing"
#: Promote history kept per module (rollbacks beyond it are not possible).
MAX_HISTORY = 50
_CAS_ATTEMPTS = 20


class RoutingStateError(StoreError):
    """An operation that does not apply to the module's routing state (nothing to roll back to, …)."""


class StaleRevision(StoreError):
    """A write named a revision of the module's routing state that another write has moved past."""

    def __init__(self, module: str, expected: int, actual: int) -> None:
        super().__init__(
            f"the routing state of {module} is at revision {actual}, not {expected}: another admin "
            "write changed it since it was read; read it again and retry"
        )
        self.module, self.expected, self.actual = module, expected, actual


class RoutingState(BaseModel):
    """One module's routing: what answers by default, per course, and for the canary share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str | None = None
    history: list[str] = Field(default_factory=list)  # earlier active versions, oldest first
    pins: dict[str, str] = Field(default_factory=dict)  # course -> version
    canary: str | None = None
    canary_share: float = 0.0
    #: when the canary's version or share last changed: a trial's figures start here (trial_policy)
    canary_since: datetime | None = None
    yanked: dict[str, str | None] = Field(default_factory=dict)  # version -> reason
    decisions: list[dict[str, Any]] = Field(default_factory=list)  # trials ended by a policy, why (trial_policy)

    # Operations: each returns the new state (the stored document never changes in place).
    def activate(self, version: str) -> "RoutingState":
        if version == self.active:
            return self
        history = [*self.history, self.active] if self.active is not None else list(self.history)
        return self.model_copy(update={"active": version, "history": history[-MAX_HISTORY:]})

    def rollback(self) -> "RoutingState":
        if not self.history:
            raise RoutingStateError("there is no previously active version to roll back to")
        return self.model_copy(update={"active": self.history[-1], "history": self.history[:-1]})

    def pin(self, course: str, version: str) -> "RoutingState":
        return self.model_copy(update={"pins": {**self.pins, course: version}})

    def unpin(self, course: str) -> "RoutingState":
        return self.model_copy(update={"pins": {k: v for k, v in self.pins.items() if k != course}})

    def set_canary(self, version: str | None, share: float, since: datetime | None = None) -> "RoutingState":
        """Start, change or (``version`` None or ``share`` 0) stop the canary; ``since`` (default: now) is
        kept as ``canary_since`` when the version or the share changes, so a trial counts from there."""
        if version is None or share == 0:
            return self.model_copy(update={"canary": None, "canary_share": 0.0, "canary_since": None})
        if (version, share) == (self.canary, self.canary_share):
            return self
        return self.model_copy(update={"canary": version, "canary_share": share, "canary_since": since or utcnow()})

    def running_trial(self) -> tuple[str, str] | None:
        """(baseline, candidate) of the trial the canary runs, or None (no canary, or nothing active)."""
        if self.canary is None or self.active is None or self.canary_share <= 0 or self.canary == self.active:
            return None
        return self.active, self.canary

    def yank(self, version: str, reason: str | None, yanked: bool = True) -> "RoutingState":
        rest = {k: v for k, v in self.yanked.items() if k != version}
        return self.model_copy(update={"yanked": {**rest, version: reason} if yanked else rest})


@dataclass(frozen=True)
class ModuleRouting:
    """A module's routing state as stored: the document, its revision, who changed it last and when."""

    module: str
    revision: int
    state: RoutingState
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, row: RoutingRecord) -> "ModuleRouting":
        return cls(row.module, row.revision, RoutingState.model_validate(row.state), row.updated_by, row.updated_at)


class RoutingTable:
    """Reads and compare-and-swap writes of the ``routing_state`` rows of one store.

    ``replica``: who writes (recorded as ``updated_by``; a host name and port, say).
    """

    def __init__(self, store: Store, replica: str) -> None:
        self.store = store
        self.replica = replica

    def get(self, module: str) -> ModuleRouting | None:
        """The module's routing, or None if no admin write ever touched it."""
        with self.store.session() as session:
            row = session.get(RoutingRecord, module)
            return ModuleRouting.of(row) if row is not None else None

    def all(self) -> list[ModuleRouting]:
        """Every module's routing, by name."""
        with self.store.session() as session:
            return [
                ModuleRouting.of(row) for row in session.scalars(select(RoutingRecord).order_by(RoutingRecord.module))
            ]

    def revisions(self) -> dict[str, int]:
        """Module → revision (what a poll compares)."""
        with self.store.session() as session:
            return {
                module: revision
                for module, revision in session.execute(select(RoutingRecord.module, RoutingRecord.revision))
            }

    def change(
        self,
        module: str,
        operation: Callable[[RoutingState], RoutingState],
        *,
        expected_revision: int | None = None,
        initial: RoutingState | None = None,
        before_commit: Callable[[Session, int], None] | None = None,
    ) -> ModuleRouting:
        """Apply ``operation`` to the module's newest state and store the result (see the module docstring).

        ``expected_revision``: refuse (``StaleRevision``) unless the stored revision is this one
        (0: the module has no routing row yet). ``initial``: the state a module without a row starts
        from (what a replica served before anything was stored). An operation that changes nothing
        writes nothing. ``before_commit(session, new_revision)``: more writes that must land in the same
        transaction as the change, or not at all (the audit row of a trial a policy ended); what it
        raises rolls the change back and propagates.
        """
        for _ in range(_CAS_ATTEMPTS):
            with self.store.session() as session:
                row = session.get(RoutingRecord, module)
                revision = row.revision if row is not None else 0
                if expected_revision is not None and expected_revision != revision:
                    raise StaleRevision(module, expected_revision, revision)
                current = RoutingState.model_validate(row.state) if row is not None else (initial or RoutingState())
                new = operation(current)
                if row is not None and new == current:
                    return ModuleRouting.of(row)
                values = {
                    "revision": revision + 1,
                    "state": new.model_dump(mode="json"),
                    "updated_at": utcnow(),
                    "updated_by": self.replica[:200],
                }
                if row is None:
                    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[self.store.dialect]
                    statement = insert(RoutingRecord).values(module=module, **values)
                    statement = statement.on_conflict_do_nothing(index_elements=["module"])
                else:
                    statement = (
                        update(RoutingRecord)
                        .where(RoutingRecord.module == module, RoutingRecord.revision == revision)
                        .values(**values)
                    )
                written = session.execute(statement.returning(RoutingRecord.module)).scalar_one_or_none()
                if written is None:  # another replica wrote in between: read its state and apply ours on top
                    session.rollback()
                    continue
                if before_commit is not None:
                    before_commit(session, revision + 1)
                if self.store.dialect == "postgresql":
                    session.execute(text("SELECT pg_notify(:channel, :module)"), {"channel": CHANNEL, "module": module})
                session.commit()
                return ModuleRouting(module, revision + 1, new, values["updated_by"], values["updated_at"])
        raise StoreError(f"the routing state of {module} changed under {_CAS_ATTEMPTS} attempts in a row; try again")


class RoutingWatcher:
    """A thread that hands every changed module's routing to ``on_change`` (see the module docstring).

    ``on_change(routing)`` runs on the watcher's thread, once per new revision seen; an exception
    it raises is logged and the revision is offered again on the next re-read.
    """

    def __init__(
        self,
        table: RoutingTable,
        on_change: Callable[[ModuleRouting], None],
        *,
        poll_s: float = 0.2,
        resync_s: float = 5.0,
    ) -> None:
        self.table = table
        self.on_change = on_change
        self.poll_s = poll_s
        self.resync_s = resync_s
        self.seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trm-routing-watcher", daemon=True)

    def start(self) -> "RoutingWatcher":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sync(self, modules: set[str] | None = None) -> None:
        """Read the routing rows (of ``modules``, or all) and offer every new revision to ``on_change``."""
        try:
            revisions = self.table.revisions()
        except (StoreError, SQLAlchemyError) as exc:
            log.warning("cannot read the routing state: %s", exc)
            return
        for module, revision in sorted(revisions.items()):
            if (modules is not None and module not in modules) or self.seen.get(module, 0) >= revision:
                continue
            routing = self.table.get(module)
            if routing is None:
                continue
            try:
                self.on_change(routing)
            except Exception:  # noqa: BLE001 - one module's failure must not stop the others' updates
                log.exception("applying routing revision %s of %s failed", routing.revision, module)
                continue
            self.seen[module] = routing.revision

    def _run(self) -> None:
        if self.table.store.dialect == "postgresql":
            self._listen()
        else:
            while not self._stop.wait(self.poll_s):
                self.sync()

    def _listen(self) -> None:
        import psycopg

        conninfo = make_url(self.table.store.url).set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.2
                    self.sync()  # whatever changed before LISTEN took effect
                    last_full = utcnow()
                    while not self._stop.is_set():
                        changed = {n.payload for n in connection.notifies(timeout=0.5, stop_after=64)}
                        if changed:
                            self.sync(changed)
                        if (utcnow() - last_full).total_seconds() >= self.resync_s:
                            self.sync()
                            last_full = utcnow()
            except (psycopg.Error, StoreUnavailable) as exc:
                log.warning("routing notifications interrupted (%s); reconnecting in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
