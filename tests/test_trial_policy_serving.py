"""Trial policies stored per module and course end a running trial (the canary) by themselves: promote a
better candidate, roll back a worse one or one that breaks a guardrail, leave an A/A trial running; the
decision is recorded with its reasons and figures, lands once however many replicas evaluate, and every
replica then serves the same versions. Also the admin routes, the CLI and the compare route's decision."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fixtures.server import MODULE as SERVED_MODULE
from fixtures.server import Served, build_registry, puzzle
from fixtures.store import T0, backend, store, store_url  # noqa: F401 (fixtures)
from fixtures.trials import simulated_course as simulate
from trm_modules.server import ServerRuntime, ServerSettings, create_app
from trm_modules.store import StoreError
from trm_modules.store.routing import RoutingState, RoutingTable
from trm_modules.store.trial_policy import (
    AnalysisPolicy,
    PolicySettings,
    clear_policy,
    end_trial,
    evaluate_policy,
    evaluate_trials,
    get_policy,
    list_policies,
    set_policy,
    trial_decisions,
)

COURSE = "logic-101"
MODULE = "maze-9x9"
PROPAGATION_S = 30.0


def simulated_course(store, accuracy: dict[str, float], *, module: str = MODULE, **options) -> None:
    """Learners of COURSE split between the versions; each answers puzzles a second apart, judged 5 s later."""
    simulate(store, accuracy, module=module, course=COURSE, verdict_delay=timedelta(seconds=5), **options)


def canary(store, candidate: str = "1.2.0", share: float = 0.5, since: datetime = T0) -> RoutingTable:
    table = RoutingTable(store, "replica-a")
    table.change(MODULE, lambda s: s.set_canary(candidate, share, since), initial=RoutingState(active="1.0.0"))
    return table


# ------------------------------------------------------------------------------ stored policies
def test_a_policy_is_stored_per_module_and_course_read_and_cleared(store):
    set_policy(store, MODULE, PolicySettings(min_effect=0.1, latency_p99_max_ratio=None), course=COURSE, by="ann")
    set_policy(store, MODULE, AnalysisPolicy(max_verdicts=500))  # every course
    stored = get_policy(store, MODULE, COURSE)
    assert stored is not None and stored.updated_by == "ann"
    assert (stored.policy.course, stored.policy.min_effect, stored.policy.latency_p99_max_ratio) == (COURSE, 0.1, None)
    assert [p.course for p in list_policies(store, MODULE)] == [None, COURSE]
    set_policy(store, MODULE, PolicySettings(min_effect=0.2), course=COURSE)  # replaces
    assert get_policy(store, MODULE, COURSE).policy.min_effect == 0.2
    assert clear_policy(store, MODULE, COURSE) and not clear_policy(store, MODULE, COURSE)
    assert get_policy(store, MODULE, COURSE) is None and get_policy(store, MODULE) is not None
    with pytest.raises(ValueError):
        PolicySettings(alpha=1.5)


# ------------------------------------------------------------------------------ ending trials
def test_a_course_with_a_large_difference_ends_in_promotion_with_its_reasons_and_figures_recorded(store):
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    table = canary(store, since=T0 - timedelta(hours=1))
    set_policy(store, MODULE, AnalysisPolicy(course=COURSE))
    round_ = evaluate_trials(store, table)
    (decision,) = round_.decisions
    assert decision.action == "promote" and decision.candidate == "1.2.0" and decision.course == COURSE
    assert decision.reasons[0].startswith("candidate-better") and "guardrails passed" in decision.reasons[0]
    figures = decision.evidence["comparison"]
    assert figures["decision"] == "candidate-better" and figures["difference"] > 0.2 and figures["p_value"] <= 0.05
    assert figures["candidate"]["learners"] == 40 and decision.evidence["latency_p99_ms"]["1.2.0"] > 0
    routing = table.get(MODULE)
    assert (routing.state.active, routing.state.canary, routing.revision) == ("1.2.0", None, 2)
    assert (decision.routing_revision, decision.applied_revision) == (1, 2)
    assert routing.state.decisions[-1]["id"] == decision.id
    assert [d.id for d in trial_decisions(store, MODULE)] == [decision.id]
    assert evaluate_trials(store, table).decisions == []  # the trial is over: nothing is decided twice


def test_an_a_a_trial_goes_on_and_nothing_changes(store):
    simulated_course(store, {"1.0.0": 0.8, "1.2.0": 0.8}, seed=11)
    table = canary(store, since=T0 - timedelta(hours=1))
    set_policy(store, MODULE, AnalysisPolicy(course=COURSE))
    round_ = evaluate_trials(store, table)
    assert [o.action for o in round_.outcomes] == ["continue"] and round_.decisions == []
    assert table.get(MODULE).state.canary == "1.2.0" and trial_decisions(store) == []


def test_a_broken_latency_guardrail_rolls_back_even_a_more_accurate_candidate(store):
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9}, latency={"1.0.0": 10.0, "1.2.0": 40.0})
    table = canary(store, since=T0 - timedelta(hours=1))
    set_policy(store, MODULE, AnalysisPolicy(course=COURSE, latency_p99_max_ratio=2.0, min_latency_solves=50))
    (decision,) = evaluate_trials(store, table).decisions
    assert decision.action == "rollback" and "guardrail latency p99" in decision.reasons[0]
    p99 = decision.evidence["latency_p99_ms"]
    assert p99["1.2.0"] > 2.0 * p99["1.0.0"]
    assert (table.get(MODULE).state.active, table.get(MODULE).state.canary) == ("1.0.0", None)


def test_solves_before_the_canary_started_are_not_part_of_the_trial(store):
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    table = canary(store, since=T0 + timedelta(days=1))  # every solve is older than the trial
    set_policy(store, MODULE, AnalysisPolicy(course=COURSE))
    (outcome,) = evaluate_trials(store, table).outcomes
    assert outcome.action == "continue" and outcome.comparison.baseline.verdicts == 0


def test_a_rollback_from_any_course_wins_over_a_promote_from_another(store):
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9}, latency={"1.0.0": 10.0, "1.2.0": 40.0})
    table = canary(store, since=T0 - timedelta(hours=1))
    set_policy(store, MODULE, AnalysisPolicy(course=COURSE, latency_p99_max_ratio=None))  # would promote
    set_policy(store, MODULE, AnalysisPolicy(latency_p99_max_ratio=2.0, min_latency_solves=50))  # every course
    round_ = evaluate_trials(store, table)
    assert sorted(o.action for o in round_.outcomes) == ["promote", "rollback"]
    assert [d.action for d in round_.decisions] == ["rollback"]


def test_two_evaluators_of_one_trial_decide_once(store):
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    canary(store, since=T0 - timedelta(hours=1))
    policy = AnalysisPolicy(course=COURSE)
    tables = [RoutingTable(store, "replica-a"), RoutingTable(store, "replica-b")]
    seen = tables[0].get(MODULE)
    outcomes = [
        evaluate_policy(store, MODULE, "1.0.0", "1.2.0", policy, revision=seen.revision, since=seen.state.canary_since)
        for _ in tables
    ]
    barrier, results = threading.Barrier(2), [None, None]

    def decide(i: int) -> None:
        barrier.wait()
        results[i] = end_trial(store, outcomes[i], policy, change=tables[i].change, by=tables[i].replica)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r is None for r in results) == [False, True]  # one decided, the other found the trial ended
    assert len(trial_decisions(store)) == 1 and tables[1].get(MODULE).revision == seen.revision + 1
    with pytest.raises(StoreError, match="revision"):  # an evaluation that does not say what it saw ends nothing
        end_trial(store, outcomes[0].model_copy(update={"revision": None}), policy, change=tables[0].change, by="x")


# ------------------------------------------------------------------------------ serving replicas
@contextlib.contextmanager
def replica(root: Path, name: str, **settings: object) -> Iterator[Served]:
    runtime = ServerRuntime.start(
        ServerSettings(
            registry=root / "registry",
            db=str(root / "store.sqlite3"),
            replica_name=name,
            journal_path=root / f"journal-{name}.jsonl",
            cpu_threads=1,
            public_url=f"http://{name}",
            allow_unsigned=True,
            **settings,
        )
    )
    scopes = ("solve", "feedback", "read", "admin")
    tokens = {scope: runtime.tokens.create([scope], name=f"{scope}-{name}")[0] for scope in scopes}
    with TestClient(create_app(runtime)) as client:
        yield Served(runtime, client, tokens)


@pytest.fixture
def two(tmp_path) -> Iterator[tuple[Served, Served]]:
    build_registry(tmp_path, {"1.0.0": 0, "1.1.0": 1})
    quiet = {"trial_evaluation_s": 3600.0, "trial_nudge_gap_s": 0.0}  # only verdicts (or the test) evaluate
    with replica(tmp_path, "a", **quiet) as a, replica(tmp_path, "b", **quiet) as b:
        yield a, b


def start_trial(a: Served) -> int:
    """1.0.0 active (the registry's newest, 1.1.0, would serve by default) and 1.1.0 as a canary of half the learners."""
    activated = a.client.post(
        f"/v1/admin/modules/{SERVED_MODULE}/activate", json={"version": "1.0.0"}, headers=a.auth("admin")
    )
    assert activated.status_code == 200, activated.text
    response = a.client.put(
        f"/v1/admin/modules/{SERVED_MODULE}/canary", json={"version": "1.1.0", "share": 0.5}, headers=a.auth("admin")
    )
    assert response.status_code == 200, response.text
    return response.json()["revision"]


def test_replicas_evaluating_together_end_the_trial_once_and_both_serve_the_winner(two):
    a, b = two
    revision = start_trial(a)
    response = a.client.put(
        f"/v1/admin/modules/{SERVED_MODULE}/trial-policy",
        params={"course": COURSE},
        json={"min_effect": 0.05, "latency_p99_max_ratio": 1.5, "min_latency_solves": 1000},
        headers=a.auth("admin"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["trial"] == {
        "baseline": "1.0.0",
        "candidate": "1.1.0",
        "share": 0.5,
        "since": response.json()["trial"]["since"],
        "revision": revision,
    }
    simulated_course(
        a.runtime.store, {"1.0.0": 0.6, "1.1.0": 0.9}, module=SERVED_MODULE, start=datetime.now(timezone.utc)
    )
    compared = a.client.get(
        f"/v1/modules/{SERVED_MODULE}/compare",
        params={"baseline": "1.0.0", "candidate": "1.1.0", "course": COURSE},
        headers=a.auth("read"),
    )
    assert compared.status_code == 200, compared.text
    assert compared.json()["decision"] == "candidate-better"
    assert compared.json()["sample_ratio"]["expected_candidate_share"] == 0.5  # the canary's share, from the store
    shown = a.client.get(
        f"/v1/admin/modules/{SERVED_MODULE}/trial-policy", params={"course": COURSE}, headers=a.auth("admin")
    ).json()
    assert shown["evaluation"]["action"] == "promote" and shown["decisions"] == []

    barrier, rounds = threading.Barrier(2), {}

    def evaluate(server: Served) -> None:
        barrier.wait()
        rounds[server.runtime.routing.table.replica] = server.runtime.trials.evaluate_now()

    threads = [threading.Thread(target=evaluate, args=(s,)) for s in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    decided = [d for r in rounds.values() for d in r.decisions]
    assert [d.action for d in decided] == ["promote"]
    for server in (a, b):
        assert server.runtime.routing.wait_for_revision(SERVED_MODULE, revision + 1, timeout=PROPAGATION_S)
        state = server.runtime.host.modules()[0]
        assert (state.active, state.canary) == ("1.1.0", None)
    body = {"input": puzzle(), "context": {"course": COURSE, "learner": "learner-3"}}
    for server in (a, b):
        answered = server.client.post(f"/v1/modules/{SERVED_MODULE}/solve", json=body, headers=server.auth("solve"))
        assert answered.json()["version"] == "1.1.0"
    shown = b.client.get(
        f"/v1/admin/modules/{SERVED_MODULE}/trial-policy", params={"course": COURSE}, headers=b.auth("admin")
    ).json()
    assert shown["trial"] is None and [d["action"] for d in shown["decisions"]] == ["promote"]
    assert shown["decisions"][0]["reasons"][0].startswith("candidate-better")


def test_a_verdict_wakes_the_evaluator_which_rolls_a_worse_candidate_back(two):
    a, b = two
    start_trial(a)
    set_policy(a.runtime.store, SERVED_MODULE, AnalysisPolicy(course=COURSE, latency_p99_max_ratio=None))
    simulated_course(
        a.runtime.store, {"1.0.0": 0.9, "1.1.0": 0.5}, module=SERVED_MODULE, start=datetime.now(timezone.utc)
    )
    assert trial_decisions(a.runtime.store) == []  # nothing evaluated yet: the period is an hour
    answered = a.client.post(
        f"/v1/modules/{SERVED_MODULE}/solve",
        json={"input": puzzle(), "context": {"course": COURSE}},
        headers=a.auth("solve"),
    ).json()
    sent = a.client.post(
        "/v1/feedback", json={"solve_id": answered["solve_id"], "kind": "correct"}, headers=a.auth("feedback")
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + PROPAGATION_S
    while not trial_decisions(a.runtime.store) and time.monotonic() < deadline:
        time.sleep(0.1)
    (decision,) = trial_decisions(a.runtime.store)
    assert decision.action == "rollback" and decision.decided_by in ("a", "b")
    assert b.runtime.routing.wait_for_revision(SERVED_MODULE, decision.applied_revision, timeout=PROPAGATION_S)
    assert (b.runtime.host.modules()[0].active, b.runtime.host.modules()[0].canary) == ("1.0.0", None)


def test_the_policy_routes_need_admin_refuse_bad_documents_and_clear(two):
    a, _ = two
    url = f"/v1/admin/modules/{SERVED_MODULE}/trial-policy"
    assert a.client.put(url, json={}, headers=a.auth("read")).status_code == 403
    own, _ = a.runtime.tokens.create(["admin"], name="course-admin", courses=[COURSE])
    limited = {"Authorization": f"Bearer {own}"}  # a policy's decision changes every course: not theirs to set
    assert a.client.put(url, params={"course": COURSE}, json={}, headers=limited).status_code == 403
    assert a.client.delete(url, params={"course": COURSE}, headers=limited).status_code == 403
    assert a.client.get(url, params={"course": "other-course"}, headers=limited).status_code == 403
    assert a.client.get(url, params={"course": COURSE}, headers=limited).status_code == 404  # theirs to read
    bad = a.client.put(url, json={"alpha": 2}, headers=a.auth("admin"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/alpha"
    typo = a.client.put(url, json={"min_efect": 0.1}, headers=a.auth("admin"))
    assert typo.status_code == 422
    assert a.client.put("/v1/admin/modules/nope/trial-policy", json={}, headers=a.auth("admin")).status_code == 404
    assert a.client.get(url, headers=a.auth("admin")).status_code == 404
    assert (
        a.client.put(url, json={"max_verdicts": 900}, headers=a.auth("admin")).json()["policy"]["max_verdicts"] == 900
    )
    got = a.client.get(url, headers=a.auth("admin")).json()
    assert got["course"] is None and got["trial"] is None and got["updated_by"] == "admin token admin-a"
    assert a.client.delete(url, headers=a.auth("admin")).status_code == 204
    assert a.client.delete(url, headers=a.auth("admin")).status_code == 404


def test_the_cli_sets_shows_evaluates_and_clears_a_policy(tmp_path, store):  # noqa: F811
    from trm_modules.cli import app

    if store.dialect != "sqlite":
        pytest.skip("the CLI is driven against a SQLite file here")
    db = ["--db", store.url]
    runner = CliRunner()
    done = runner.invoke(app, ["trial", "policy", "set", MODULE, "--course", COURSE, "--no-latency-guardrail", *db])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["trial", "policy", "show", MODULE, *db])
    assert shown.exit_code == 0 and '"latency_p99_max_ratio": null' in shown.output
    assert runner.invoke(app, ["trial", "policy", "set", MODULE, "--alpha", "3", *db]).exit_code == 2
    simulated_course(store, {"1.0.0": 0.6, "1.2.0": 0.9})
    canary(store, since=T0 - timedelta(hours=1))
    dry = runner.invoke(app, ["trial", "evaluate", "--dry-run", *db])
    assert dry.exit_code == 0 and ": promote - candidate-better" in dry.output and "decision" not in dry.output
    done = runner.invoke(app, ["trial", "evaluate", MODULE, *db])
    assert done.exit_code == 0 and "promote 1.2.0 (decision" in done.output, done.output
    listed = runner.invoke(app, ["trial", "decisions", *db])
    assert '"action": "promote"' in listed.output
    assert runner.invoke(app, ["trial", "policy", "clear", MODULE, "--course", COURSE, *db]).exit_code == 0
    assert runner.invoke(app, ["trial", "policy", "clear", MODULE, "--course", COURSE, *db]).exit_code == 3
