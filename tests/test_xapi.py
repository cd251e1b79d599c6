"""xAPI in (statements about solves that become feedback) and out (the forwarder and its outbox in the store)."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from fixtures.server import MODULE, on_a_socket, puzzle, served
from trm_adapters.xapi import XapiForwarder
from trm_adapters.xapi_statements import (
    EXT_EMITTED_BY,
    EXT_VERDICT,
    StatementNaming,
    feedback_from_statement,
    solve_activity_iri,
    statement_for_feedback,
    statement_for_solve,
)
from trm_modules.records import FeedbackEvent, SolveRecord
from trm_modules.store.models import Feedback

XAPI = {"X-Experience-API-Version": "1.0.3"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("xapi")) as s:
        yield s


def solve_id_of(server) -> str:
    response = server.client.post(f"/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=server.auth("solve"))
    return response.json()["solve_id"]


def statement(object_id: str, **result) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-9"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/responded"},
        "object": {"objectType": "Activity", "id": object_id},
        "result": result,
    }


def post(server, body, scope="feedback", headers=XAPI):
    return server.client.post("/xapi/statements", json=body, headers={**server.auth(scope), **headers})


def feedback_count(server, ids) -> int:
    server.runtime.host.flush()
    server.runtime.recorder.flush(10)
    with server.runtime.store.session() as session:
        return session.scalar(select(func.count()).select_from(Feedback).where(Feedback.id.in_(ids)))


# ------------------------------------------------------------------------------- a real client
@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The app behind a real socket (the tincan client speaks http.client, not ASGI)."""
    with served(tmp_path_factory.mktemp("live")) as s, on_a_socket(s.runtime) as url:
        yield s, url


def test_statement_batch_from_the_tincan_client_lands_as_feedback_exactly_once_when_posted_twice(live_server):
    from tincan import Activity, Agent, AgentAccount, RemoteLRS, Result, Score, Statement, Verb

    server, url = live_server
    solve_id = solve_id_of(server)
    lrs = RemoteLRS(endpoint=f"{url}/xapi/", version="1.0.3", username="lms", password=server.tokens["feedback"])
    learner = Agent(account=AgentAccount(home_page="https://lms.example", name="learner-1"))
    batch = [
        Statement(
            id=uuid.uuid4(),
            actor=learner,
            verb=Verb(id="http://adlnet.gov/expapi/verbs/responded"),
            object=Activity(id=solve_activity_iri(url, solve_id)),
            result=Result(success=verdict, score=Score(scaled=1.0 if verdict else 0.0)),
        )
        for verdict in (True, False)
    ]
    first = lrs.save_statements(batch)
    second = lrs.save_statements(batch)
    assert first.success and second.success, (first.response.status, first.data)
    ids = [str(s.id) for s in batch]
    assert json.loads(first.data) == json.loads(second.data) == ids
    assert feedback_count(server, ids) == 2
    with server.runtime.store.session() as session:
        kinds = dict(session.execute(select(Feedback.id, Feedback.kind).where(Feedback.id.in_(ids))).all())
        sources = set(session.scalars(select(Feedback.source).where(Feedback.id.in_(ids))))
    assert kinds == {ids[0]: "correct", ids[1]: "incorrect"} and sources == {"xapi"}


# ------------------------------------------------------------------------------------- inbound
def test_statement_about_another_activity_is_acknowledged_and_stored_raw_without_feedback(server):
    other = statement("https://lms.example/quiz/7", success=True)
    assert post(server, other).json() == [other["id"]]
    assert feedback_count(server, [other["id"]]) == 0
    stored = server.client.get(
        f"/xapi/statements?statementId={other['id']}", headers={**server.auth("feedback"), **XAPI}
    )
    assert stored.json()["object"]["id"] == "https://lms.example/quiz/7"


def test_correction_response_becomes_a_correction_feedback(server):
    solve_id = solve_id_of(server)
    corrected = {"grid": [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]}
    sent = statement(solve_activity_iri("https://elsewhere.example", solve_id), response=json.dumps(corrected))
    post(server, sent)
    feedback_count(server, [sent["id"]])
    with server.runtime.store.session() as session:
        event = session.get(Feedback, sent["id"])
    assert (event.kind, event.solve_id, event.corrected_output) == ("correction", solve_id, corrected)


