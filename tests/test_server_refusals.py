"""Values the store cannot hold and feedback that does not fit its kind are refused at the edge (422 + pointer)."""

from __future__ import annotations

import pytest

from test_server_fixtures import MODULE, puzzle, served

SURROGATE_BODY = '{"input": %s, "context": {"learner": "\\ud800"}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("refusals")) as s:
        yield s


def post_solve(server, **body):
    return server.client.post(f"/v1/modules/{MODULE}/solve", json={"input": puzzle(), **body},
                              headers=server.auth("solve"))


def post_feedback(server, **body):
    return server.client.post("/v1/feedback", json=body, headers=server.auth("feedback"))


def pointer(response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["errors"][0]["pointer"]


def test_a_lone_surrogate_in_the_learner_is_refused_at_the_field(server):
    import json

    body = SURROGATE_BODY % json.dumps(puzzle())
    response = server.client.post(f"/v1/modules/{MODULE}/solve", content=body,
                                  headers={**server.auth("solve"), "content-type": "application/json"})
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
