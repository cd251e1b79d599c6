"""Trials that decide by themselves: an analysis policy ends a canary — promote, roll back, or pause for a person.

Modelled on Argo Rollouts / Flagger canary analysis (Successful → promote, Failed → abort,
Inconclusive → pause), with the statistics of ``store.comparison`` (learner-clustered, always-valid
mSPRT, so evaluating the policy as often as one likes keeps its error rate):

1. a sample-ratio mismatch pauses the trial (its figures are not trustworthy);
2. a guardrail that fails rolls back: accuracy worse than ``accuracy_not_worse_by`` (the always-valid
   upper bound of candidate − baseline below −margin), or the candidate's latency p99 above
   ``latency_p99_max_ratio`` × the baseline's (once each side has ``min_latency_solves`` solves);
3. ``candidate-worse`` rolls back, ``candidate-better`` promotes (the guardrails passed);
4. an inconclusive trial past ``max_verdicts`` pauses for a person; otherwise it goes on.

Policies are stored per module and course (table ``trial_policies``; course ``""``: every course) with
``set_policy`` / ``get_policy`` / ``clear_policy``. The trial of a module is its canary (``routing_state``):
the active version is the baseline, the canary the candidate, and its figures count from
``canary_since``. ``evaluate_trials`` evaluates every running trial that has a policy (``trm serve`` does
so periodically and when a verdict arrives; ``trm trial evaluate`` once); when a module has several
policies (one per course), a rollback from any of them wins, a pause from any stops a promote, and
otherwise a promote ends the trial.

``end_trial`` carries a promote or rollback out as one transaction: the routing change (compare-and-swap
on the revision the evaluation saw) and its audit row in ``trial_decisions`` (reasons, figures, policy;
unique per module and routing revision). However many replicas evaluate the same trial, one decision
lands; the others find the revision moved (``StaleRevision``) or the row taken, and change nothing.
Every replica then serves the new versions through its routing watcher.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ModuleNotFound
from .comparison import Comparison, compare_versions
from .errors import StoreError
from .insights import module_report
from .models import TrialDecisionRecord, TrialPolicyRecord, utcnow
from .routing import ModuleRouting, RoutingState, RoutingTable, StaleRevision
from .storage import Store

log = logging.getLogger(__name__)

Action = Literal["promote", "rollback", "pause", "continue"]
#: Decisions kept in the routing state itself (the full audit is the ``trial_decisions`` table).
STATE_DECISIONS = 50


class PolicySettings(BaseModel):
    """What decides a trial: the metric, the smallest effect worth acting on, the error rate, the guardrails."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "metric": "accuracy",
                    "alpha": 0.05,
                    "min_effect": 0.05,
                    "accuracy_not_worse_by": 0.0,
                    "latency_p99_max_ratio": 1.5,
                    "min_latency_solves": 100,
                    "max_verdicts": 5000,
                }
            ]
        },
    )

    metric: Literal["accuracy"] = "accuracy"
    alpha: float = Field(0.05, gt=0, lt=1, description="Error rate of the decision (always-valid p-value).")
    min_effect: float = Field(0.05, gt=0, lt=1, description="Smallest difference in accuracy worth acting on.")
    accuracy_not_worse_by: float | None = Field(
        0.0, ge=0, description="Guardrail: roll back once accuracy is surely worse by more than this (null: off)."
    )
    latency_p99_max_ratio: float | None = Field(
        1.5,
        gt=1,
        description="Guardrail: roll back if the candidate's p99 latency exceeds this × the baseline's (null: off).",
    )
    min_latency_solves: int = Field(100, ge=1, description="Solves each side needs before the latency guardrail.")
    max_verdicts: int | None = Field(
        None, ge=1, description="Pause for a person when still inconclusive after this many verdicts."
    )


class AnalysisPolicy(PolicySettings):
    """How a trial of a module in a course ends by itself."""

    course: str | None = Field(None, description="The course whose learners decide (None: every course).")


class StoredPolicy(BaseModel):
    """A policy as stored for a module (and course), who set it and when."""

    module: str
    course: str | None
    policy: AnalysisPolicy
    updated_at: datetime
    updated_by: str


