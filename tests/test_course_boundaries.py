"""Course boundaries: a token limited to courses sees, solves, gives feedback on and reads statements of those
courses only. The sweep sends every route the app serves (enumerated from the app, plugins' routes included) with
each course-limited token, aimed at another course's data, and checks that nothing of that course comes back and
nothing of it changes."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from fixtures.server import MODULE, puzzle, served
from fixtures.store import BACKENDS, database_url
from trm_modules.server.openapi import _api_routes
from trm_modules.store.models import Context, Feedback, Solve

OWN, OWN_TOO, OTHER = "logic-101", "logic-102", "algebra-202"
BASE = "http://testserver"
XAPI = {"X-Experience-API-Version": "1.0.3"}
#: scopes of the course-limited tokens the sweep uses (each limited to OWN; the last also to OWN_TOO)
LIMITED = {
    "solve": ["solve"],
    "feedback": ["feedback"],
    "read": ["read"],
    "admin": ["admin"],
    "all": ["solve", "feedback", "read", "admin"],
}


def course_iri(course: str) -> str:
    return f"{BASE}/courses/{course}"


def statement(course: str, verb: str = "http://adlnet.gov/expapi/verbs/experienced", **extra) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": f"learner-{course}"}},
        "verb": {"id": verb},
        "object": {"objectType": "Activity", "id": f"https://lms.example/{course}/page-1"},
        "context": {"contextActivities": {"grouping": [{"id": course_iri(course)}]}},
        **extra,
    }


def feedback_statement(solve_id: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "teacher"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/responded"},
        "object": {"objectType": "Activity", "id": f"{BASE}/v1/solves/{solve_id}"},
        "result": {"success": False},
    }


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    """A server with solves, feedback, pins and statements in two courses, and course-limited tokens."""
    root = tmp_path_factory.mktemp("courses")
    with database_url(request.param, root) as url, served(root, {"1.0.0": 0, "1.1.0": 1}, db=url) as server:
        client = server.client
        solves: dict[str, list[str]] = {OWN: [], OTHER: []}
        for course in (OWN, OTHER):
            for i in range(3):
                body = {
                    "input": puzzle(seed=i + (10 if course == OTHER else 0)),
                    "context": {"platform": "lms", "course": course, "learner": f"learner-{course}-{i}"},
                    "client_id": f"solve-{'a' if course == OWN else 'b'}-{i}",
                }
                response = client.post(f"/v1/modules/{MODULE}/solve", json=body, headers=server.auth("solve"))
                assert response.status_code == 200, response.text
                solves[course].append(response.json()["solve_id"])
            for i, solve_id in enumerate(solves[course]):
                response = client.post(
                    "/v1/feedback",
                    json={"id": f"fb-{course}-{i}", "solve_id": solve_id, "kind": "correct"},
                    headers=server.auth("feedback"),
                )
                assert response.status_code == 202, response.text
        assert (
            client.put(
                f"/v1/admin/modules/{MODULE}/pins/{OTHER}", json={"version": "1.0.0"}, headers=server.auth("admin")
            ).status_code
            == 200
        )
        statements = {
            OWN: [statement(OWN), feedback_statement(solves[OWN][0])],
            OTHER: [statement(OTHER), feedback_statement(solves[OTHER][0])],
        }
        statements[OTHER].append(
            {
                "id": str(uuid.uuid4()),
                "actor": statements[OTHER][0]["actor"],
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": statements[OTHER][1]["id"]},
            }
        )
        for course in (OWN, OTHER):
            response = client.post(
                "/xapi/statements", json=statements[course], headers={**server.auth("feedback"), **XAPI}
            )
            assert response.status_code == 200, response.text
        tokens = {}
        for label, scopes in LIMITED.items():
            courses = [OWN, OWN_TOO] if label == "all" else [OWN]
            tokens[label] = server.runtime.tokens.create(scopes, name=f"limited-{label}", courses=courses)[0]
        server.backend = request.param
        yield server, solves, statements, tokens


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def other_course_state(server) -> dict:
    """Everything of OTHER the sweep must leave as it was."""
    with server.runtime.store.session() as session:
        solves = session.execute(
            select(func.count())
            .select_from(Solve)
            .join(Context, Solve.context_id == Context.id)
            .where(Context.course == OTHER)
        ).scalar()
        other_ids = select(Solve.id).join(Context, Solve.context_id == Context.id).where(Context.course == OTHER)
        feedback = session.execute(
            select(Feedback.id, Feedback.kind).where(Feedback.solve_id.in_(other_ids)).order_by(Feedback.id)
        ).all()
    pins = {s.name: dict(s.pins) for s in server.runtime.host.modules()}
    active = {s.name: (s.active, s.canary) for s in server.runtime.host.modules()}
    versions = [(e.name, e.version, e.yanked) for e in server.runtime.registry.list()]
    return {
        "solves": solves,
        "feedback": [tuple(f) for f in feedback],
        "pins": pins,
        "active": active,
        "versions": versions,
    }


def documented_example(document: dict, path: str, method: str) -> object:
    """The request body example the OpenAPI document gives an operation (every JSON body has one), else {}."""
    operation = document.get("paths", {}).get(path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "example" in content:
        return content["example"]
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
    examples = schema.get("examples") or [{}]
    return examples[0]


def aimed_at_other(example: object, solves) -> object:
    """A documented body with every course and solve id in it pointing at OTHER."""
    if isinstance(example, dict):
        return {
            k: (
                OTHER
                if k == "course"
                else solves[OTHER][0]
                if k == "solve_id"
                else [solves[OTHER][0]]
                if k == "solve_ids"
                else aimed_at_other(v, solves)
            )
            for k, v in example.items()
        }
    return example


def sweep_requests(
    route_path: str, method: str, solves, statements, document: dict | None = None
) -> list[tuple[str, dict, object]]:
    """(url, query, json body) aimed at OTHER's data for one route and method."""
    other_solve = solves[OTHER][0]
    values = {
        "name": MODULE,
        "solve_id": other_solve,
        "course": OTHER,
        "version": "1.0.0",
        "which": "input",
        "path": "index.json",
        "launch_id": "launch-1",
    }
    url = route_path
    for key, value in values.items():
        url = url.replace("{" + key + "}", value).replace("{" + key + ":path}", value)
    query: dict = {"course": OTHER}
    body: object = aimed_at_other(documented_example(document or {}, route_path, method), solves)
    if route_path.endswith("/solve"):
        body = {"input": puzzle(), "context": {"course": OTHER, "learner": "intruder"}}
    elif route_path == "/v1/feedback":
        body = {"solve_id": other_solve, "kind": "incorrect"}
    elif route_path.endswith("/yank"):
        body = {"reason": "sweep"}
    elif route_path.endswith("/canary"):
        body = {"version": "1.0.0", "share": 0.5}
    elif route_path.startswith("/v1/admin/modules"):
        body = {"version": "1.0.0"}
    requests = [(url, query, body)]
    if route_path == "/xapi/statements":
        if method in ("GET", "HEAD"):
            requests = [
                (url, {}, None),
                (url, {"statementId": statements[OTHER][0]["id"]}, None),
                (url, {"voidedStatementId": statements[OTHER][1]["id"]}, None),
                (url, {"activity": f"{BASE}/v1/solves/{other_solve}"}, None),
                (url, {"agent": json.dumps(statements[OTHER][0]["actor"])}, None),
                (url, {"limit": "1"}, None),
            ]
        elif method == "POST":
            requests = [
                (url, {}, [statement(OTHER)]),
                (url, {}, [feedback_statement(other_solve)]),
                (
                    url,
                    {},
                    [
                        {
                            "id": str(uuid.uuid4()),
                            "actor": statements[OTHER][0]["actor"],
                            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                            "object": {"objectType": "StatementRef", "id": statements[OTHER][0]["id"]},
                        }
                    ],
                ),
            ]
        elif method == "PUT":
            sid = str(uuid.uuid4())
            requests = [(url, {"statementId": sid}, {**statement(OTHER), "id": sid})]
    elif route_path.startswith("/xapi/"):
        activity = f"https://lms.example/{OTHER}/page-1"
        agent = json.dumps(statements[OTHER][0]["actor"])
        requests = [
            (
                url,
                {"activityId": activity, "agent": agent, "stateId": "s", "profileId": "p"},
                {"bookmark": 1} if method in ("PUT", "POST") else None,
            ),
            (url, {"activityId": activity, "agent": agent}, None),
        ]
    return requests


