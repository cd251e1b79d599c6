"""The OpenAPI document and /docs of ``trm serve``, as a platform developer meets them."""

from __future__ import annotations

import json

import pytest

from fixtures.server import served

OPEN = {"/healthz", "/metrics", "/xapi/about"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("openapi")) as s:
        yield s


@pytest.fixture(scope="module")
def document(server):
    return server.client.get("/openapi.json").json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_operation_ids_are_the_route_names_and_unique(document):
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    named = {(path, method): operation["operationId"] for path, method, operation in operations(document)}
    assert named[("/v1/modules/{name}/solve", "post")] == "solve"
    assert named[("/v1/feedback", "post")] == "feedback"
    assert named[("/xapi/statements", "post")] == "xapi_post_statements"


def test_every_guarded_operation_declares_bearer_and_basic_auth_so_docs_offer_authorize(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and schemes["basicAuth"]["scheme"] == "basic"
    for path, method, operation in operations(document):
        if path in OPEN:
            assert "security" not in operation, (method, path)
        elif path.startswith(("/v1/", "/xapi/")):
            assert operation["security"] == [{"bearerAuth": []}, {"basicAuth": []}], (method, path)


def test_every_error_status_is_documented_as_a_problem_document(document):
    for path, method, operation in operations(document):
        errors = {status: response for status, response in operation["responses"].items() if status[0] in "45"}
        assert "500" in errors, (method, path)
        for status, response in errors.items():
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def _example_of(document, media: dict) -> object:
    if "example" in media or "examples" in media:
        return media.get("example", media.get("examples"))
    schema = media.get("schema", {})
    schema = next((s for s in schema.get("anyOf", []) if "$ref" in s), schema)  # an optional body
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("examples") or schema.get("example")


def test_every_json_request_body_has_an_example(document):
    for path, method, operation in operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if media_type.endswith("json"):
                assert _example_of(document, media), (method, path, media_type)


def test_the_solve_example_is_a_request_the_server_accepts(server, document):
    body = document["components"]["schemas"]["SolveRequest"]["examples"][0]
    response = server.client.post(
        "/v1/modules/sudoku-4x4/solve", json={**body, "client_id": None}, headers=server.auth("solve")
    )
    assert response.status_code == 200, response.text


def test_docs_load_swagger_ui_from_the_server_itself_not_a_cdn(server):
    page = server.client.get("/docs").text
    assert "cdn." not in page and "unpkg" not in page
    script = next(part.split('"')[0] for part in page.split('src="')[1:] if "swagger-ui-bundle" in part)
    assert server.client.get(script).status_code == 200
    assert json.loads(server.client.get("/openapi.json").text)["openapi"].startswith("3.")