def test_voided_statement_voids_the_feedback_it_names(server):
    solve_id = solve_id_of(server)
    given = statement(solve_activity_iri("http://testserver", solve_id), success=True)
    post(server, given)
    feedback_count(server, [given["id"]])
    void = {
        "id": str(uuid.uuid4()),
        "actor": given["actor"],
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": given["id"]},
    }
    post(server, void)
    feedback_count(server, [void["id"]])
    with server.runtime.store.session() as session:
        event = session.get(Feedback, void["id"])
    assert (event.kind, event.voids, event.solve_id) == ("void", given["id"], solve_id)


def test_put_stores_a_single_statement_under_its_statement_id(server):
    sent = statement("https://lms.example/page/1")
    sent_id = sent.pop("id")
    response = server.client.put(
        f"/xapi/statements?statementId={sent_id}", json=sent, headers={**server.auth("feedback"), **XAPI}
    )
    assert response.status_code == 204 and response.headers["x-experience-api-version"] == "1.0.3"


def test_missing_xapi_version_header_is_refused_with_400(server):
    response = post(server, statement("https://lms.example/x"), headers={})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"


def test_same_statement_id_with_different_content_is_a_409_conflict(server):
    sent = statement("https://lms.example/a", success=True)
    post(server, sent)
    response = post(server, {**sent, "result": {"success": False}})
    assert response.status_code == 409


def test_invalid_statement_in_a_batch_is_a_400_pointing_at_it_and_nothing_is_stored(server):
    good, bad = statement("https://lms.example/b"), statement("https://lms.example/c")
    bad["verb"] = {"display": {"en-US": "did"}}
    response = post(server, [good, bad])
    assert response.status_code == 400 and response.json()["errors"][0]["pointer"] == "/1/verb/id"
    stored = server.client.get(
        f"/xapi/statements?statementId={good['id']}", headers={**server.auth("feedback"), **XAPI}
    )
    assert stored.status_code == 404


def test_basic_auth_with_the_token_as_password_is_accepted(server):
    basic = base64.b64encode(f"lms:{server.tokens['feedback']}".encode()).decode()
    response = server.client.post(
        "/xapi/statements", json=statement("https://lms.example/d"), headers={"Authorization": f"Basic {basic}", **XAPI}
    )
    assert response.status_code == 200


def test_solve_token_may_not_post_statements(server):
    assert post(server, statement("https://lms.example/e"), scope="solve").status_code == 403


# ------------------------------------------------------------------------------------ mapping
NAMING = StatementNaming("https://trm.example", {"lms": "https://lms.example"})


def solve_record(**overrides) -> SolveRecord:
    fields = dict(
        id="s-1",
        module=MODULE,
        version="1.0.0",
        digest="sha256:" + "0" * 64,
        input=puzzle(),
        output={"grid": [[1]]},
        steps=3,
        confidence=0.9,
        valid=True,
        latency_ms=4.0,
        device="cpu",
        context={"platform": "lms", "course": "logic-101", "learner": "p-7"},
    )
    return SolveRecord(**{**fields, **overrides})


def test_solve_statement_names_the_learner_as_the_platform_knows_them_and_the_answering_version():
    sent = statement_for_solve(solve_record(), NAMING)
    assert sent["object"]["id"] == "https://trm.example/v1/solves/s-1"
    assert sent["actor"]["account"] == {"homePage": "https://lms.example", "name": "p-7"}
    assert json.loads(sent["result"]["response"]) == {"grid": [[1]]}
    assert sent["context"]["extensions"]["tag:trm-modules,2025:xapi/version"] == "1.0.0"
    uuid.UUID(sent["id"])


def test_the_modules_verdict_is_a_context_extension_not_the_learners_result():
    sent = statement_for_solve(solve_record(valid=False), NAMING)
    assert "success" not in sent["result"] and sent["context"]["extensions"][EXT_VERDICT] is False