class PolicyOutcome(BaseModel):
    """What the policy says now, why, and the figures it read."""

    module: str
    baseline: str
    candidate: str
    action: Action
    reasons: list[str]
    comparison: Comparison
    latency_p99_ms: dict[str, float | None] = Field(
        default_factory=dict, description="p99 latency per version in the window (the latency guardrail's figures)."
    )
    revision: int | None = Field(None, description="The routing revision the evaluation saw.")
    since: datetime | None = Field(None, description="Start of the trial's window (the canary's start).")
    evaluated_at: datetime | None = None


class TrialDecision(BaseModel):
    """A trial a policy ended: the audit row of ``trial_decisions``."""

    id: str
    module: str
    course: str | None
    baseline: str
    candidate: str
    action: Literal["promote", "rollback"]
    routing_revision: int = Field(description="The routing revision the trial ended at (what was evaluated).")
    applied_revision: int = Field(description="The routing revision the decision wrote.")
    reasons: list[str]
    evidence: dict[str, Any] = Field(description="The comparison and latency figures the decision read.")
    policy: dict[str, Any]
    decided_at: datetime
    decided_by: str

    @classmethod
    def of(cls, row: TrialDecisionRecord) -> "TrialDecision":
        return cls(
            id=row.id,
            module=row.module,
            course=row.course or None,
            baseline=row.baseline,
            candidate=row.candidate,
            action=row.action,  # type: ignore[arg-type]
            routing_revision=row.routing_revision,
            applied_revision=row.applied_revision,
            reasons=list(row.reasons),
            evidence=dict(row.evidence),
            policy=dict(row.policy),
            decided_at=row.decided_at,
            decided_by=row.decided_by,
        )


# ----------------------------------------------------------------------------------- stored policies
def _course_key(course: str | None) -> str:
    return course or ""