def secrets_of_other(solves, statements) -> list[str]:
    return [OTHER, *solves[OTHER], *(s["id"] for s in statements[OTHER]), f"learner-{OTHER}", "fb-" + OTHER]


def test_sweep_every_route_with_course_limited_tokens_reveals_and_changes_nothing_of_another_course(world):
    server, solves, statements, tokens = world
    if server.backend != "sqlite":
        pytest.skip("the sweep runs once (SQLite); the statement filter's SQL is checked on PostgreSQL below")
    client = server.client
    before = other_course_state(server)
    secrets = secrets_of_other(solves, statements)
    api_routes = _api_routes(client.app)
    document = client.app.openapi()
    routes = [(route.path, method) for route in api_routes for method in sorted(route.methods)]
    #: routes that take a ?course= filter (reports): naming another course must be refused, not answered
    course_filtered = {
        route.path for route in api_routes if any(param.name == "course" for param in route.dependant.query_params)
    }
    assert len(routes) >= 55, routes  # every core route and the plugins' (LRS, LTI)
    # a scope refusal comes before any course check, so a token with every scope reaches the most; read-only and
    # feedback-only tokens take the LRS's read and write paths of their own
    swept = {label: tokens[label] for label in ("all", "read", "feedback")}
    sent = 0
    authorized = set()
    for path, method in routes:
        for label, token in swept.items():
            for url, query, body in sweep_requests(path, method, solves, statements, document):
                headers = {**auth(token), **(XAPI if path.startswith("/xapi") else {})}
                response = client.request(
                    method,
                    url,
                    params=query,
                    headers=headers,
                    json=body if body is not None and method not in ("GET", "HEAD") else None,
                )
                sent += 1
                asked = url + json.dumps(query) + json.dumps(body)
                leaked = [s for s in secrets if s in response.text and s not in asked]
                assert not leaked, (method, url, query, label, response.status_code, leaked, response.text[:400])
                if response.status_code != 401:
                    authorized.add((path, method))
                if path in course_filtered and query.get("course") == OTHER:
                    assert response.status_code in (401, 403), (method, url, label, response.status_code)
                    unfiltered = client.request(method, url, headers=headers)  # no course named: theirs only
                    leaked = [s for s in secrets if s in unfiltered.text]
                    assert not leaked, (method, url, label, "without ?course", leaked)
                assert response.status_code < 500, (method, url, label, response.text[:400])
                if (
                    path.startswith("/xapi/statements")
                    and method in ("GET", "HEAD")
                    and response.status_code == 200
                    and "statements" in response.text
                ):
                    listed = {s["id"] for s in response.json()["statements"]}
                    assert not listed & {s["id"] for s in statements[OTHER]}, (query, label)
                if (
                    any(w in path for w in ("/solve", "/feedback", "/pins/"))
                    or path.startswith("/v1/admin")
                    or (
                        path.startswith("/xapi/")
                        and path != "/xapi/about"
                        and method != "OPTIONS"
                        and not (
                            path == "/xapi/statements"
                            and method in ("GET", "HEAD")
                            and "statementId" not in query
                            and "voidedStatementId" not in query
                        )
                    )
                ):
                    # every request aimed at another course's data (or at every course) is refused
                    assert (
                        response.status_code in (403, 404, 405, 422)
                        if path.startswith("/lti")
                        else response.status_code == 403
                    ), (method, url, query, label, response.status_code, response.text[:300])
    assert other_course_state(server) == before
    assert all((p, m) in authorized for p, m in routes if p.startswith("/v1") or p.startswith("/xapi/statements"))
    print(f"course sweep: {len(routes)} route-methods x {len(swept)} limited tokens = {sent} requests")