def test_a_solve_statement_carries_a_registration_a_duration_and_the_emitted_by_mark():
    sent = statement_for_solve(solve_record(latency_ms=12.5), NAMING)
    assert sent["result"]["duration"] == "PT0.013S" or sent["result"]["duration"] == "PT0.012S"
    assert uuid.UUID(sent["context"]["registration"])
    assert sent["context"]["extensions"][EXT_EMITTED_BY] == "https://trm.example"
    again = statement_for_solve(solve_record(id="s-2"), NAMING)
    assert again["context"]["registration"] == sent["context"]["registration"]  # one attempt per learner+activity


def test_the_actor_and_registration_passed_in_the_solve_context_are_the_statements():
    actor = {"account": {"homePage": "https://cmi5.example", "name": "u-17"}}
    registration = str(uuid.uuid4())
    context = {"platform": "lms", "learner": "p-7", "actor": actor, "registration": registration}
    sent = statement_for_solve(solve_record(context=context), NAMING)
    assert sent["actor"] == {"objectType": "Agent", **actor} and sent["context"]["registration"] == registration


def test_anonymous_solves_are_distinct_agents():
    first = statement_for_solve(solve_record(id="a-1", context={"platform": "lms"}), NAMING)
    second = statement_for_solve(solve_record(id="a-2", context={"platform": "lms"}), NAMING)
    assert first["actor"] != second["actor"]
    assert first["context"]["registration"] != second["context"]["registration"]


@pytest.mark.parametrize(
    "kind, value, corrected",
    [
        ("correct", None, None),
        ("incorrect", 0.0, None),
        ("rating", 0.5, None),
        ("correction", None, {"grid": [[2]]}),
        ("comment", "nice", None),
    ],
)
def test_forwarded_feedback_reads_back_as_the_same_feedback(kind, value, corrected):
    event = FeedbackEvent(
        id=str(uuid.uuid4()), solve_id="s-1", kind=kind, value=value, corrected_output=corrected, actor="p-7"
    )
    back = feedback_from_statement(statement_for_feedback(event, NAMING))
    assert (back.id, back.solve_id, back.kind, back.corrected_output, back.actor, back.source) == (
        event.id,
        "s-1",
        kind,
        corrected,
        "p-7",
        "xapi",
    )


