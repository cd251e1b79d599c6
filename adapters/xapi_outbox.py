"""The durable outbound xAPI queue: one table of the store (``xapi_outbox``; the adapter's
schema ``xapi_outbox``, migrations in ``xapi_outbox_migrations/``).

A statement is a row from the moment it is queued (committed before ``add`` returns) until the
LRS accepted it (the row is deleted). Each row has its own retry schedule (``attempts``,
``next_attempt_at``: exponential back-off) and ends as a dead letter (``state = 'dead'``, with the
LRS's answer) when the LRS refuses it. Rows are taken in (``next_attempt_at``, ``seq``) order
through an index, so each batch costs the same however long the queue is: draining is linear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import JSON, Column, Engine, Index, Integer, MetaData, String, Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB

from trm_modules.store.models import UTCDateTime

metadata = MetaData()
outbox = Table(
    "xapi_outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("statement_id", String(36), nullable=False),
    Column("statement", JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"), nullable=False),
    Column("state", String(8), nullable=False),  # pending | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", String(1000), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_xapi_outbox_due", "state", "next_attempt_at", "seq"),
)
ERROR_MAX = 1000

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Queued:
    seq: int
    statement: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class RefusedStatement:
    """A statement the LRS refused for good, kept in the outbox with its answer (not to be confused with the
    store's dead letters, ``trm_modules.store.models.DeadLetter``: items the database refused)."""

    seq: int
    statement: dict[str, Any]
    attempts: int
    error: str


class Outbox:
    """The ``xapi_outbox`` table of one store (``engine``); ``clock`` gives "now" (tests pass a fake one)."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def add(self, statements: Sequence[dict[str, Any]]) -> None:
        """Queue ``statements`` (durable once this returns), due now."""
        if not statements:
            return
        now = self.clock()
        rows = [
            {
                "statement_id": s["id"],
                "statement": s,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for s in statements
        ]
        with self.engine.begin() as connection:
            connection.execute(outbox.insert(), rows)

    def due(self, limit: int) -> list[Queued]:
        """Up to ``limit`` pending statements whose next attempt is due, oldest schedule first."""
        c = outbox.c
        query = (
            select(c.seq, c.statement, c.attempts)
            .where(c.state == "pending", c.next_attempt_at <= self.clock())
            .order_by(c.next_attempt_at, c.seq)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [Queued(row.seq, row.statement, row.attempts) for row in connection.execute(query)]

    def delivered(self, seqs: Sequence[int]) -> None:
        """The LRS accepted these: they leave the queue."""
        with self.engine.begin() as connection:
            connection.execute(delete(outbox).where(outbox.c.seq.in_(list(seqs))))

    def postpone(self, items: Sequence[Queued], error: str, initial_s: float, max_s: float) -> None:
        """A send failed for a reason that may pass (LRS down, 5xx): each item waits its own back-off."""
        now = self.clock()
        with self.engine.begin() as connection:
            for item in items:
                delay = min(max_s, initial_s * (2**item.attempts))
                connection.execute(
                    update(outbox)
                    .where(outbox.c.seq == item.seq)
                    .values(
                        attempts=item.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=delay),
                        last_error=error[:ERROR_MAX],
                    )
                )

    def bury(self, items: Sequence[Queued], error: str) -> None:
        """The LRS refused these statements: keep them as dead letters with its answer."""
        with self.engine.begin() as connection:
            connection.execute(
                update(outbox)
                .where(outbox.c.seq.in_([i.seq for i in items]))
                .values(state="dead", attempts=outbox.c.attempts + 1, last_error=error[:ERROR_MAX])
            )

    def pending(self) -> int:
        """Statements not yet accepted by the LRS (dead letters excluded)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.state == "pending")
            ).scalar_one()

    def next_due_in(self) -> float | None:
        """Seconds until the next pending statement is due (0 if one is due now), None if none is pending."""
        with self.engine.connect() as connection:
            earliest = connection.execute(
                select(func.min(outbox.c.next_attempt_at)).where(outbox.c.state == "pending")
            ).scalar()
        if earliest is None:
            return None
        if earliest.tzinfo is None:
            earliest = earliest.replace(tzinfo=timezone.utc)
        return max(0.0, (earliest - self.clock()).total_seconds())

    def dead_letters(self) -> list[RefusedStatement]:
        """The statements the LRS refused, oldest first."""
        c = outbox.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(c.seq, c.statement, c.attempts, c.last_error).where(c.state == "dead").order_by(c.seq)
            )
            return [RefusedStatement(r.seq, r.statement, r.attempts, r.last_error or "") for r in rows]


class OutboxPersonalData:
    """The outbox's personal data (``trm_privacy_providers`` of the xAPI forwarder): statements about a learner
    waiting for the LRS or refused by it (dead letters)."""

    name = "xapi_outbox"

    def declare(self) -> list[Any]:
        from trm_modules.store.privacy import PersonalData

        return [
            PersonalData(
                "xapi_outbox",
                ("statement",),
                "Statements about solves and feedback waiting for the configured LRS, and those it refused.",
            )
        ]

    def link(self, connection: Any, subject: Any) -> Any:
        from trm_modules.store.privacy import Subject

        return Subject()

    def _rows(self, connection: Any, subject: Any) -> list[Any]:
        from trm_modules.store.privacy import mentions_learner

        rows = connection.execute(select(outbox.c.seq, outbox.c.statement, outbox.c.state)).all()
        return [row for row in rows if mentions_learner(row.statement, subject)]

    def export(self, connection: Any, subject: Any) -> dict[str, list[Any]]:
        return {
            "xapi_outbox": [{"state": row.state, "statement": row.statement} for row in self._rows(connection, subject)]
        }

    def erase(self, connection: Any, subject: Any) -> dict[str, int]:
        seqs = [row.seq for row in self._rows(connection, subject)]
        removed = 0
        for start in range(0, len(seqs), 500):
            removed += (
                connection.execute(delete(outbox).where(outbox.c.seq.in_(seqs[start : start + 500]))).rowcount or 0
            )
        return {"xapi_outbox": removed}

    def expire(self, connection: Any, before: datetime) -> dict[str, int]:
        return {"xapi_outbox": connection.execute(delete(outbox).where(outbox.c.created_at < before)).rowcount or 0}
