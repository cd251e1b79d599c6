"""The report, comparison and learner-outcome routes over HTTP (in process)."""

from __future__ import annotations

import csv
import io

import pytest

from fixtures.server import MODULE, puzzle, served
from trm_modules.records import FeedbackEvent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("insights"), {"1.0.0": 0, "1.1.0": 1}) as s:
        yield s


def solve_as(server, learner: str, course: str = "logic-101", cohort: str | None = None) -> dict:
    context = {"platform": "lms", "course": course, "learner": learner, **({"cohort": cohort} if cohort else {})}
    response = server.client.post(
        f"/v1/modules/{MODULE}/solve", json={"input": puzzle(), "context": context}, headers=server.auth("solve")
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_route_gives_groups_that_equal_the_verdicts_sent_as_json_and_csv(server):
    sent = {"correct": 0, "verdicts": 0}
    for n in range(6):
        answer = solve_as(server, f"s-{n}", cohort="A" if n < 3 else "B")
        if n < 5:
            kind = "correct" if n % 2 else "incorrect"
            response = server.client.post(
                "/v1/feedback", json={"solve_id": answer["solve_id"], "kind": kind}, headers=server.auth("feedback")
            )
            assert response.status_code == 202
            sent["verdicts"] += 1
            sent["correct"] += kind == "correct"
    response = server.client.get(
        f"/v1/modules/{MODULE}/stats", params={"course": "logic-101"}, headers=server.auth("read")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["module"] == MODULE
    (group,) = [g for g in body["groups"] if g["course"] == "logic-101"]
    assert (group["version"], group["solves"], group["learners"]) == ("1.1.0", 6, 6)
    assert (group["verdicts"], group["correct"]) == (sent["verdicts"], sent["correct"])
    assert group["accuracy_low"] < group["accuracy"] < group["accuracy_high"]
    cohorts = server.client.get(
        f"/v1/modules/{MODULE}/stats",
        params={"course": "logic-101", "by": "cohort", "sections": ""},
        headers=server.auth("read"),
    ).json()["groups"]
    assert sorted((g["cohort"], g["solves"]) for g in cohorts) == [("A", 3), ("B", 3)]
    text = server.client.get(
        f"/v1/modules/{MODULE}/stats", params={"course": "logic-101", "format": "csv"}, headers=server.auth("read")
    )
    assert text.headers["content-type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(text.text)))
    assert (row["version"], row["solves"], row["verdicts"]) == ("1.1.0", "6", str(sent["verdicts"]))


def test_stats_need_the_read_scope_and_name_unknown_modules(server):
    assert server.client.get(f"/v1/modules/{MODULE}/stats", headers=server.auth("solve")).status_code == 403
    missing = server.client.get("/v1/modules/nothing/stats", headers=server.auth("read"))
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = server.client.get(f"/v1/modules/{MODULE}/stats", params={"by": "month"}, headers=server.auth("read"))
    assert bad.status_code == 422


def test_compare_route_decides_on_a_simulated_course(server):
    import random

    from trm_modules.records import SolveContext, SolveRecord

    rng = random.Random(3)
    items: list = []
    for learner in range(80):
        version = "1.0.0" if learner % 2 else "1.1.0"
        for p in range(6):
            solve_id = f"cmp-{learner}-{p}"
            items.append(
                SolveRecord(
                    id=solve_id,
                    module=MODULE,
                    version=version,
                    digest="sha256:x",
                    context=SolveContext(course="trial-course", learner=f"t-{learner}"),
                    input=puzzle(),
                    output=None,
                    steps=1,
                    confidence=0.5,
                    latency_ms=1.0,
                    device="cpu",
                )
            )
            right = rng.random() < (0.95 if version == "1.1.0" else 0.6)
            items.append(FeedbackEvent(solve_id=solve_id, kind="correct" if right else "incorrect"))
    assert server.runtime.store.write(items) == []
    response = server.client.get(
        f"/v1/modules/{MODULE}/compare",
        params={"baseline": "1.0.0", "candidate": "1.1.0", "course": "trial-course"},
        headers=server.auth("read"),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["decision"] == "candidate-better" and result["p_value"] <= 0.05
    assert result["baseline"]["learners"] == result["candidate"]["learners"] == 40
    assert result["baseline"]["verdicts"] == result["candidate"]["verdicts"] == 240


def test_outcomes_are_accepted_once_by_id_and_reported_by_asking_the_module(server):
    answer = solve_as(server, "o-1", course="outcome-course")
    body = {
        "id": "quiz-1/o-1",
        "learner": "o-1",
        "course": "outcome-course",
        "activity": "quiz-1",
        "score": 7,
        "max_score": 10,
        "success": True,
        "solve_ids": [answer["solve_id"]],
    }
    first = server.client.post("/v1/outcomes", json=body, headers=server.auth("feedback"))
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = server.client.post("/v1/outcomes", json={**body, "score": 1}, headers=server.auth("feedback"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = {"learner": "o-2", "course": "outcome-course", "score": 0.4}
    assert server.client.post("/v1/outcomes", json=other, headers=server.auth("feedback")).status_code == 202
    bad = server.client.post("/v1/outcomes", json={"learner": "o-3", "score": 5}, headers=server.auth("feedback"))
    assert bad.status_code == 422
    server.runtime.recorder.flush()
    report = server.client.get(
        f"/v1/modules/{MODULE}/stats", params={"course": "outcome-course"}, headers=server.auth("read")
    ).json()
    by_asking = {(o["asked"], o["version"]): o for o in report["outcomes"]}
    assert by_asking[(True, "1.1.0")]["score_mean"] == pytest.approx(0.7)
    assert by_asking[(False, None)]["score_mean"] == pytest.approx(0.4)


def test_report_routes_are_in_the_openapi_document_with_examples(server):
    document = server.client.get("/openapi.json").json()
    stats = document["paths"]["/v1/modules/{name}/stats"]["get"]
    assert "example" in stats["responses"]["200"]["content"]["application/json"]
    assert "text/csv" in stats["responses"]["200"]["content"]
    assert (
        "example"
        in document["paths"]["/v1/modules/{name}/compare"]["get"]["responses"]["200"]["content"]["application/json"]
    )
    assert document["components"]["schemas"]["OutcomeRequest"]["examples"]


def test_compare_counts_from_the_running_trials_start_unless_given_since(server):
    from datetime import datetime, timedelta

    from fixtures.store import T0
    from fixtures.trials import simulated_course
    from trm_modules.store.routing import RoutingState, RoutingTable

    module = "restarted-trial"  # a module of its own: the canary below routes no other test's learners
    # An earlier trial of the same versions went the other way; the canary running now began a day later.
    simulated_course(server.runtime.store, {"1.0.0": 0.9, "1.2.0": 0.3}, module=module, course="c", seed=4)
    restarted = T0 + timedelta(days=1)
    simulated_course(
        server.runtime.store, {"1.0.0": 0.6, "1.2.0": 0.9}, module=module, course="c", start=restarted, tag="+"
    )
    RoutingTable(server.runtime.store, "test").change(
        module, lambda s: s.set_canary("1.2.0", 0.5, since=restarted), initial=RoutingState(active="1.0.0")
    )
    params = {"baseline": "1.0.0", "candidate": "1.2.0", "course": "c"}
    running = server.client.get(f"/v1/modules/{module}/compare", params=params, headers=server.auth("read")).json()
    assert datetime.fromisoformat(running["since"]) == restarted and running["decision"] == "candidate-better"
    assert running["baseline"]["verdicts"] == running["candidate"]["verdicts"] == 40 * 8
    everything = server.client.get(
        f"/v1/modules/{module}/compare", params={**params, "since": T0.isoformat()}, headers=server.auth("read")
    ).json()
    assert everything["baseline"]["verdicts"] == 2 * 40 * 8 and everything["decision"] != "candidate-better"