# ---------------------------------------------------------------------------------- forwarder
class CaptureLrs:
    """An LRS (httpx mock transport): 503 while ``down``; refuses statements whose id is in ``refuse``."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.refuse: set[str] = set()
        self.received: list[dict] = []
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert request.headers["x-experience-api-version"] == "1.0.3"
        if self.down:
            return httpx.Response(503)
        batch = json.loads(request.content)
        if any(s["id"] in self.refuse for s in batch):
            return httpx.Response(400, json={"detail": "refused"})
        self.received.extend(batch)
        return httpx.Response(200, json=[s["id"] for s in batch])


class FakeClock:
    def __init__(self) -> None:
        from datetime import datetime, timezone

        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


def forwarder(store, lrs: CaptureLrs, clock=None, start: bool = False) -> XapiForwarder:
    from trm_adapters.xapi_outbox import utcnow

    return XapiForwarder(
        "https://lrs.example/xapi/",
        store,
        naming=NAMING,
        auth="key:secret",
        batch_size=4,
        retry_initial_s=10,
        retry_max_s=60,
        client=httpx.Client(transport=httpx.MockTransport(lrs)),
        clock=clock or utcnow,
        start=start,
    )


@pytest.fixture
def store(tmp_path):
    from trm_modules.store import Store

    store = Store(str(tmp_path / "store.sqlite3"))
    yield store
    store.close()


def test_while_the_lrs_is_down_each_statement_waits_its_back_off_and_arrives_once_it_is_back(store):
    lrs, clock = CaptureLrs(down=True), FakeClock()
    sender = forwarder(store, lrs, clock)
    sender.trm_on_solve(solve_record())
    sender.trm_on_feedback(FeedbackEvent(solve_id="s-1", kind="correct"))
    assert not sender.send_due() and lrs.requests == 1 and sender.pending() == 2
    assert sender.send_due() and lrs.requests == 1  # nothing is due before its back-off (10 s) ends
    clock.advance(10)
    assert not sender.send_due() and lrs.requests == 2  # second failure: 20 s now
    lrs.down = False
    clock.advance(19)
    assert sender.send_due() and lrs.received == []
    clock.advance(1)
    assert sender.send_due() and sender.pending() == 0
    assert [s["verb"]["id"].rsplit("/", 1)[1] for s in lrs.received] == ["asked", "responded"]


def test_a_refused_statement_becomes_a_dead_letter_and_its_batch_neighbours_are_delivered(store):
    lrs = CaptureLrs()
    sender = forwarder(store, lrs)
    records = [solve_record(id=f"s-{i}") for i in range(4)]
    statements = [statement_for_solve(r, NAMING) for r in records]
    lrs.refuse = {statements[2]["id"]}
    for record in records:
        sender.trm_on_solve(record)
    assert sender.send_due()
    assert [s["id"] for s in lrs.received] == [statements[i]["id"] for i in (0, 1, 3)]
    dead = sender.outbox.dead_letters()
    assert [d.statement["id"] for d in dead] == [statements[2]["id"]] and dead[0].error.startswith("400")
    assert sender.pending() == 0


def test_the_queue_left_by_a_stopped_forwarder_is_sent_by_the_next_one(store):
    lrs = CaptureLrs(down=True)
    first = forwarder(store, lrs)
    first.trm_on_solve(solve_record())
    first.close()
    lrs.down = False
    second = forwarder(store, lrs, start=True)
    try:
        assert second.flush(timeout=30) and len(lrs.received) == 1
    finally:
        second.close()


def test_feedback_that_came_from_an_lrs_is_not_sent_back(store):
    sender = forwarder(store, CaptureLrs())
    sender.trm_on_feedback(FeedbackEvent(solve_id="s-1", kind="correct", source="xapi"))
    assert sender.pending() == 0


def test_the_server_starts_a_forwarder_when_an_lrs_is_configured(tmp_path):
    with served(tmp_path, xapi_lrs_url="http://127.0.0.1:9/xapi/") as s:
        assert s.runtime.host.pm.get_plugin("trm-xapi-forwarder") is not None


def test_the_servers_own_statements_posted_back_leave_feedback_and_accuracy_unchanged(tmp_path):
    """Loop-back: an LRS that forwards every statement (the server's own among them) back to /xapi."""
    from trm_modules.store import module_stats

    lrs = CaptureLrs()
    with served(tmp_path) as s:
        sender = forwarder(s.runtime.store, lrs, start=True)
        sender.naming = StatementNaming("http://testserver")
        s.runtime.host.pm.register(sender, name="xapi-loopback-forwarder")
        try:
            solve_ids = [solve_id_of(s) for _ in range(3)]
            for solve_id in solve_ids:
                s.client.post(
                    "/v1/feedback", json={"solve_id": solve_id, "kind": "correct"}, headers=s.auth("feedback")
                )
            s.runtime.host.flush()
            assert sender.flush(timeout=30)
            s.runtime.recorder.flush(10)
            before = module_stats(s.runtime.store, MODULE).overall
            with s.runtime.store.session() as session:
                feedback_before = session.scalar(select(func.count()).select_from(Feedback))
            assert len(lrs.received) == 6
            response = post(s, lrs.received)
            assert response.status_code == 200, response.text
            s.runtime.host.flush()
            s.runtime.recorder.flush(10)
            with s.runtime.store.session() as session:
                assert session.scalar(select(func.count()).select_from(Feedback)) == feedback_before
            assert module_stats(s.runtime.store, MODULE).overall == before
        finally:
            s.runtime.host.pm.unregister(sender)
            sender.close()


def test_a_feedback_verb_about_a_solve_without_the_servers_mark_is_feedback(server):
    solve_id = solve_id_of(server)
    sent = statement(solve_activity_iri("http://testserver", solve_id), success=False)
    post(server, sent)
    assert feedback_count(server, [sent["id"]]) == 1


def test_a_statement_about_a_solve_with_another_verb_is_not_feedback(server):
    solve_id = solve_id_of(server)
    sent = statement(solve_activity_iri("http://testserver", solve_id), success=False)
    sent["verb"] = {"id": "http://adlnet.gov/expapi/verbs/asked"}
    post(server, sent)
    assert feedback_count(server, [sent["id"]]) == 0


def test_the_migration_creates_exactly_the_outbox_table(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from trm_adapters.xapi_outbox import metadata

    store.ensure_schema()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda name, type_, _parent: type_ != "table" or name in metadata.tables}
        )
        assert compare_metadata(context, metadata) == []


