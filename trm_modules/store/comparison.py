"""Compare two versions of a module in one course (or cohort): ``GET /v1/modules/{name}/compare``.

The learners of the course are the units of the trial: each learner's solves of the two versions
are counted in the database (``GROUP BY learner, version``), a learner answered by both versions
(their assignment changed mid-trial) is left out and counted, and the statistics of
``trial_statistics`` decide. Learner outcomes, when the course has any, are compared per learner
(mean normalised score of the learners each version answered).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from .errors import StoreError
from .insights import wilson_interval
from .models import LearnerOutcome, RoutingRecord, Solve
from .routing import RoutingState
from .storage import Store
from .trial_statistics import (
    DEFAULT_MIXTURE_SD,
    SRM_THRESHOLD,
    ArmCounts,
    Decision,
    mean_difference,
    sample_ratio_p_value,
    sequential_test,
)


class Arm(BaseModel):
    """One version's side of a comparison."""

    version: str
    learners: int = Field(description="Learners this version answered (and no other in the comparison).")
    solves: int
    verdicts: int
    correct: int
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    outcome_learners: int = 0
    outcome_mean: float | None = Field(
        None, description="Mean normalised learner outcome (per learner, then averaged)."
    )


class SampleRatio(BaseModel):
    """Whether the learners split as the trial's share says (scipy chi-square)."""

    expected_candidate_share: float | None
    observed_candidate_share: float | None
    p_value: float | None
    mismatch: bool = Field(
        description=f"p < {SRM_THRESHOLD}: the split is not what the assignment should give; "
        "the figures are not trustworthy until the cause is found."
    )


