"""The store's tables (SQLAlchemy 2.0 typed ORM). Changed only together with a migration.

Missing context parts are stored as ``""`` rather than NULL so that the unique constraint on
(platform, course, activity) holds on every database (NULLs never collide in a UNIQUE index).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite; Python None is SQL NULL (not JSON 'null').
JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
FEEDBACK_KINDS = ("correct", "incorrect", "rating", "correction", "comment", "void")
ID_LENGTH = 128


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone: we store UTC and re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class InstalledPackage(Base):
    """A module package installed on this host, with the task codec that reads its data."""

    __tablename__ = "installed_packages"
    __table_args__ = (UniqueConstraint("name", "version", "digest", name="uq_installed_packages_name_version_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(80))
    codec: Mapped[str] = mapped_column(String(100))
    codec_params: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    source: Mapped[str] = mapped_column(String(1000), default="")
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Context(Base):
    """Where solves come from: (platform, course, activity), ``""`` for a missing part."""

    __tablename__ = "contexts"
    __table_args__ = (UniqueConstraint("platform", "course", "activity", name="uq_contexts_platform_course_activity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(200), default="")
    course: Mapped[str] = mapped_column(String(200), default="")
    activity: Mapped[str] = mapped_column(String(200), default="")


class Solve(Base):
    """One answered request, attributed to the exact module digest that computed it.

    ``verdict`` is derived, kept by the store in the transaction that writes the feedback: the
    solve's latest effective verdict (1 correct, 0 incorrect or corrected, NULL none), so reports
    aggregate one table (``trm_modules.store.insights``); ``course`` repeats the context's course
    for the same reason. ``input_digest`` is the sha256 of the
    input's canonical JSON (failing inputs are grouped by it).
    """

    __tablename__ = "solves"
    __table_args__ = (
        Index("ix_solves_module_created_at", "module", "created_at"),
        Index("ix_solves_context_id", "context_id"),
        # Covering index of the insights reports: a module's solves grouped by version and context, with every
        # column a report's sections read, so each is one index-only scan (never a table row per solve).
        Index(
            "ix_solves_report",
            "module",
            "version",
            "course",
            "cohort",
            "learner",
            "verdict",
            "created_at",
            "valid",
            "steps",
            "latency_ms",
            "confidence",
            "input_digest",
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    module: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(80))
    context_id: Mapped[int] = mapped_column(ForeignKey("contexts.id", name="fk_solves_context_id"))
    learner: Mapped[str | None] = mapped_column(String(200))
    input: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    output: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    steps: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    valid: Mapped[bool | None] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    course: Mapped[str | None] = mapped_column(String(200))  # the context's course, "" for none (kept for reports)
    cohort: Mapped[str | None] = mapped_column(String(200))
    input_digest: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[int | None] = mapped_column(SmallInteger)


class LearnerOutcome(Base):
    """A learner's own result on an activity (``trm_modules.records.OutcomeRecord``), idempotent by id."""

    __tablename__ = "learner_outcomes"
    __table_args__ = (
        Index("ix_learner_outcomes_course_learner", "course", "learner"),
        Index("ix_learner_outcomes_learner", "learner"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    learner: Mapped[str] = mapped_column(String(200))
    course: Mapped[str] = mapped_column(String(200), default="")
    activity: Mapped[str] = mapped_column(String(200), default="")
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    normalised_score: Mapped[float | None] = mapped_column(Float)
    success: Mapped[bool | None] = mapped_column(Boolean)
    asked: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LearnerOutcomeSolve(Base):
    """A solve the learner asked for while doing the activity of an outcome (no foreign key to solves:
    the outcome may arrive before another process's recorder has written the solve)."""

    __tablename__ = "learner_outcome_solves"
    __table_args__ = (Index("ix_learner_outcome_solves_solve_id", "solve_id"),)

    outcome_id: Mapped[str] = mapped_column(
        ForeignKey("learner_outcomes.id", name="fk_learner_outcome_solves_outcome_id", ondelete="CASCADE"),
        primary_key=True,
    )
    solve_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)


class Feedback(Base):
    """An append-only outcome event on a solve; a ``void`` event retracts the event named in ``voids``.

    ``solve_id`` is deliberately not a foreign key: feedback may arrive (over the API or xAPI)
    before the solve it refers to has left another process's recorder queue.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('correct', 'incorrect', 'rating', 'correction', 'comment', 'void')", name="ck_feedback_kind"
        ),
        Index("ix_feedback_solve_id", "solve_id"),
        Index("ix_feedback_voids", "voids"),
        # A report's ratings found by kind, and "is it voided" by (kind, voids): one index for both, so that
        # no planner answers the void check by scanning every void event (a kind-only prefix would).
        Index("ix_feedback_kind_voids", "kind", "voids"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    solve_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    corrected_output: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    source: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(200))
    voids: Mapped[str | None] = mapped_column(ForeignKey("feedback.id", name="fk_feedback_voids"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    """An item the database refused for good (bad encoding, too long, a constraint), kept with the reason.

    ``entry`` is the item's journal line with every non-ASCII character escaped, so that text the
    database could not hold (a lone surrogate) is kept too; ``item_id`` is the item's id, shortened
    and escaped the same way. Recording goes on around a dead letter; ``trm logs --dead-letter`` shows them.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_type: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str] = mapped_column(String(200))
    entry: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoutingRecord(Base):
    """One module's routing state — active version, promote history, pins, canary, yanks — shared by
    every replica on this store; ``revision`` counts its changes (``trm_modules.store.routing``)."""

    __tablename__ = "routing_state"

    module: Mapped[str] = mapped_column(String(200), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class PrivacyAudit(Base):
    """One privacy request carried out (export, erase, expire): when, and how many rows each provider touched
    (``counts``: provider → place → rows). Never who it was about (``trm_modules.store.privacy``)."""

    __tablename__ = "privacy_audit"
    __table_args__ = (Index("ix_privacy_audit_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDocument)


class TrialPolicyRecord(Base):
    """The analysis policy that ends a module's trial by itself, per course (``""``: every course)
    (``trm_modules.store.trial_policy``)."""

    __tablename__ = "trial_policies"

    module: Mapped[str] = mapped_column(String(200), primary_key=True)
    course: Mapped[str] = mapped_column(String(200), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class TrialDecisionRecord(Base):
    """A trial a policy ended (promote or rollback): why, the figures it read, and the routing revisions.

    Written in the transaction of the routing change it made; unique per (module, the routing revision
    the trial ended at), so however many replicas evaluate the same trial, one decision lands.
    """

    __tablename__ = "trial_decisions"
    __table_args__ = (
        UniqueConstraint("module", "routing_revision", name="uq_trial_decisions_module_revision"),
        Index("ix_trial_decisions_decided_at", "decided_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    module: Mapped[str] = mapped_column(String(200))
    course: Mapped[str] = mapped_column(String(200))
    baseline: Mapped[str] = mapped_column(String(100))
    candidate: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))
    routing_revision: Mapped[int] = mapped_column(Integer)
    applied_revision: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JsonDocument)
    evidence: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    policy: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(200))
