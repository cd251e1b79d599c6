"""Database outages degrade, never 500: a server on a PostgreSQL it reaches through a TCP proxy that
the test cuts and restores. Acknowledged events are journaled and replayed; requests that need the
database answer 503 with Retry-After and a problem document; tokens seen before keep working."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from fixtures.faults import TcpProxy
from fixtures.server import MODULE, build_registry, puzzle
from fixtures.store import database_url
from trm_modules.server import ServerRuntime, ServerSettings, TokenStore, create_app
from trm_modules.store import Store
from trm_modules.store.models import Feedback, Solve

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage(tmp_path):
    """(runtime, client, proxy, tokens): a server whose store is a PostgreSQL behind ``proxy``."""
    with database_url("postgresql", tmp_path) as direct_url:
        Store(direct_url).ensure_schema()
        tokens = {
            scope: TokenStore(Store(direct_url)).create([scope], name=scope)[0]
            for scope in ("solve", "feedback", "admin")
        }
        parsed = make_url(direct_url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxied = parsed.set(host="127.0.0.1", port=proxy.port).update_query_dict({"connect_timeout": "2"})
        proxy.cut()  # the database is away when the server starts
        registry = build_registry(tmp_path, {"1.0.0": 0})
        runtime = ServerRuntime.start(
            ServerSettings(
                registry=registry.root,
                db=proxied.render_as_string(hide_password=False),
                cpu_threads=1,
                views=1,
                allow_unsigned=True,
                journal_path=tmp_path / "journal.jsonl",
                public_url="http://testserver",
                recorder_options={"min_retry_delay_s": 0.0},
            )
        )
        try:
            with TestClient(create_app(runtime)) as client:
                yield runtime, client, proxy, tokens, direct_url
        finally:
            proxy.close()


def auth(tokens, scope):
    return {"Authorization": f"Bearer {tokens[scope]}"}


def assert_503_problem(response):
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0 and response.json()["status"] == 503


def test_a_server_started_with_the_database_down_answers_503_for_tokens_it_cannot_check(outage):
    runtime, client, proxy, tokens, _ = outage
    assert client.get("/healthz").json()["store"]["database"] == "down"
    assert_503_problem(client.get("/v1/modules", headers=auth(tokens, "solve")))


def test_healthz_sees_the_database_return_without_any_traffic(outage):
    runtime, client, proxy, tokens, _ = outage
    assert client.get("/healthz").json()["status"] == "degraded"
    proxy.restore()
    assert runtime.recorder.probe_database()  # what the writer does at its back-off pace when idle
    assert client.get("/healthz").json()["status"] == "ok"


def test_while_the_database_is_cut_off_solves_journal_and_are_replayed_when_it_returns(outage):
    runtime, client, proxy, tokens, direct_url = outage
    proxy.restore()
    assert client.get("/v1/modules", headers=auth(tokens, "solve")).status_code == 200  # token seen once
    assert client.get("/v1/modules", headers=auth(tokens, "feedback")).status_code == 200
    first = client.post(f"/v1/modules/{MODULE}/solve", json={"input": puzzle(1)}, headers=auth(tokens, "solve"))
    assert first.status_code == 200

    proxy.cut()
    runtime.tokens.cache_s = 0.0  # every cached answer has expired
    answered = client.post(
        f"/v1/modules/{MODULE}/solve",
        json={"input": puzzle(2), "client_id": "during-outage"},
        headers=auth(tokens, "solve"),
    )
    assert answered.status_code == 200, answered.text  # acknowledged from the fsync'd journal
    given = client.post(
        "/v1/feedback",
        json={"id": "fb-outage", "solve_id": "during-outage", "kind": "correct"},
        headers=auth(tokens, "feedback"),
    )
    assert given.status_code == 202, given.text  # a solve this server answered: no database needed
    assert_503_problem(
        client.post(
            "/v1/feedback",
            json={"solve_id": "unknown-to-this-server", "kind": "correct"},
            headers=auth(tokens, "feedback"),
        )
    )
    assert_503_problem(client.get(f"/v1/solves/{first.json()['solve_id']}", headers=auth(tokens, "solve")))
    health = client.get("/healthz").json()
    assert (health["status"], health["store"]["database"], health["store"]["journal"]) == (
        "degraded",
        "down",
        "holds events",
    )

    proxy.restore()
    assert runtime.recorder.replay_journal() >= 2
    with Store(direct_url).session() as session:
        assert session.get(Solve, "during-outage") is not None and session.get(Feedback, "fb-outage") is not None


def test_requests_that_need_the_database_never_answer_500_while_it_is_cut_off(outage):
    runtime, client, proxy, tokens, _ = outage
    proxy.restore()
    assert client.get("/v1/modules", headers=auth(tokens, "admin")).status_code == 200
    proxy.cut()
    runtime.tokens.cache_s = 0.0
    from fixtures.packages import build_tiny_package

    package = build_tiny_package(runtime.registry.root.parent / "up.trm", name=MODULE, version="2.0.0", seed=3)
    response = client.post("/v1/admin/packages", content=package.read_bytes(), headers=auth(tokens, "admin"))
    assert response.status_code in (201, 503), response.text
