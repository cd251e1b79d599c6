"""Trials that decide by themselves: an analysis policy promotes, rolls back or pauses a canary, says why,
and its change lands once however many replicas evaluate it."""

from __future__ import annotations

from datetime import timedelta

from fixtures.store import T0, backend, store, store_url  # noqa: F401 (fixtures)
from fixtures.trials import simulated_course
from trm_modules.store.comparison import trial_start
from trm_modules.store.routing import RoutingState, RoutingTable
from trm_modules.store.trial_policy import AnalysisPolicy, apply_policy, evaluate_policy

COURSE = "logic-101"
MODULE = "maze-9x9"


def trial(store, accuracy: dict[str, float], **options) -> None:
    """Learners alternate between the versions; each answers puzzles ten minutes apart, all judged."""
    simulated_course(store, accuracy, module=MODULE, course=COURSE, spacing=timedelta(minutes=1), **options)


def canary(store, candidate: str = "1.2.0", share: float = 0.5) -> RoutingTable:
    table = RoutingTable(store, "replica-a")
    table.change(MODULE, lambda s: s.set_canary(candidate, share), initial=RoutingState(active="1.0.0"))
    return table


def test_a_better_candidate_is_promoted_once_with_its_reasons_kept(store):
    trial(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    table, other_replica = canary(store), RoutingTable(store, "replica-b")
    seen = table.get(MODULE).revision
    outcome = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE), revision=seen)
    assert outcome.action == "promote" and outcome.comparison.decision == "candidate-better"
    assert "candidate-better" in outcome.reasons[0]
    late = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE), revision=seen)
    routing = apply_policy(table, outcome)
    assert routing is not None and routing.state.active == "1.2.0" and routing.state.canary is None
    assert routing.state.history == ["1.0.0"]
    (decision,) = routing.state.decisions
    assert decision["action"] == "promote" and decision["reasons"] == outcome.reasons
    assert apply_policy(other_replica, late) is None  # the second replica's evaluation saw an older revision
    assert other_replica.get(MODULE).revision == routing.revision


def test_a_worse_candidate_is_rolled_back_and_the_active_version_stays(store):
    trial(store, {"1.0.0": 0.9, "1.2.0": 0.6})
    table = canary(store)
    outcome = evaluate_policy(
        store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE), revision=table.get(MODULE).revision
    )
    assert outcome.action == "rollback"
    assert any("accuracy-not-worse" in reason for reason in outcome.reasons)
    routing = apply_policy(table, outcome)
    assert (routing.state.active, routing.state.canary) == ("1.0.0", None)
    assert routing.state.decisions[-1]["action"] == "rollback"


def test_a_slower_candidate_fails_the_latency_guardrail_even_when_more_accurate(store):
    trial(store, {"1.0.0": 0.6, "1.2.0": 0.9}, latency={"1.0.0": 10.0, "1.2.0": 40.0})
    outcome = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE))
    assert outcome.action == "rollback" and "latency p99" in outcome.reasons[0]
    relaxed = evaluate_policy(
        store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE, latency_p99_max_ratio=None)
    )
    assert relaxed.action == "promote"


def test_an_inconclusive_trial_goes_on_then_pauses_for_a_person(store):
    trial(store, {"1.0.0": 0.8, "1.2.0": 0.82}, learners=20, puzzles=3)
    going = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE))
    assert going.action == "continue" and "more verdicts" in going.reasons[0]
    paused = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE, max_verdicts=50))
    assert paused.action == "pause" and "a person decides" in paused.reasons[0]
    assert apply_policy(canary(store), paused) is None


def test_a_sample_ratio_mismatch_pauses_the_trial(store):
    trial(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    canary(store, share=0.1)  # the assignment should have sent 10 % of learners to 1.2.0, not half
    outcome = evaluate_policy(store, MODULE, "1.0.0", "1.2.0", AnalysisPolicy(course=COURSE))
    assert outcome.action == "pause" and "sample ratio mismatch" in outcome.reasons[0]


def test_a_running_trial_starts_when_its_canary_did_for_its_own_pair_of_versions_only(store):
    # An earlier trial of the same versions went the other way; the canary running now began a day later.
    trial(store, {"1.0.0": 0.9, "1.2.0": 0.3}, seed=4)
    restarted = T0 + timedelta(days=1)
    trial(store, {"1.0.0": 0.6, "1.2.0": 0.9}, start=restarted, tag="-again")
    assert trial_start(store, MODULE, "1.0.0", "1.2.0") is None  # no trial runs: every solve counts
    table = RoutingTable(store, "replica-a")
    table.change(MODULE, lambda s: s.set_canary("1.2.0", 0.5, since=restarted), initial=RoutingState(active="1.0.0"))
    assert trial_start(store, MODULE, "1.0.0", "1.2.0") == restarted
    assert trial_start(store, MODULE, "1.2.0", "1.0.0") is None  # not the running trial's pair