def test_a_limited_token_works_in_its_own_course(world):
    server, solves, statements, tokens = world
    client = server.client
    answer = client.post(
        f"/v1/modules/{MODULE}/solve",
        json={"input": puzzle(), "context": {"course": OWN}},
        headers=auth(tokens["solve"]),
    )
    assert answer.status_code == 200, answer.text
    solve_id = answer.json()["solve_id"]
    feedback = client.post(
        "/v1/feedback", json={"solve_id": solve_id, "kind": "incorrect"}, headers=auth(tokens["feedback"])
    )
    assert feedback.status_code == 202, feedback.text
    assert client.get(f"/v1/solves/{solves[OWN][1]}", headers=auth(tokens["read"])).status_code == 200
    me = client.get("/v1/me", headers=auth(tokens["all"])).json()
    assert me["courses"] == [OWN, OWN_TOO] and me["name"] == "limited-all" and "trm_" not in json.dumps(me)
    assert client.get("/v1/me", headers=server.auth("solve")).json()["courses"] is None
    module = client.get(f"/v1/modules/{MODULE}", headers=auth(tokens["read"])).json()
    assert module["pins"] == {}  # OTHER's pin is not shown
    assert client.get(f"/v1/modules/{MODULE}", headers=server.auth("admin")).json()["pins"] == {OTHER: "1.0.0"}
    pinned = client.put(
        f"/v1/admin/modules/{MODULE}/pins/{OWN}", json={"version": "1.0.0"}, headers=auth(tokens["admin"])
    )
    assert pinned.status_code == 200 and pinned.json()["pins"] == {OWN: "1.0.0"}, pinned.text
    assert client.delete(f"/v1/admin/modules/{MODULE}/pins/{OWN}", headers=auth(tokens["admin"])).status_code == 200


