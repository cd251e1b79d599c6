"""The HTTP API in process (FastAPI TestClient): modules, solve, feedback, auth scopes, problems, limits."""

from __future__ import annotations

import json

import pytest

from fixtures.packages import build_tiny_package
from fixtures.server import MODULE, puzzle, served

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("server"), {"1.0.0": 0, "1.1.0": 1}, max_body_bytes=4096) as s:
        yield s


def solve(server, data=None, **extra):
    body = {"input": data if data is not None else puzzle(), **extra}
    return server.client.post(f"/v1/modules/{MODULE}/solve", json=body, headers=server.auth("solve"))


def test_modules_list_shows_active_and_available_versions_with_schema_links(server):
    response = server.client.get("/v1/modules", headers=server.auth("solve"))
    assert response.status_code == 200
    (module,) = response.json()
    assert (module["name"], module["active"], module["available"]) == (MODULE, "1.1.0", ["1.0.0", "1.1.0"])
    assert module["module_id"]
    schema = server.client.get(module["links"]["input_schema"], headers=server.auth("solve"))
    assert schema.headers["content-type"] == "application/schema+json" and schema.json()["type"] == "object"


def test_module_detail_has_manifest_card_and_schemas(server):
    detail = server.client.get(f"/v1/modules/{MODULE}", headers=server.auth("solve")).json()
    assert detail["version"] == "1.1.0" and detail["manifest"]["name"] == MODULE
    assert detail["card"] and detail["input_schema"]["type"] == "object" and detail["output_schema"]


def test_solve_answers_with_output_version_digest_and_solve_id(server):
    response = solve(server, context={"platform": "lms", "course": "c1", "learner": "p1"}, client_id="solve-a")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["solve_id"] == "solve-a" and answer["version"] == "1.1.0"
    assert answer["digest"].startswith("sha256:") and len(answer["output"]["grid"]) == 4
    assert (
        1 <= answer["steps"] <= 4 * answer["views"]
        and 0 <= answer["confidence"] <= 1
        and answer["valid"] in (True, False)
    )


def test_input_breaking_the_module_schema_is_a_problem_pointing_at_the_value(server):
    bad = puzzle()
    bad["grid"][2][1] = 9
    response = solve(server, bad)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 422 and problem["errors"][0]["pointer"] == "/input/grid/2/1"


def test_request_body_breaking_the_api_schema_is_a_problem_pointing_at_the_field(server):
    response = server.client.post(
        f"/v1/modules/{MODULE}/solve", json={"input": puzzle(), "context": {"course": 3}}, headers=server.auth("solve")
    )
    assert response.status_code == 422 and response.json()["errors"][0]["pointer"] == "/context/course"


def test_malformed_json_is_a_problem_and_the_server_keeps_serving(server):
    response = server.client.post(
        f"/v1/modules/{MODULE}/solve",
        content=b"{not json",
        headers={**server.auth("solve"), "content-type": "application/json"},
    )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert solve(server).status_code == 200


def test_unknown_module_is_a_404_problem(server):
    response = server.client.post("/v1/modules/nope/solve", json={"input": {}}, headers=server.auth("solve"))
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM


