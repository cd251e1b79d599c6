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

``evaluate_policy`` only reads; ``apply_policy`` writes the outcome into the module's routing state
with a compare-and-swap on the revision the evaluation saw, so when every replica evaluates the same
policy only one change lands (the others get ``StaleRevision`` and, reading again, find the canary
ended), and every replica applies it through the routing watcher. The reasons are kept in the routing
state's ``decisions`` (newest last).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from .comparison import Comparison, compare_versions
from .insights import module_report
from .routing import ModuleRouting, RoutingState, RoutingTable, StaleRevision
from .storage import Store

Action = Literal["promote", "rollback", "pause", "continue"]


class AnalysisPolicy(BaseModel):
    """How a trial of a module in a course ends by itself."""

    course: str | None = Field(None, description="The course whose learners decide (None: every course).")
    metric: Literal["accuracy"] = "accuracy"
    alpha: float = Field(0.05, gt=0, lt=1)
    min_effect: float = Field(0.05, gt=0, lt=1, description="Smallest difference in accuracy worth acting on.")
    accuracy_not_worse_by: float | None = Field(
        0.0, ge=0, description="Guardrail: roll back once accuracy is surely worse by more than this."
    )
    latency_p99_max_ratio: float | None = Field(
        1.5, gt=1, description="Guardrail: roll back if the candidate's p99 latency exceeds this × the baseline's."
    )
    min_latency_solves: int = Field(100, ge=1)
    max_verdicts: int | None = Field(
        None, ge=1, description="Pause for a person when still inconclusive after this many verdicts."
    )


class PolicyOutcome(BaseModel):
    """What the policy says now, why, and the comparison it read."""

    module: str
    baseline: str
    candidate: str
    action: Action
    reasons: list[str]
    comparison: Comparison
    revision: int | None = Field(None, description="The routing revision the evaluation saw.")
    evaluated_at: datetime | None = None


def evaluate_policy(
    store: Store, module: str, baseline: str, candidate: str, policy: AnalysisPolicy, *, revision: int | None = None
) -> PolicyOutcome:
    """The policy's verdict on ``candidate`` against ``baseline`` now (see the module docstring)."""
    from .models import utcnow

    comparison = compare_versions(
        store, module, baseline, candidate, course=policy.course, alpha=policy.alpha, min_effect=policy.min_effect
    )
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
        failed = _failed_guardrails(store, module, baseline, candidate, policy, comparison)
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
        revision=revision,
        evaluated_at=utcnow(),
    )


def _failed_guardrails(
    store: Store, module: str, baseline: str, candidate: str, policy: AnalysisPolicy, comparison: Comparison
) -> list[str]:
    failed = []
    margin = policy.accuracy_not_worse_by
    if margin is not None and comparison.sequential_high is not None and comparison.sequential_high < -margin:
        failed.append(
            f"guardrail accuracy-not-worse: the always-valid interval of the difference ends at "
            f"{comparison.sequential_high:+.3f} < {-margin:+.3f}"
        )
    if policy.latency_p99_max_ratio is not None:
        report = module_report(store, module, course=policy.course, by="version", sections=("performance",))
        p99 = {g.version: (g.latency_p99_ms, g.solves) for g in report.groups}
        base, cand = p99.get(baseline), p99.get(candidate)
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


def apply_policy(table: RoutingTable, outcome: PolicyOutcome) -> ModuleRouting | None:
    """Carry out a promote or rollback on the routing state the evaluation saw (compare-and-swap), keeping why.

    Returns the new routing, or None when there was nothing to do (continue, pause) or the state had
    moved on (another replica ended the trial first, or the canary is no longer this candidate).
    """
    if outcome.action not in ("promote", "rollback"):
        return None
    current = table.get(outcome.module)
    if current is None or current.state.canary != outcome.candidate:
        return None
    expected = outcome.revision if outcome.revision is not None else current.revision
    record = {
        "at": (outcome.evaluated_at.isoformat() if outcome.evaluated_at else None),
        "action": outcome.action,
        "baseline": outcome.baseline,
        "candidate": outcome.candidate,
        "course": outcome.comparison.course,
        "reasons": outcome.reasons,
        "p_value": outcome.comparison.p_value,
        "difference": outcome.comparison.difference,
    }

    def operation(state: RoutingState) -> RoutingState:
        ended = state.set_canary(None, 0.0)
        if outcome.action == "promote":
            ended = ended.activate(outcome.candidate)
        return ended.model_copy(update={"decisions": [*state.decisions, record][-50:]})

    try:
        return table.change(outcome.module, operation, expected_revision=expected)
    except StaleRevision:
        return None