class OutcomeDifference(BaseModel):
    """Candidate − baseline in the learners' own results (Welch's t over one mean per learner; fixed horizon)."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None


class Comparison(BaseModel):
    """Candidate against baseline in accuracy (and learner outcome), with a decision valid under monitoring."""

    module: str
    course: str | None
    cohort: str | None
    metric: str = "accuracy"
    baseline: Arm
    candidate: Arm
    difference: float | None = Field(description="candidate − baseline accuracy.")
    difference_low: float | None = Field(description="95 % interval (standard errors clustered by learner).")
    difference_high: float | None
    sequential_low: float | None = Field(description="Always-valid interval at 1 − alpha (mSPRT).")
    sequential_high: float | None
    p_value: float = Field(
        description="Always-valid p-value (mSPRT on the learner-clustered estimate): valid "
        "however often the trial is looked at."
    )
    alpha: float
    min_effect: float
    decision: Decision
    verdicts_needed: int | None = Field(
        description="About how many more verdicts an inconclusive trial needs "
        "(for the observed difference, at least min_effect)."
    )
    excluded_learners: int = Field(description="Learners answered by both versions (left out).")
    sample_ratio: SampleRatio
    outcome: OutcomeDifference | None = None
    since: datetime | None = Field(
        None,
        description="Start of the window counted: the one asked for, else the running trial's start "
        "(the canary of this candidate over this baseline began then), else none (every solve).",
    )
    until: datetime | None = None


def expected_candidate_share(store: Store, module: str, candidate: str, course: str | None) -> float | None:
    """The share of learners the stored routing sends to ``candidate`` in ``course``, or None when no trial
    of it runs there.

    A module's trial is its canary (``routing_state``, ``trm_modules.store.routing``): one version and
    one share of learners for the whole module, each learner assigned by a hash of their pseudonym
    (``host.slots.canary_fraction``); a course pinned to a version takes no part in it.
    """
    state = _routing_state(store, module)
    if state is not None and state.canary == candidate and course not in state.pins:
        return state.canary_share
    return None


def trial_start(store: Store, module: str, baseline: str, candidate: str) -> datetime | None:
    """When the running trial of ``candidate`` against ``baseline`` began (the canary's ``canary_since``),
    or None when no such trial runs: the compare route and CLI count from there unless told otherwise, so
    the solves of an earlier trial of the same versions do not dilute the running one."""
    state = _routing_state(store, module)
    return state.canary_since if state is not None and state.running_trial() == (baseline, candidate) else None


def _routing_state(store: Store, module: str) -> RoutingState | None:
    with store.session() as session:
        row = session.get(RoutingRecord, module)
    return RoutingState.model_validate(row.state or {}) if row is not None else None


def compare_versions(
    store: Store,
    module: str,
    baseline: str,
    candidate: str,
    *,
    course: str | None = None,
    cohort: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.05,
    mixture_sd: float = DEFAULT_MIXTURE_SD,
    candidate_share: float | None = None,
) -> Comparison:
    """``candidate`` against ``baseline`` among the learners of ``course`` (see the module docstring).

    ``candidate_share``: the share of learners the candidate should get (default: from the stored
    trial or canary); it is what the sample-ratio check tests. ``since`` None counts every solve; the
    HTTP route and ``trm stats --compare`` default it to the running trial's start (``trial_start``).
    """
    if baseline == candidate:
        raise StoreError(f"compare two different versions; baseline and candidate are both {baseline!r}")
    if not 0 < alpha < 1:
        raise StoreError(f"alpha must be within (0, 1), got {alpha}")
    learner_key = func.coalesce(Solve.learner, "solve:" + Solve.id)
    query = select(
        learner_key.label("learner"),
        Solve.version,
        func.count().label("solves"),
        func.count(Solve.verdict).label("verdicts"),
        func.coalesce(func.sum(Solve.verdict), 0).label("correct"),
    ).where(Solve.module == module, Solve.version.in_((baseline, candidate)))
    if course is not None:
        query = query.where(Solve.course == course)
    if cohort is not None:
        query = query.where(Solve.cohort == cohort)
    if since is not None:
        query = query.where(Solve.created_at >= since)
    if until is not None:
        query = query.where(Solve.created_at < until)
    query = query.group_by(learner_key, Solve.version)
    with store.session() as session:
        rows = session.execute(query).all()
        per_learner: dict[str, dict[str, Any]] = {}
        for row in rows:
            per_learner.setdefault(row.learner, {})[row.version] = row
        both = {learner for learner, versions in per_learner.items() if len(versions) > 1}
        arms: dict[str, list[Any]] = {baseline: [], candidate: []}
        for learner, versions in per_learner.items():
            if learner not in both:
                ((version, row),) = versions.items()
                arms[version].append(row)
        outcomes = _outcome_means(session, module, course, {v: [r.learner for r in rows] for v, rows in arms.items()})
    counts = {v: ArmCounts.of([r.verdicts for r in rows], [r.correct for r in rows]) for v, rows in arms.items()}
    result = sequential_test(
        counts[baseline], counts[candidate], alpha=alpha, min_effect=min_effect, mixture_sd=mixture_sd
    )
    share = (
        candidate_share if candidate_share is not None else expected_candidate_share(store, module, candidate, course)
    )
    n_base, n_cand = len(arms[baseline]), len(arms[candidate])
    srm_p = sample_ratio_p_value(n_base, n_cand, share) if share is not None else None
    outcome = None
    if outcomes[baseline] or outcomes[candidate]:
        diff, low, high, p = mean_difference(outcomes[baseline], outcomes[candidate], alpha=0.05)
        outcome = OutcomeDifference(difference=diff, low=low, high=high, p_value=p)
    return Comparison(
        module=module,
        course=course,
        cohort=cohort,
        baseline=_arm(baseline, arms[baseline], outcomes[baseline]),
        candidate=_arm(candidate, arms[candidate], outcomes[candidate]),
        difference=result.difference,
        difference_low=result.low,
        difference_high=result.high,
        sequential_low=result.sequential_low,
        sequential_high=result.sequential_high,
        p_value=result.p_value,
        alpha=alpha,
        min_effect=min_effect,
        decision=result.decision,
        verdicts_needed=result.verdicts_needed,
        excluded_learners=len(both),
        sample_ratio=SampleRatio(
            expected_candidate_share=share,
            observed_candidate_share=n_cand / (n_base + n_cand) if n_base + n_cand else None,
            p_value=srm_p,
            mismatch=srm_p is not None and srm_p < SRM_THRESHOLD,
        ),
        outcome=outcome,
        since=since,
        until=until,
    )


def _arm(version: str, rows: list[Any], outcome_means: list[float]) -> Arm:
    verdicts = sum(r.verdicts for r in rows)
    correct = sum(int(r.correct) for r in rows)
    low, high = wilson_interval(correct, verdicts)
    return Arm(
        version=version,
        learners=len(rows),
        solves=sum(r.solves for r in rows),
        verdicts=verdicts,
        correct=correct,
        accuracy=correct / verdicts if verdicts else None,
        accuracy_low=low,
        accuracy_high=high,
        outcome_learners=len(outcome_means),
        outcome_mean=sum(outcome_means) / len(outcome_means) if outcome_means else None,
    )


def _outcome_means(
    session: Any, module: str, course: str | None, learners: dict[str, list[str]]
) -> dict[str, list[float]]:
    """Per version: the mean normalised outcome of each of its learners who has outcomes in ``course``."""
    means: dict[str, list[float]] = {version: [] for version in learners}
    query = select(LearnerOutcome.learner, func.avg(LearnerOutcome.normalised_score).label("mean")).where(
        LearnerOutcome.normalised_score.is_not(None)
    )
    if course is not None:
        query = query.where(LearnerOutcome.course == course)
    by_learner = {row.learner: float(row.mean) for row in session.execute(query.group_by(LearnerOutcome.learner))}
    for version, names in learners.items():
        means[version] = [by_learner[name] for name in names if name in by_learner]
    return means


#: Columns of ``comparison_csv``: one row per arm; the comparison's figures repeat on both rows.
COMPARISON_CSV_FIELDS = (
    "module",
    "course",
    "cohort",
    "role",
    "version",
    "learners",
    "solves",
    "verdicts",
    "correct",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "outcome_learners",
    "outcome_mean",
    "difference",
    "difference_low",
    "difference_high",
    "sequential_low",
    "sequential_high",
    "p_value",
    "alpha",
    "decision",
    "verdicts_needed",
    "excluded_learners",
    "sample_ratio_p_value",
    "sample_ratio_mismatch",
)


def comparison_csv(comparison: Comparison) -> str:
    """A comparison as CSV: a header, then the baseline's and the candidate's rows (``COMPARISON_CSV_FIELDS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COMPARISON_CSV_FIELDS)
    shared = comparison.model_dump(
        include={
            "module",
            "course",
            "cohort",
            "difference",
            "difference_low",
            "difference_high",
            "sequential_low",
            "sequential_high",
            "p_value",
            "alpha",
            "decision",
            "verdicts_needed",
            "excluded_learners",
        }
    )
    shared["sample_ratio_p_value"] = comparison.sample_ratio.p_value
    shared["sample_ratio_mismatch"] = comparison.sample_ratio.mismatch
    for role, arm in (("baseline", comparison.baseline), ("candidate", comparison.candidate)):
        values = {**shared, **arm.model_dump(), "role": role}
        writer.writerow(["" if values[name] is None else values[name] for name in COMPARISON_CSV_FIELDS])
    return out.getvalue()
