"""What the store says about use: recent solves with their outcome, and per-module statistics.

Effective feedback is every event that no ``void`` event retracts (a void of a void has no effect).
A solve's *outcome* is decided by its latest effective verdict: ``correct`` → correct,
``incorrect`` or ``correction`` → incorrect, no verdict → unknown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Subquery, case, exists, func, select
from sqlalchemy.orm import aliased

from .errors import StoreError
from .models import Context, Feedback, Solve
from .storage import Store

Outcome = Literal["correct", "incorrect", "unknown"]
OUTCOMES: tuple[str, ...] = ("correct", "incorrect", "unknown")
VERDICT_KINDS = ("correct", "incorrect", "correction")


def effective_feedback_filter() -> Any:
    """SQL condition true for a ``Feedback`` row that is not a void and that no void event retracts."""
    voider = aliased(Feedback)
    return (Feedback.kind != "void") & ~exists().where(voider.kind == "void", voider.voids == Feedback.id)


def latest_effective(kinds: tuple[str, ...]) -> Subquery:
    """Per solve, the latest effective feedback event of one of ``kinds`` (columns solve_id, kind, corrected_output)."""
    ranked = (
        select(
            Feedback.solve_id,
            Feedback.kind,
            Feedback.corrected_output,
            func.row_number()
            .over(partition_by=Feedback.solve_id, order_by=(Feedback.created_at.desc(), Feedback.id.desc()))
            .label("rank"),
        )
        .where(Feedback.kind.in_(kinds), effective_feedback_filter())
        .subquery()
    )
    return select(ranked.c.solve_id, ranked.c.kind, ranked.c.corrected_output).where(ranked.c.rank == 1).subquery()


def outcome_column(verdict: Subquery) -> Any:
    """SQL expression: the outcome of a solve outer-joined to ``latest_effective(VERDICT_KINDS)``."""
    return case(
        (verdict.c.kind == "correct", "correct"),
        (verdict.c.kind.in_(("incorrect", "correction")), "incorrect"),
        else_="unknown",
    )


class SolveSummary(BaseModel):
    """One recorded solve as ``trm logs`` shows it."""

    id: str
    module: str
    version: str
    digest: str
    platform: str | None
    course: str | None
    activity: str | None
    learner: str | None
    steps: int
    confidence: float
    valid: bool | None
    latency_ms: float
    device: str
    created_at: datetime
    outcome: Outcome
    input: dict[str, Any]
    output: dict[str, Any] | None


def recent_solves(
    store: Store,
    *,
    module: str | None = None,
    course: str | None = None,
    outcome: Outcome | None = None,
    limit: int = 20,
) -> list[SolveSummary]:
    """The ``limit`` most recent solves, newest first, optionally of one module, course and outcome."""
    if outcome is not None and outcome not in OUTCOMES:
        raise StoreError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
    if limit < 1:
        raise StoreError(f"limit must be at least 1, not {limit}")
    verdict = latest_effective(VERDICT_KINDS)
    outcome_expr = outcome_column(verdict)
    query = (
        select(Solve, Context, outcome_expr.label("outcome"))
        .join(Context, Solve.context_id == Context.id)
        .outerjoin(verdict, verdict.c.solve_id == Solve.id)
    )
    if module is not None:
        query = query.where(Solve.module == module)
    if course is not None:
        query = query.where(Context.course == course)
    if outcome is not None:
        query = query.where(outcome_expr == outcome)
    query = query.order_by(Solve.created_at.desc(), Solve.id.desc()).limit(limit)
    with store.session() as session:
        return [_summary(solve, context, solve_outcome) for solve, context, solve_outcome in session.execute(query)]


def _summary(solve: Solve, context: Context, outcome: str) -> SolveSummary:
    return SolveSummary(
        id=solve.id,
        module=solve.module,
        version=solve.version,
        digest=solve.digest,
        platform=context.platform or None,
        course=context.course or None,
        activity=context.activity or None,
        learner=solve.learner,
        steps=solve.steps,
        confidence=solve.confidence,
        valid=solve.valid,
        latency_ms=solve.latency_ms,
        device=solve.device,
        created_at=solve.created_at,
        outcome=outcome,
        input=solve.input,
        output=solve.output,
    )


class LatencyPercentiles(BaseModel):
    p50: float
    p90: float
    p99: float


class GroupStats(BaseModel):
    """Statistics of a set of solves. ``accuracy`` = correct / solves with a verdict (None without any)."""

    solves: int
    with_verdict: int
    correct: int
    accuracy: float | None
    valid_rate: float | None
    steps: dict[int, int]
    mean_steps: float | None
    latency_ms: LatencyPercentiles | None


class ModuleStats(BaseModel):
    """``trm stats MODULE``: all solves of a module, and split by version and by course (``""`` = none)."""

    module: str
    overall: GroupStats
    #: the modules that do have solves in the store, listed only when ``module`` has none (an empty report)
    modules_with_solves: list[str] | None = None
    by_version: dict[str, GroupStats]
    by_course: dict[str, GroupStats]


def module_stats(store: Store, module: str) -> ModuleStats:
    """Accuracy from effective feedback, steps distribution and latency percentiles of ``module``."""
    verdict = latest_effective(VERDICT_KINDS)
    query = (
        select(Solve.version, Context.course, Solve.steps, Solve.latency_ms, Solve.valid, outcome_column(verdict))
        .join(Context, Solve.context_id == Context.id)
        .outerjoin(verdict, verdict.c.solve_id == Solve.id)
        .where(Solve.module == module)
    )
    with store.session() as session:
        rows = session.execute(query).all()
        if not rows:  # an empty report (a module nobody asked yet is not an error), naming what has solves
            known = session.scalars(select(Solve.module).distinct().order_by(Solve.module)).all()
            return ModuleStats(
                module=module, overall=_group_stats([]), by_version={}, by_course={}, modules_with_solves=list(known)
            )
    by_version: dict[str, list[Any]] = defaultdict(list)
    by_course: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_version[row[0]].append(row)
        by_course[row[1]].append(row)
    return ModuleStats(
        module=module,
        overall=_group_stats(rows),
        by_version={k: _group_stats(v) for k, v in sorted(by_version.items())},
        by_course={k: _group_stats(v) for k, v in sorted(by_course.items())},
    )


def _group_stats(rows: list[Any]) -> GroupStats:
    import numpy as np

    if not rows:
        return GroupStats(
            solves=0,
            with_verdict=0,
            correct=0,
            accuracy=None,
            valid_rate=None,
            steps={},
            mean_steps=None,
            latency_ms=None,
        )
    steps = np.array([row[2] for row in rows], dtype=np.int64)
    latencies = np.array([row[3] for row in rows], dtype=np.float64)
    validity = [row[4] for row in rows if row[4] is not None]
    outcomes = Counter(row[5] for row in rows)
    with_verdict = outcomes["correct"] + outcomes["incorrect"]
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return GroupStats(
        solves=len(rows),
        with_verdict=with_verdict,
        correct=outcomes["correct"],
        accuracy=outcomes["correct"] / with_verdict if with_verdict else None,
        valid_rate=sum(validity) / len(validity) if validity else None,
        steps={int(k): int(v) for k, v in sorted(Counter(steps.tolist()).items())},
        mean_steps=float(steps.mean()),
        latency_ms=LatencyPercentiles(p50=float(p50), p90=float(p90), p99=float(p99)),
    )