def _stored(row: TrialPolicyRecord) -> StoredPolicy:
    return StoredPolicy(
        module=row.module,
        course=row.course or None,
        policy=AnalysisPolicy.model_validate({**row.policy, "course": row.course or None}),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def set_policy(
    store: Store, module: str, policy: PolicySettings, *, course: str | None = None, by: str = "library"
) -> StoredPolicy:
    """Store (or replace) the policy of ``module`` in ``course`` (None: every course; for an
    ``AnalysisPolicy`` its own ``course`` unless one is named here)."""
    if not module or len(module) > 200:
        raise StoreError(f"a trial policy needs a module name of 1 to 200 characters, got {module!r}")
    if course is None and isinstance(policy, AnalysisPolicy):
        course = policy.course
    if course is not None and (not course or len(course) > 200):
        raise StoreError(f"a trial policy's course must have 1 to 200 characters, got {course!r}")
    document = PolicySettings.model_validate(policy.model_dump(exclude={"course"})).model_dump(mode="json")
    values = {"policy": document, "updated_at": utcnow(), "updated_by": by[:200]}
    key = {"module": module, "course": _course_key(course)}
    statement = (
        postgresql.insert(TrialPolicyRecord)
        .values(**key, **values)
        .on_conflict_do_update(index_elements=["module", "course"], set_=values)
        if store.dialect == "postgresql"
        else sqlite.insert(TrialPolicyRecord)
        .values(**key, **values)
        .on_conflict_do_update(index_elements=["module", "course"], set_=values)
    )
    with store.session() as session:
        session.execute(statement)
        session.commit()
    stored = get_policy(store, module, course)
    assert stored is not None
    return stored


def get_policy(store: Store, module: str, course: str | None = None) -> StoredPolicy | None:
    """The policy of ``module`` in ``course`` (None: the one for every course), or None."""
    with store.session() as session:
        row = session.get(TrialPolicyRecord, (module, _course_key(course)))
        return _stored(row) if row is not None else None


def list_policies(store: Store, module: str | None = None) -> list[StoredPolicy]:
    """Every stored policy (of ``module``), by module then course (every course first)."""
    query = select(TrialPolicyRecord).order_by(TrialPolicyRecord.module, TrialPolicyRecord.course)
    if module is not None:
        query = query.where(TrialPolicyRecord.module == module)
    with store.session() as session:
        return [_stored(row) for row in session.scalars(query)]


def clear_policy(store: Store, module: str, course: str | None = None) -> bool:
    """Remove the policy of ``module`` in ``course``; False when there was none."""
    with store.session() as session:
        result = session.execute(
            delete(TrialPolicyRecord).where(
                TrialPolicyRecord.module == module, TrialPolicyRecord.course == _course_key(course)
            )
        )
        session.commit()
        return bool(getattr(result, "rowcount", 0))


def trial_decisions(store: Store, module: str | None = None, *, limit: int = 50) -> list[TrialDecision]:
    """The trials policies ended (of ``module``), newest first."""
    query = select(TrialDecisionRecord).order_by(TrialDecisionRecord.decided_at.desc()).limit(limit)
    if module is not None:
        query = query.where(TrialDecisionRecord.module == module)
    with store.session() as session:
        return [TrialDecision.of(row) for row in session.scalars(query)]


# ----------------------------------------------------------------------------------- evaluation
def evaluate_policy(
    store: Store,
    module: str,
    baseline: str,
    candidate: str,
    policy: AnalysisPolicy,
    *,
    revision: int | None = None,
    since: datetime | None = None,
) -> PolicyOutcome:
    """The policy's verdict on ``candidate`` against ``baseline`` now, on the solves from ``since`` on."""
    comparison = compare_versions(
        store,
        module,
        baseline,
        candidate,
        course=policy.course,
        since=since,
        alpha=policy.alpha,
        min_effect=policy.min_effect,
    )
    latency = _latency_p99(store, module, baseline, candidate, policy, since)
    reasons: list[str] = []
    action: Action = "continue"
    if comparison.sample_ratio.mismatch:
        action = "pause"
        reasons.append(
            f"sample ratio mismatch: candidate share {comparison.sample_ratio.observed_candidate_share:.3f}, "
            f"expected {comparison.sample_ratio.expected_candidate_share} (p "
            f"{comparison.sample_ratio.p_value:.2g}); find the cause before trusting the figures"
        )
    else:
        failed = _failed_guardrails(baseline, candidate, policy, comparison, latency)
        if failed:
            action, reasons = "rollback", failed
        elif comparison.decision == "candidate-worse":
            action = "rollback"
            reasons.append(
                f"candidate-worse: accuracy {comparison.difference:+.3f} (always-valid p "
                f"{comparison.p_value:.3g} <= {policy.alpha})"
            )
        elif comparison.decision == "candidate-better":
            action = "promote"
            reasons.append(
                f"candidate-better: accuracy {comparison.difference:+.3f} (always-valid p "
                f"{comparison.p_value:.3g} <= {policy.alpha}); guardrails passed"
            )
        else:
            verdicts = comparison.baseline.verdicts + comparison.candidate.verdicts
            if policy.max_verdicts is not None and verdicts >= policy.max_verdicts:
                action = "pause"
                reasons.append(
                    f"inconclusive after {verdicts} verdicts (limit {policy.max_verdicts}): a person decides"
                )
            else:
                reasons.append(
                    f"inconclusive: about {comparison.verdicts_needed} more verdicts needed"
                    if comparison.verdicts_needed is not None
                    else "inconclusive"
                )
    return PolicyOutcome(
        module=module,
        baseline=baseline,
        candidate=candidate,
        action=action,
        reasons=reasons,
        comparison=comparison,
        latency_p99_ms={version: value for version, (value, _) in latency.items()},
        revision=revision,
        since=since,
        evaluated_at=utcnow(),
    )


def _latency_p99(
    store: Store, module: str, baseline: str, candidate: str, policy: AnalysisPolicy, since: datetime | None
) -> dict[str, tuple[float | None, int]]:
    """Version → (p99 latency in ms, solves) in the trial's window, for the two versions."""
    if policy.latency_p99_max_ratio is None:
        return {}
    try:
        report = module_report(
            store, module, course=policy.course, since=since, by="version", sections=("performance",)
        )
    except ModuleNotFound:  # no solves of the module at all yet
        return {}
    return {g.version: (g.latency_p99_ms, g.solves) for g in report.groups if g.version in (baseline, candidate)}


def _failed_guardrails(
    baseline: str,
    candidate: str,
    policy: AnalysisPolicy,
    comparison: Comparison,
    latency: dict[str, tuple[float | None, int]],
) -> list[str]:
    failed = []
    margin = policy.accuracy_not_worse_by
    if margin is not None and comparison.sequential_high is not None and comparison.sequential_high < -margin:
        failed.append(
            f"guardrail accuracy-not-worse: the always-valid interval of the difference ends at "
            f"{comparison.sequential_high:+.3f} < {-margin:+.3f}"
        )
    if policy.latency_p99_max_ratio is not None:
        base, cand = latency.get(baseline), latency.get(candidate)
        if (
            base
            and cand
            and base[0]
            and cand[0] is not None
            and min(base[1], cand[1]) >= policy.min_latency_solves
            and cand[0] > policy.latency_p99_max_ratio * base[0]
        ):
            failed.append(
                f"guardrail latency p99: {cand[0]:.1f} ms > {policy.latency_p99_max_ratio} x "
                f"{base[0]:.1f} ms of {baseline}"
            )
    return failed


# ----------------------------------------------------------------------------------- ending a trial
class RoutingChange(Protocol):
    """``RoutingTable.change`` or ``ReplicatedRouting.change`` (the admin routes' call): either stores the
    change as a compare-and-swap and lets every replica follow."""

    def __call__(
        self,
        module: str,
        operation: Callable[[RoutingState], RoutingState],
        *,
        expected_revision: int | None = ...,
        before_commit: Callable[[Session, int], None] | None = ...,
    ) -> object: ...


class TrialMovedOn(StoreError):
    """The module's trial is no longer the one evaluated (another replica or an admin ended or changed it)."""


def end_trial(
    store: Store, outcome: PolicyOutcome, policy: AnalysisPolicy, *, change: RoutingChange, by: str
) -> TrialDecision | None:
    """Promote or roll back as ``outcome`` says, with its audit row, once (see the module docstring).

    Returns the recorded decision, or None when there was nothing to do (continue, pause) or the trial
    had moved on (another replica ended it first, an admin changed the routing since the evaluation).
    """
    if outcome.action not in ("promote", "rollback"):
        return None
    if outcome.revision is None:
        raise StoreError(
            f"ending the trial of {outcome.module} needs the routing revision its evaluation saw "
            "(evaluate_policy(..., revision=...)): without it the change could land on another trial"
        )
    comparison = outcome.comparison
    record = TrialDecisionRecord(
        id=uuid.uuid4().hex,
        module=outcome.module,
        course=_course_key(policy.course),
        baseline=outcome.baseline,
        candidate=outcome.candidate,
        action=outcome.action,
        routing_revision=outcome.revision,
        applied_revision=0,
        reasons=list(outcome.reasons),
        evidence={
            "comparison": comparison.model_dump(mode="json"),
            "latency_p99_ms": outcome.latency_p99_ms,
            "since": outcome.since.isoformat() if outcome.since else None,
            "evaluated_at": outcome.evaluated_at.isoformat() if outcome.evaluated_at else None,
        },
        policy=policy.model_dump(mode="json"),
        decided_at=utcnow(),
        decided_by=by[:200],
    )
    summary = {
        "id": record.id,
        "at": record.decided_at.isoformat(),
        "action": outcome.action,
        "baseline": outcome.baseline,
        "candidate": outcome.candidate,
        "course": comparison.course,
        "reasons": outcome.reasons,
        "p_value": comparison.p_value,
        "difference": comparison.difference,
    }

    def operation(state: RoutingState) -> RoutingState:
        if state.canary != outcome.candidate or state.active != outcome.baseline:
            raise TrialMovedOn(
                f"the trial of {outcome.module} is now {state.active} against canary {state.canary}, not "
                f"{outcome.baseline} against {outcome.candidate}"
            )
        ended = state.set_canary(None, 0.0)
        if outcome.action == "promote":
            ended = ended.activate(outcome.candidate)
        return ended.model_copy(update={"decisions": [*state.decisions, summary][-STATE_DECISIONS:]})

    def write_decision(session: Session, new_revision: int) -> None:
        record.applied_revision = new_revision
        session.add(record)
        session.flush()  # the unique (module, routing_revision): a second decision of this trial fails here

    try:
        change(outcome.module, operation, expected_revision=outcome.revision, before_commit=write_decision)
    except (StaleRevision, TrialMovedOn, IntegrityError) as exc:
        log.info("%s: trial %s vs %s not ended here (%s)", outcome.module, outcome.baseline, outcome.candidate, exc)
        return None
    log.warning(
        "%s: trial ended by policy, %s %s (baseline %s): %s",
        outcome.module,
        outcome.action,
        outcome.candidate,
        outcome.baseline,
        "; ".join(outcome.reasons),
    )
    return TrialDecision.of(record)


def apply_policy(
    table: RoutingTable, outcome: PolicyOutcome, policy: AnalysisPolicy | None = None
) -> ModuleRouting | None:
    """``end_trial`` through ``table`` (no host here: replicas follow through their watchers); the new
    routing, or None when nothing changed."""
    policy = policy or AnalysisPolicy(course=outcome.comparison.course)
    if outcome.revision is None:
        current = table.get(outcome.module)
        if current is None:
            return None
        outcome = outcome.model_copy(update={"revision": current.revision})
    decision = end_trial(table.store, outcome, policy, change=table.change, by=table.replica)
    return table.get(outcome.module) if decision is not None else None


@dataclass
class TrialRound:
    """What one ``evaluate_trials`` saw and did."""

    outcomes: list[PolicyOutcome] = field(default_factory=list)
    decisions: list[TrialDecision] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # module -> why it could not be evaluated


def running_trial(routing: ModuleRouting) -> tuple[str, str] | None:
    """(baseline, candidate) of the module's running trial, or None (no canary, or nothing active)."""
    return routing.state.running_trial()


def evaluate_trials(
    store: Store,
    table: RoutingTable,
    *,
    change: RoutingChange | None = None,
    modules: set[str] | None = None,
    act: bool = True,
) -> TrialRound:
    """Evaluate every running trial that has a policy (of ``modules``), and end those a policy decides.

    ``change``: how the routing is changed (default ``table.change``; a server passes its replicated
    routing's, so the host applies the change first). ``act`` False only evaluates.
    """
    change = change or table.change
    round_ = TrialRound()
    policies: dict[str, list[StoredPolicy]] = {}
    for stored in list_policies(store):
        if modules is None or stored.module in modules:
            policies.setdefault(stored.module, []).append(stored)
    for module, stored_policies in sorted(policies.items()):
        routing = table.get(module)
        trial = running_trial(routing) if routing is not None else None
        if routing is None or trial is None:
            continue
        baseline, candidate = trial
        outcomes: list[tuple[PolicyOutcome, AnalysisPolicy]] = []
        try:
            for stored in stored_policies:
                if stored.course is not None and stored.course in routing.state.pins:
                    continue  # a pinned course takes no part in the canary
                outcome = evaluate_policy(
                    store,
                    module,
                    baseline,
                    candidate,
                    stored.policy,
                    revision=routing.revision,
                    since=routing.state.canary_since,
                )
                outcomes.append((outcome, stored.policy))
        except StoreError as exc:
            round_.errors[module] = str(exc)
            log.warning("%s: the trial of %s could not be evaluated: %s", module, candidate, exc)
            continue
        round_.outcomes.extend(outcome for outcome, _ in outcomes)
        chosen = _combined(outcomes)
        if act and chosen is not None:
            decision = end_trial(store, chosen[0], chosen[1], change=change, by=table.replica)
            if decision is not None:
                round_.decisions.append(decision)
    return round_


def _combined(
    outcomes: list[tuple[PolicyOutcome, AnalysisPolicy]],
) -> tuple[PolicyOutcome, AnalysisPolicy] | None:
    """The outcome that ends the module's trial: a rollback from any policy, else a promote unless a
    policy pauses, else none."""
    for pair in outcomes:
        if pair[0].action == "rollback":
            return pair
    if any(outcome.action == "pause" for outcome, _ in outcomes):
        return None
    for pair in outcomes:
        if pair[0].action == "promote":
            return pair
    return None