def test_missing_or_unknown_token_is_401(server):
    assert server.client.get("/v1/modules").status_code == 401
    response = server.client.get("/v1/modules", headers={"Authorization": "Bearer trm_x_y"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


def test_solve_and_feedback_tokens_are_refused_on_admin_routes(server):
    for scope in ("solve", "feedback"):
        response = server.client.post(f"/v1/admin/modules/{MODULE}/rollback", headers=server.auth(scope))
        assert response.status_code == 403 and response.headers["content-type"] == PROBLEM


def test_feedback_token_cannot_solve_and_solve_token_cannot_give_feedback(server):
    assert (
        server.client.post(
            f"/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=server.auth("feedback")
        ).status_code
        == 403
    )
    assert (
        server.client.post(
            "/v1/feedback", json={"solve_id": "x", "kind": "correct"}, headers=server.auth("solve")
        ).status_code
        == 403
    )


def test_body_declared_over_the_limit_is_refused_with_413_before_parsing(server):
    response = server.client.post(
        f"/v1/modules/{MODULE}/solve",
        content=b"x" * 5000,
        headers={**server.auth("solve"), "content-type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["status"] == 413
    assert solve(server).status_code == 200


def test_streamed_body_over_the_limit_is_refused_with_413(server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = server.client.post(
        f"/v1/modules/{MODULE}/solve",
        content=chunks(),
        headers={**server.auth("solve"), "content-type": "application/json"},
    )
    assert response.status_code == 413


def test_feedback_posted_twice_with_one_id_is_stored_once(server):
    solve_id = solve(server).json()["solve_id"]
    body = {"id": "fb-twice", "solve_id": solve_id, "kind": "correct"}
    first = server.client.post("/v1/feedback", json=body, headers=server.auth("feedback"))
    assert first.status_code == 202
    server.runtime.host.flush()
    server.runtime.recorder.flush(10)
    second = server.client.post("/v1/feedback", json=body, headers=server.auth("feedback"))
    assert second.status_code == 200 and second.json()["duplicate"] is True
    from sqlalchemy import func, select

    from trm_modules.store.models import Feedback

    with server.runtime.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Feedback).where(Feedback.id == "fb-twice")) == 1


def test_recorded_solve_resolves_at_its_activity_iri(server):
    solve_id = solve(server).json()["solve_id"]
    server.runtime.host.flush()
    server.runtime.recorder.flush(10)
    response = server.client.get(f"/v1/solves/{solve_id}", headers=server.auth("solve"))
    assert response.status_code == 200 and response.json()["module"] == MODULE


def test_metrics_count_solves_latency_steps_and_feedback(server):
    solve_id = solve(server).json()["solve_id"]
    server.client.post(
        "/v1/feedback", json={"solve_id": solve_id, "kind": "incorrect"}, headers=server.auth("feedback")
    )
    server.runtime.host.flush()
    text = server.client.get("/metrics").text
    assert (
        f'trm_solves_total{{module="{MODULE}",valid=' in text or f'trm_solves_total{{module="{MODULE}",version=' in text
    )
    assert f'trm_solve_latency_seconds_bucket{{le="10.0",module="{MODULE}"}}' in text
    assert f'trm_solve_steps_count{{module="{MODULE}"}}' in text
    assert 'trm_feedback_total{kind="incorrect",source="api"} 1.0' in text


def test_metrics_count_admin_swaps(admin_server):
    admin_server.client.post(
        f"/v1/admin/modules/{MODULE}/activate", json={"version": "1.0.0"}, headers=admin_server.auth("admin")
    )
    assert f'trm_swaps_total{{action="activate",module="{MODULE}"}} 1.0' in admin_server.client.get("/metrics").text


def test_healthz_is_open_and_names_active_versions(server):
    assert server.client.get("/healthz").json()["modules"] == {MODULE: "1.1.0"}


def test_openapi_documents_the_versioned_routes(server):
    paths = server.client.get("/openapi.json").json()["paths"]
    assert {"/v1/modules", "/v1/modules/{name}/solve", "/v1/feedback", "/v1/admin/packages", "/xapi/statements"} <= set(
        paths
    )


# ------------------------------------------------------------------------------------- admin
@pytest.fixture
def admin_server(tmp_path):
    with served(tmp_path, {"1.0.0": 0}) as s:
        yield s


def test_uploaded_raw_package_is_verified_published_and_activated(admin_server, tmp_path):
    path = build_tiny_package(tmp_path / "up.trm", name=MODULE, version="2.0.0", seed=3)
    response = admin_server.client.post(
        "/v1/admin/packages?activate=true",
        content=path.read_bytes(),
        headers={**admin_server.auth("admin"), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["active"] == "2.0.0"
    assert solve(admin_server).json()["version"] == "2.0.0"


def test_uploaded_multipart_package_is_published_without_changing_the_active_version(admin_server, tmp_path):
    path = build_tiny_package(tmp_path / "up.trm", name=MODULE, version="2.0.0", seed=3)
    response = admin_server.client.post(
        "/v1/admin/packages", files={"file": ("up.trm", path.read_bytes())}, headers=admin_server.auth("admin")
    )
    assert response.status_code == 201 and response.json()["active"] == "1.0.0"
    assert "2.0.0" in admin_server.runtime.registry.list_versions(MODULE)


def test_corrupted_upload_is_refused_and_not_published(admin_server, tmp_path):
    data = bytearray(build_tiny_package(tmp_path / "up.trm", name=MODULE, version="2.0.0", seed=3).read_bytes())
    data[len(data) // 2] ^= 0xFF
    response = admin_server.client.post(
        "/v1/admin/packages",
        content=bytes(data),
        headers={**admin_server.auth("admin"), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert admin_server.runtime.registry.list_versions(MODULE) == ["1.0.0"]


def test_activate_then_rollback_restores_the_previous_version(admin_server, tmp_path):
    admin_server.runtime.registry.publish(build_tiny_package(tmp_path / "b.trm", name=MODULE, version="1.1.0", seed=1))
    headers = admin_server.auth("admin")
    activated = admin_server.client.post(
        f"/v1/admin/modules/{MODULE}/activate", json={"version": "1.1.0"}, headers=headers
    )
    assert activated.json()["active"] == "1.1.0"
    assert admin_server.client.post(f"/v1/admin/modules/{MODULE}/rollback", headers=headers).json()["active"] == "1.0.0"


def test_activating_an_unpublished_version_is_a_404_and_changes_nothing(admin_server):
    response = admin_server.client.post(
        f"/v1/admin/modules/{MODULE}/activate", json={"version": "9.9.9"}, headers=admin_server.auth("admin")
    )
    assert response.status_code == 404 and solve(admin_server).json()["version"] == "1.0.0"


def test_course_pin_answers_that_course_with_the_pinned_version(admin_server, tmp_path):
    admin_server.runtime.registry.publish(build_tiny_package(tmp_path / "b.trm", name=MODULE, version="1.1.0", seed=1))
    response = admin_server.client.put(
        f"/v1/admin/modules/{MODULE}/pins/course-7", json={"version": "1.1.0"}, headers=admin_server.auth("admin")
    )
    assert response.json()["pins"] == {"course-7": "1.1.0"}
    assert solve(admin_server, context={"course": "course-7"}).json()["version"] == "1.1.0"
    assert solve(admin_server, context={"course": "other"}).json()["version"] == "1.0.0"


def test_canary_share_one_sends_every_learner_to_the_canary(admin_server, tmp_path):
    admin_server.runtime.registry.publish(build_tiny_package(tmp_path / "b.trm", name=MODULE, version="1.1.0", seed=1))
    response = admin_server.client.put(
        f"/v1/admin/modules/{MODULE}/canary",
        json={"version": "1.1.0", "share": 1.0},
        headers=admin_server.auth("admin"),
    )
    assert response.json()["canary"] == "1.1.0"
    assert solve(admin_server, context={"learner": "someone"}).json()["version"] == "1.1.0"


def test_yanked_version_leaves_the_available_list(admin_server, tmp_path):
    admin_server.runtime.registry.publish(build_tiny_package(tmp_path / "b.trm", name=MODULE, version="1.1.0", seed=1))
    response = admin_server.client.post(
        f"/v1/admin/modules/{MODULE}/versions/1.1.0/yank", json={"reason": "bad"}, headers=admin_server.auth("admin")
    )
    assert response.json()["yanked"] is True
    (module,) = admin_server.client.get("/v1/modules", headers=admin_server.auth("admin")).json()
    assert module["available"] == ["1.0.0"] and module["yanked"] == ["1.1.0"]


def test_server_starts_with_an_empty_registry_and_says_so(tmp_path):
    with served(tmp_path, {}) as s:
        assert s.runtime.report.activated == {}
        assert s.client.get("/v1/modules", headers=s.auth("solve")).json() == []


def test_problem_documents_are_json_with_type_title_status_detail_instance(server):
    problem = server.client.get("/v1/modules/nope", headers=server.auth("solve")).json()
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert problem["instance"] == "/v1/modules/nope"
    json.dumps(problem)


def test_undecodable_model_answer_is_a_server_problem_not_an_input_problem():
    from trm_modules.errors import CodecError
    from trm_modules.host import InvalidInput
    from trm_modules.server.problems import problem_for

    assert problem_for(CodecError("token 0 is not a digit", "/grid/0/0")).status == 500
    assert problem_for(InvalidInput("bad", "/grid/0/0")).errors == [{"detail": "bad", "pointer": "/input/grid/0/0"}]
