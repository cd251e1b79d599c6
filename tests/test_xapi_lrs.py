"""The LRS (``/xapi``): statements, voiding, queries and paging, attachments, documents, About, CORS.

Each behaviour is checked over HTTP on SQLite, and on PostgreSQL when ``TRM_TEST_POSTGRES_URL`` is set.
The ADL conformance suite (tests/test_xapi_conformance.py) is the broad check; these name the rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fixtures.store import BACKENDS, closed_port_postgres_url, database_url
from trm_adapters.lrs import LrsSettings, lrs_router
from trm_modules.server import ServerRuntime, ServerSettings

XAPI = {"X-Experience-API-Version": "1.0.3"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


class Lrs:
    def __init__(self, client: TestClient, token: str, runtime: ServerRuntime) -> None:
        self.client = client
        self.runtime = runtime
        self.headers = {**XAPI, "Authorization": "Basic " + base64.b64encode(f"lms:{token}".encode()).decode()}

    def post(self, body, **headers):
        return self.client.post("/xapi/statements", json=body, headers={**self.headers, **headers})

    def get(self, path="/xapi/statements", **params):
        return self.client.get(path + ("?" + urlencode(params) if params else ""), headers=self.headers)


@pytest.fixture(scope="module", params=BACKENDS)
def lrs(request, tmp_path_factory):
    import trm_adapters.lrs as lrs_plugin

    root = tmp_path_factory.mktemp("lrs")
    with database_url(request.param, root) as url:
        runtime = ServerRuntime.start(
            ServerSettings(
                registry=root / "registry",
                db=url,
                cpu_threads=1,
                journal_path=root / "journal.jsonl",
                public_url="http://testserver",
                entry_point_plugins=False,
                extra_plugins=[lrs_plugin],
            )
        )  # it owns its tables
        token, _ = runtime.tokens.create(["feedback"], name="lms")
        app = FastAPI()
        app.state.runtime = runtime
        app.include_router(
            lrs_router(LrsSettings(cors_origins=("https://content.example",), authority_home="http://testserver"))
        )
        with TestClient(app) as client:
            yield Lrs(client, token, runtime)
        runtime.close()


def learner(name: str = "ada") -> dict:
    return {"objectType": "Agent", "mbox": f"mailto:{name}@example.com", "name": name.title()}


def statement(
    verb: str = "http://adlnet.gov/expapi/verbs/attempted",
    activity: str = "https://course.example/q/1",
    actor: dict | None = None,
    **extra,
) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": actor or learner(),
        "verb": {"id": verb, "display": {"en-US": "did"}},
        "object": {"objectType": "Activity", "id": activity, "definition": {"name": {"en-US": "Question 1"}}},
        **extra,
    }


# -------------------------------------------------------------------------------------- statements
def test_a_posted_statement_reads_back_with_the_stored_time_authority_and_version_the_lrs_sets(lrs):
    sent = statement()
    assert lrs.post(sent).json() == [sent["id"]]
    got = lrs.get(statementId=sent["id"])
    assert got.status_code == 200
    body = got.json()
    assert body["actor"] == sent["actor"] and body["version"] == "1.0.0"
    assert body["authority"]["account"]["homePage"] == "http://testserver"
    assert body["stored"].endswith("Z") and body["timestamp"] == body["stored"]
    assert got.headers["x-experience-api-consistent-through"] and got.headers["last-modified"]


INVALID = {
    "mbox without mailto": ({"actor": {"mbox": "ada@example.com"}}, "/actor/mbox"),
    "two identifiers": ({"actor": {"mbox": "mailto:a@b.c", "openid": "http://a.example"}}, "/actor/openid"),
    "no identifier": ({"actor": {"name": "Ada"}}, "/actor"),
    "null value": ({"result": {"success": None}}, "/result/success"),
    "bad duration": ({"result": {"duration": "P4W1D"}}, "/result/duration"),
    "bad registration": ({"context": {"registration": "not-a-uuid"}}, "/context/registration"),
    "-00:00 timestamp": ({"timestamp": "2026-01-01T00:00:00-00:00"}, "/timestamp"),
    "unknown property": ({"mood": "happy"}, "/mood"),
    "scaled score out of range": ({"result": {"score": {"scaled": 1.5}}}, "/result/score/scaled"),
    "language tag": ({"verb": {"id": "http://x.example/v", "display": {"not a tag": "x"}}}, "/verb/display/not a tag"),
    "voiding an activity": ({"verb": {"id": VOIDED}}, "/object"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_statement_is_refused_with_a_problem_document_pointing_at_the_fault(lrs, case):
    change, pointer = INVALID[case]
    sent = {**statement(), **change}
    response = lrs.post(sent)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["pointer"] == pointer and problem["detail"]
    assert lrs.get(statementId=sent["id"]).status_code == 404


def test_duplicate_ids_within_one_batch_are_a_bad_request_and_nothing_is_stored(lrs):
    first = statement()
    second = {**statement(), "id": first["id"]}
    assert lrs.post([first, second]).status_code == 400
    assert lrs.get(statementId=first["id"]).status_code == 404


def test_resending_a_statement_that_differs_only_where_the_spec_allows_is_accepted(lrs):
    sent = statement(timestamp="2026-01-01T12:00:00Z")
    assert lrs.post(sent).status_code == 200
    again = json.loads(json.dumps(sent))
    again["timestamp"] = "2026-01-01T13:00:00+01:00"
    again["verb"]["display"] = {"fr-FR": "a fait"}
    again["object"].pop("objectType")
    again["object"]["definition"] = {"name": {"de-DE": "Frage 1"}}
    again["actor"]["mbox"] = again["actor"]["mbox"].upper().replace("MAILTO:", "mailto:")
    assert lrs.post(again).status_code == 200


def test_the_same_id_with_other_content_is_a_conflict(lrs):
    sent = statement()
    lrs.post(sent)
    response = lrs.post({**sent, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}})
    assert response.status_code == 409


def test_a_voided_statement_is_found_only_by_voided_statement_id_and_its_voiding_statement_stays(lrs):
    target = statement()
    lrs.post(target)
    void = statement(verb=VOIDED, object={"objectType": "StatementRef", "id": target["id"]})
    lrs.post(void)
    assert lrs.get(statementId=target["id"]).status_code == 404
    assert lrs.get(voidedStatementId=target["id"]).json()["id"] == target["id"]
    listed = [s["id"] for s in lrs.get(limit=50).json()["statements"]]
    assert target["id"] not in listed and void["id"] in listed


def test_filters_select_by_agent_verb_activity_and_registration(lrs):
    registration = str(uuid.uuid4())
    mine = statement(
        actor=learner("grace"), activity="https://course.example/q/filter", context={"registration": registration}
    )
    other = statement(actor=learner("linus"), activity="https://course.example/q/filter")
    lrs.post([mine, other])
    by_agent = lrs.get(agent=json.dumps({"mbox": "mailto:grace@example.com"})).json()["statements"]
    assert [s["id"] for s in by_agent] == [mine["id"]]
    by_activity = lrs.get(activity="https://course.example/q/filter").json()["statements"]
    assert {s["id"] for s in by_activity} == {mine["id"], other["id"]}
    by_registration = lrs.get(registration=registration).json()["statements"]
    assert [s["id"] for s in by_registration] == [mine["id"]]


def test_related_activities_match_context_activities_too(lrs):
    parent = "https://course.example/unit/" + uuid.uuid4().hex
    child = statement(context={"contextActivities": {"parent": {"id": parent}}})
    lrs.post(child)
    assert lrs.get(activity=parent).json()["statements"] == []
    related = lrs.get(activity=parent, related_activities="true").json()["statements"]
    assert [s["id"] for s in related] == [child["id"]]
    assert isinstance(related[0]["context"]["contextActivities"]["parent"], list)


def test_more_links_page_through_every_matching_statement_once_in_stored_order(lrs):
    activity = "https://course.example/paged/" + uuid.uuid4().hex
    sent = [statement(activity=activity) for _ in range(7)]
    for item in sent:
        lrs.post(item)
    seen, page = [], lrs.get(activity=activity, limit=3, ascending="true").json()
    while True:
        seen += [s["id"] for s in page["statements"]]
        if not page["more"]:
            break
        page = lrs.client.get(page["more"], headers=lrs.headers).json()
    assert seen == [s["id"] for s in sent]


def test_unknown_query_parameters_are_refused(lrs):
    response = lrs.get(colour="blue")
    assert response.status_code == 400 and response.json()["errors"][0]["pointer"] == "?colour"


def multipart(statements, parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "b0undary"
    chunks = [f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(statements)}\r\n".encode()]
    for content_type, content in parts:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {hashlib.sha256(content).hexdigest()}\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


def test_attachments_sent_as_multipart_come_back_with_attachments_true(lrs):
    data = b"\x00\x01 an essay \xff"
    sent = statement(
        attachments=[
            {
                "usageType": "http://id.tincanapi.com/attachment/supporting_media",
                "display": {"en-US": "essay"},
                "contentType": "application/octet-stream",
                "length": len(data),
                "sha2": hashlib.sha256(data).hexdigest(),
            }
        ]
    )
    body, content_type = multipart(sent, [("application/octet-stream", data)])
    posted = lrs.client.post("/xapi/statements", content=body, headers={**lrs.headers, "Content-Type": content_type})
    assert posted.status_code == 200, posted.text
    got = lrs.get(statementId=sent["id"], attachments="true")
    assert got.headers["content-type"].startswith("multipart/mixed")
    assert data in got.content


def test_an_attachment_without_file_url_or_data_is_refused(lrs):
    sent = statement(
        attachments=[
            {
                "usageType": "http://x.example/u",
                "display": {"en-US": "x"},
                "contentType": "text/plain",
                "length": 3,
                "sha2": "ab" * 32,
            }
        ]
    )
    assert lrs.post(sent).status_code == 400


def test_a_signed_statement_with_a_non_rsa_algorithm_is_refused(lrs):
    sent = statement()
    encode = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")  # noqa: E731
    jws = f"{encode({'alg': 'HS256'})}.{encode(sent)}.c2ln".encode()
    signed = {
        **sent,
        "attachments": [
            {
                "usageType": "http://adlnet.gov/expapi/attachments/signature",
                "display": {"en-US": "signature"},
                "contentType": "application/octet-stream",
                "length": len(jws),
                "sha2": hashlib.sha256(jws).hexdigest(),
            }
        ],
    }
    body, content_type = multipart(signed, [("application/octet-stream", jws)])
    response = lrs.client.post("/xapi/statements", content=body, headers={**lrs.headers, "Content-Type": content_type})
    assert response.status_code == 400 and "RS256" in response.json()["detail"]


# ----------------------------------------------------------------------------------------- headers
def test_every_response_carries_the_version_header_errors_included(lrs):
    unauthenticated = lrs.client.get("/xapi/statements", headers=XAPI)
    no_version = lrs.client.get("/xapi/statements", headers={"Authorization": lrs.headers["Authorization"]})
    assert unauthenticated.status_code == 401 and no_version.status_code == 400
    for response in (unauthenticated, no_version, lrs.get(), lrs.client.get("/xapi/about")):
        assert response.headers["x-experience-api-version"] == "1.0.3"


def test_cors_preflight_admits_a_configured_content_origin_only(lrs):
    ask = {
        "Origin": "https://content.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-experience-api-version",
    }
    allowed = lrs.client.options("/xapi/statements", headers=ask)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://content.example"
    assert "X-Experience-API-Version" in allowed.headers["access-control-allow-headers"]
    other = lrs.client.options("/xapi/statements", headers={**ask, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_about_lists_versions_the_tincan_client_understands(lrs):
    from tincan import About

    about = lrs.client.get("/xapi/about").json()
    assert About(version=about["version"]).version[0] == "1.0.3"


# --------------------------------------------------------------------------------------- documents
def state_params(**extra) -> dict:
    return {
        "activityId": "https://course.example/q/1",
        "agent": json.dumps({"mbox": "mailto:ada@example.com"}),
        "stateId": "bookmark",
        **extra,
    }


def test_a_state_document_is_stored_merged_by_post_listed_and_deleted(lrs):
    params = state_params(registration=str(uuid.uuid4()))
    url = "/xapi/activities/state?" + urlencode(params)
    assert lrs.client.put(url, json={"page": 3}, headers=lrs.headers).status_code == 204
    assert lrs.client.post(url, json={"score": 7}, headers=lrs.headers).status_code == 204
    got = lrs.client.get(url, headers=lrs.headers)
    assert got.json() == {"page": 3, "score": 7}
    assert got.headers["etag"] == f'"{hashlib.sha1(got.content).hexdigest()}"'
    listing = {k: v for k, v in params.items() if k != "stateId"}
    assert lrs.get("/xapi/activities/state", **listing).json() == ["bookmark"]
    assert lrs.client.delete(url, headers=lrs.headers).status_code == 204
    assert lrs.client.get(url, headers=lrs.headers).status_code == 404


def test_a_profile_overwrite_needs_its_etag(lrs):
    url = "/xapi/activities/profile?" + urlencode(
        {"activityId": "https://course.example/q/1", "profileId": uuid.uuid4().hex}
    )
    assert lrs.client.put(url, json={"v": 1}, headers={**lrs.headers, "If-None-Match": "*"}).status_code == 204
    etag = lrs.client.get(url, headers=lrs.headers).headers["etag"]
    assert lrs.client.put(url, json={"v": 2}, headers=lrs.headers).status_code == 409
    assert lrs.client.put(url, json={"v": 2}, headers={**lrs.headers, "If-Match": '"stale"'}).status_code == 412
    assert lrs.client.put(url, json={"v": 2}, headers={**lrs.headers, "If-Match": etag}).status_code == 204
    assert lrs.client.get(url, headers=lrs.headers).json() == {"v": 2}


def test_the_alternate_request_syntax_writes_a_state_document_from_a_form(lrs):
    params = state_params(stateId="alt")
    form = {
        **params,
        "content": json.dumps({"via": "form"}),
        "Content-Type": "application/json",
        "Authorization": lrs.headers["Authorization"],
        "X-Experience-API-Version": "1.0.3",
    }
    response = lrs.client.post(
        "/xapi/activities/state?method=PUT",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 204, response.text
    got = lrs.client.get("/xapi/activities/state?" + urlencode(params), headers=lrs.headers)
    assert got.json() == {"via": "form"}


def test_the_activities_resource_merges_definitions_from_every_statement(lrs):
    activity = "https://course.example/merged/" + uuid.uuid4().hex
    first = statement(activity=activity)
    first["object"]["definition"] = {"name": {"en-US": "meeting"}}
    second = statement(activity=activity)
    second["object"]["definition"] = {"name": {"fr-FR": "réunion"}}
    lrs.post([first, second])
    definition = lrs.get("/xapi/activities", activityId=activity).json()["definition"]
    assert definition["name"] == {"en-US": "meeting", "fr-FR": "réunion"}


def test_the_migration_creates_exactly_the_lrs_tables(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from trm_adapters.lrs.tables import metadata
    from trm_modules.store import Store

    store = Store(str(tmp_path / "store.sqlite3"))
    store.ensure_schema()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda name, type_, _parent: type_ != "table" or name in metadata.tables}
        )
        assert compare_metadata(context, metadata) == []


# ---------------------------------------------------------------------------------------- xAPI 2.0
def test_a_2_0_statement_with_context_agents_and_groups_is_accepted_and_answered_as_2_0(lrs):
    sent = statement(
        context={
            "contextAgents": [
                {
                    "objectType": "contextAgent",
                    "agent": learner("mentor"),
                    "relevantTypes": ["https://roles.example/mentor"],
                }
            ],
            "contextGroups": [
                {"objectType": "contextGroup", "group": {"objectType": "Group", "mbox": "mailto:class-7@example.com"}}
            ],
        }
    )
    response = lrs.post(sent, **{"X-Experience-API-Version": "2.0.0"})
    assert response.status_code == 200 and response.headers["x-experience-api-version"] == "2.0.0"


def test_a_2_0_client_cannot_overwrite_a_state_document_blindly(lrs):
    url = "/xapi/activities/state?" + urlencode(state_params(stateId="blind"))
    v2 = {**lrs.headers, "X-Experience-API-Version": "2.0.0"}
    assert lrs.client.put(url, json={"a": 1}, headers=v2).status_code == 204
    assert lrs.client.put(url, json={"a": 2}, headers=v2).status_code == 409
    assert lrs.client.put(url, json={"a": 2}, headers=lrs.headers).status_code == 204  # 1.0.3 allows it


def test_an_activity_no_statement_defined_is_still_an_activity_object(lrs):
    assert lrs.get("/xapi/activities", activityId="https://course.example/never-seen").json() == {
        "objectType": "Activity",
        "id": "https://course.example/never-seen",
    }


def test_with_the_database_away_a_write_is_refused_with_503_and_retry_after():
    from sqlalchemy import create_engine

    from trm_adapters.lrs import LrsHttp
    from trm_adapters.lrs.documents import DocumentStore
    from trm_adapters.lrs.http import xapi_router
    from trm_adapters.lrs.statements import StatementStore

    engine = create_engine(closed_port_postgres_url())
    lrs = LrsHttp(
        StatementStore(engine),
        DocumentStore(engine),
        LrsSettings(),
        verify_token=lambda secret: ("t1", "token", ("feedback",)),
    )
    app = FastAPI()
    app.include_router(xapi_router(lambda request: lrs))
    with TestClient(app) as client:
        response = client.post("/xapi/statements", json=statement(), headers={**XAPI, "Authorization": "Bearer x"})
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.headers["x-experience-api-version"] == "1.0.3"
    assert response.json()["type"].endswith("store-unavailable")