def test_a_solve_without_a_course_is_refused_to_a_limited_token(world):
    server, _, _, tokens = world
    response = server.client.post(f"/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=auth(tokens["all"]))
    assert response.status_code == 403 and response.json()["type"].endswith("course-forbidden")


def test_another_courses_solve_is_403_and_the_problem_does_not_name_its_course(world):
    server, solves, _, tokens = world
    response = server.client.get(f"/v1/solves/{solves[OTHER][0]}", headers=auth(tokens["read"]))
    assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
    assert OTHER not in response.text and OWN in response.text
    assert server.client.get(f"/v1/solves/{solves[OTHER][0]}", headers=server.auth("solve")).status_code == 200


def test_xapi_statement_reads_of_a_limited_token_hold_exactly_its_courses_statements(world):
    server, solves, statements, tokens = world
    client = server.client
    listed, url, query = [], "/xapi/statements", {"limit": "2"}
    while url:
        page = client.get(url, params=query, headers={**auth(tokens["read"]), **XAPI})
        assert page.status_code == 200, page.text
        listed += [s["id"] for s in page.json()["statements"]]
        url, query = page.json()["more"], {}
    everything = client.get("/xapi/statements", headers={**server.auth("feedback"), **XAPI}).json()["statements"]
    assert len(everything) > len(listed) > 0
    assert set(listed) == {s["id"] for s in statements[OWN]}
    one = client.get(
        "/xapi/statements", params={"statementId": statements[OWN][0]["id"]}, headers={**auth(tokens["read"]), **XAPI}
    )
    assert one.status_code == 200 and one.json()["id"] == statements[OWN][0]["id"]


def test_a_limited_token_stores_statements_of_its_course_and_a_read_token_cannot_write(world):
    server, solves, _, tokens = world
    client = server.client
    ours = [statement(OWN), feedback_statement(solves[OWN][2])]
    stored = client.post("/xapi/statements", json=ours, headers={**auth(tokens["feedback"]), **XAPI})
    assert stored.status_code == 200, stored.text
    refused = client.post("/xapi/statements", json=[statement(OWN)], headers={**auth(tokens["read"]), **XAPI})
    assert refused.status_code == 403
    nameless = {**statement(OWN), "context": {}}
    assert (
        client.post("/xapi/statements", json=[nameless], headers={**auth(tokens["feedback"]), **XAPI}).status_code
        == 403
    )


def test_token_create_with_courses_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from trm_modules.cli import app
    from trm_modules.server import TokenStore
    from trm_modules.settings import Settings
    from trm_modules.store import Store

    db = str(tmp_path / "store.sqlite3")
    result = CliRunner().invoke(
        app, ["token", "create", "--scope", "read", "--course", OWN, "--course", OWN_TOO, "--db", db]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    grant = TokenStore(Store(Settings(db_url=db).db)).grant(token)
    assert grant is not None and grant.scopes == ("read",) and grant.courses == {OWN, OWN_TOO}
    listing = CliRunner().invoke(app, ["token", "list", "--db", db])
    assert OWN in listing.output and OWN_TOO in listing.output
