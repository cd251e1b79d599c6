"""Values the store cannot hold and feedback that does not fit its kind are refused at the edge (422 + pointer)."""

from __future__ import annotations

import pytest

from fixtures.server import MODULE, puzzle, served

SURROGATE_BODY = '{"input": %s, "context": {"learner": "\\ud800"}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("refusals")) as s:
        yield s


def post_solve(server, **body):
    return server.client.post(
        f"/v1/modules/{MODULE}/solve", json={"input": puzzle(), **body}, headers=server.auth("solve")
    )


def post_feedback(server, **body):
    return server.client.post("/v1/feedback", json=body, headers=server.auth("feedback"))


def pointer(response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["errors"][0]["pointer"]


def test_a_lone_surrogate_in_the_learner_is_refused_at_the_field(server):
    import json

    body = SURROGATE_BODY % json.dumps(puzzle())
    response = server.client.post(
        f"/v1/modules/{MODULE}/solve",
        content=body,
        headers={**server.auth("solve"), "content-type": "application/json"},
    )
    assert pointer(response) == "/context/learner"
    assert "surrogate" in response.json()["detail"]


def test_a_learner_longer_than_its_column_is_refused_at_the_field(server):
    assert pointer(post_solve(server, context={"learner": "x" * 201})) == "/context/learner"


def test_a_nul_character_in_a_context_part_is_refused_at_the_field(server):
    assert pointer(post_solve(server, context={"course": "a\u0000b"})) == "/context/course"


def test_the_openapi_schema_documents_the_stored_lengths(server):
    schemas = server.client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["SolveContext"]["properties"]["learner"]["anyOf"][0]["maxLength"] == 200
    assert schemas["FeedbackRequest"]["properties"]["solve_id"]["maxLength"] == 128


def test_the_host_enforces_the_same_limits_for_python_callers(server):
    from trm_modules.host.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        server.runtime.host.solve(MODULE, puzzle(), {"learner": "x" * 201})
    assert refused.value.path == "/learner"


def test_a_void_without_voids_is_refused_at_voids(server):
    assert pointer(post_feedback(server, solve_id="s", kind="void")) == "/voids"


@pytest.mark.parametrize("value", [5, 1e308, -1.5])
def test_a_rating_outside_minus_one_to_one_is_refused_at_value(server, value):
    assert pointer(post_feedback(server, solve_id="s", kind="rating", value=value)) == "/value"


def test_an_unknown_feedback_kind_is_refused_at_kind(server):
    assert pointer(post_feedback(server, solve_id="s", kind="great")) == "/kind"


def test_a_correction_without_the_right_answer_is_refused_at_corrected_output(server):
    assert pointer(post_feedback(server, solve_id="s", kind="correction")) == "/corrected_output"


def test_metrics_count_dead_letters_and_writer_restarts(server):
    text = server.client.get("/metrics").text
    assert "trm_store_dead_letters_total 0.0" in text and "trm_store_writer_restarts_total 0.0" in text
    assert "trm_store_database_up 1.0" in text


def test_feedback_on_a_solve_this_store_never_recorded_is_404_at_solve_id(server):
    response = post_feedback(server, solve_id="never-answered", kind="correct")
    assert response.status_code == 404 and response.json()["errors"][0]["pointer"] == "/solve_id"


def test_feedback_on_an_unstored_solve_whose_id_was_issued_moments_ago_is_503_with_retry_after(server):
    """Another replica may have answered it and still hold it in its queue or journal: retry, don't give up."""
    from trm_modules.records import issued_at, new_id

    fresh = new_id()
    assert issued_at(fresh) is not None
    response = post_feedback(server, solve_id=fresh, kind="correct")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json()["type"].endswith("solve-pending") and response.json()["errors"][0]["pointer"] == "/solve_id"


def test_feedback_on_an_unstored_solve_issued_long_ago_is_404(server):
    import uuid

    from trm_modules.server.intake import PENDING_SOLVE_WINDOW_S

    issued_ms = int((__import__("time").time() - PENDING_SOLVE_WINDOW_S - 60) * 1000)
    old = uuid.UUID(int=issued_ms << 80 | 0x7 << 76 | 0x2 << 62 | 12345)
    assert old.version == 7
    assert post_feedback(server, solve_id=str(old), kind="correct").status_code == 404
    assert post_feedback(server, solve_id=str(uuid.uuid4()), kind="correct").status_code == 404


def test_solve_ids_are_time_ordered_uuid7(server):
    import uuid

    from trm_modules.records import issued_at

    solve_id = post_solve(server).json()["solve_id"]  # no client_id: the server issues the id
    assert uuid.UUID(solve_id).version == 7 and uuid.UUID(solve_id).variant == uuid.RFC_4122
    age = __import__("datetime").datetime.now(__import__("datetime").timezone.utc) - issued_at(solve_id)
    assert 0 <= age.total_seconds() < 60


def test_feedback_marked_external_is_accepted_for_a_solve_answered_elsewhere(server):
    response = post_feedback(server, solve_id="answered-elsewhere", kind="correct", external=True)
    assert response.status_code == 202, response.text


def test_an_answered_solve_is_already_stored_when_the_answer_arrives(server):
    from trm_modules.store.models import Solve

    solve_id = post_solve(server, client_id="stored-before-answer").json()["solve_id"]
    with server.runtime.store.session() as session:  # no flush: the 200 came after the commit
        assert session.get(Solve, solve_id) is not None


def test_concurrent_resends_of_one_feedback_id_are_exactly_one_new_and_the_rest_duplicates(server):
    from concurrent.futures import ThreadPoolExecutor

    solve_id = post_solve(server).json()["solve_id"]
    body = {"id": "fb-resent", "solve_id": solve_id, "kind": "correct"}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: post_feedback(server, **body), range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert [r.json()["duplicate"] for r in responses].count(False) == 1


def test_admin_calls_on_an_unknown_module_leave_no_empty_slot(server):
    admin = server.auth("admin")
    assert (
        server.client.post("/v1/admin/modules/nope/activate", json={"version": "1.0.0"}, headers=admin).status_code
        == 404
    )
    assert (
        server.client.put("/v1/admin/modules/nope/pins/c1", json={"version": "1.0.0"}, headers=admin).status_code == 404
    )
    assert "nope" not in server.client.get("/healthz").json()["modules"]
    assert [s.name for s in server.runtime.host.modules()] == [MODULE]


def test_healthz_shows_the_store_writer_and_no_filesystem_path(server):
    response = server.client.get("/healthz")
    health = response.json()
    assert health["store"]["database"] == "up" and health["store"]["writer_restarts"] == 0
    assert str(server.runtime.registry.root.parent) not in response.text and "registry" not in health


def test_a_void_naming_an_unknown_event_is_404_at_voids_not_accepted_and_dropped(server):
    solve_id = post_solve(server).json()["solve_id"]
    response = post_feedback(server, solve_id=solve_id, kind="void", voids="no-such-event")
    assert response.status_code == 404 and response.json()["errors"][0]["pointer"] == "/voids"


def test_a_void_naming_an_accepted_event_is_accepted(server):
    solve_id = post_solve(server).json()["solve_id"]
    assert post_feedback(server, id="fb-to-void", solve_id=solve_id, kind="incorrect").status_code == 202
    assert post_feedback(server, solve_id=solve_id, kind="void", voids="fb-to-void").status_code == 202


def test_a_writer_that_failed_is_restarted_the_solve_still_recorded_and_healthz_says_so(tmp_path):
    import threading

    with served(tmp_path) as fresh:
        recorder = fresh.runtime.recorder
        persist, failed = recorder._persist, threading.Event()

        def failing_once(items):
            if not failed.is_set():
                failed.set()
                raise RuntimeError("a bug in the writer")
            return persist(items)

        recorder._persist = failing_once
        assert post_solve(fresh, client_id="through-a-restart").status_code == 200
        store = fresh.client.get("/healthz").json()["store"]
        assert (store["writer_restarts"], "a bug in the writer" in store["last_writer_error"]) == (1, True)
        from trm_modules.store.models import Solve

        with fresh.runtime.store.session() as session:
            assert session.get(Solve, "through-a-restart") is not None