def test_statements_made_while_the_store_is_away_are_queued_once_it_is_back(store):
    lrs = CaptureLrs()
    sender = forwarder(store, lrs)
    add = sender.outbox.add

    def refused(statements):
        raise RuntimeError("database is locked")

    sender.outbox.add = refused
    sender.trm_on_solve(solve_record(id="while-away"))
    assert sender.pending() == 1  # held in memory while the store refuses writes
    sender.outbox.add = add
    assert sender.send_due() and [s["object"]["id"].rsplit("/", 1)[1] for s in lrs.received] == ["while-away"]


# ------------------------------------------------------------------------ learner outcomes
def outcome_statement(
    server, verb: str, *, course: str | None = "course-x", solve_ids=(), learner="learner-9", **result
) -> dict:
    from trm_adapters.lrs import lrs_settings
    from trm_adapters.lrs.courses import course_iri

    base = lrs_settings(server.runtime.settings).authority_home
    context = {
        "contextActivities": {
            **({"grouping": [{"id": course_iri(base, course)}]} if course else {}),
            **({"other": [{"id": solve_activity_iri(base, s)} for s in solve_ids]} if solve_ids else {}),
        }
    }
    return {
        "id": str(uuid.uuid4()),
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": learner}},
        "object": {"objectType": "Activity", "id": "https://lms.example/au/maze-week-3"},
        "context": context,
        "result": result,
    }


def stored_outcome(server, statement_id: str):
    from trm_modules.store.models import LearnerOutcome, LearnerOutcomeSolve

    server.runtime.recorder.flush(10)
    with server.runtime.store.session() as session:
        row = session.get(LearnerOutcome, statement_id)
        solves = sorted(
            session.scalars(select(LearnerOutcomeSolve.solve_id).where(LearnerOutcomeSolve.outcome_id == statement_id))
        )
        return row, solves


def test_passed_failed_and_scored_statements_become_the_learners_outcomes_once(server):
    asked = [solve_id_of(server), solve_id_of(server)]
    passed = outcome_statement(server, "passed", solve_ids=asked, score={"raw": 7, "min": 0, "max": 9, "scaled": 0.78})
    failed = outcome_statement(server, "failed", learner="learner-10", score={"scaled": 0.2})
    scored = outcome_statement(server, "scored", course=None, success=True, score={"raw": 3, "max": 4})
    for _ in range(2):  # a client's retry: the same statements again
        assert post(server, [passed, failed, scored]).status_code == 200
    row, solves = stored_outcome(server, passed["id"])
    assert (row.learner, row.course, row.activity, row.source) == (
        "learner-9",
        "course-x",
        "https://lms.example/au/maze-week-3",
        "xapi",
    )
    assert (row.score, row.max_score, row.normalised_score, row.success, row.asked) == (7, 9, 7 / 9, True, True)
    assert solves == sorted(asked)
    row, solves = stored_outcome(server, failed["id"])
    assert (row.learner, row.score, row.max_score, row.success, row.asked, solves) == (
        "learner-10",
        0.2,
        None,
        False,
        False,
        [],
    )
    row, _ = stored_outcome(server, scored["id"])
    assert (row.course, row.normalised_score, row.success) == ("", 0.75, True)
    from trm_modules.store.models import LearnerOutcome

    with server.runtime.store.session() as session:
        ids = [passed["id"], failed["id"], scored["id"]]
        assert session.scalar(select(func.count()).select_from(LearnerOutcome).where(LearnerOutcome.id.in_(ids))) == 3


def test_statements_that_are_no_learner_result_give_no_outcome(server):
    own = outcome_statement(server, "passed", score={"scaled": 1.0})
    own["context"]["extensions"] = {EXT_EMITTED_BY: "http://another-replica.example"}
    attempted = outcome_statement(server, "attempted", score={"scaled": 1.0})
    bare = outcome_statement(server, "scored")  # neither a score nor a success
    assert post(server, [own, attempted, bare]).status_code == 200
    assert [stored_outcome(server, s["id"])[0] for s in (own, attempted, bare)] == [None, None, None]
