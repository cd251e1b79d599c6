"""Replicas that agree: two servers on one store apply each other's admin changes, and restarts keep them.

Each test runs two in-process servers over one registry folder and one store (SQLite always;
PostgreSQL with LISTEN/NOTIFY when ``TRM_TEST_POSTGRES_URL`` is set).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from fixtures.server import MODULE, Served, build_registry, puzzle
from fixtures.store import BACKENDS, database_url
from trm_modules.server import ServerRuntime, ServerSettings, create_app

#: The tests wait on the replica's revision event (``wait_for_revision``); this is only a bound so that a
#: lost change fails the test instead of hanging it, not a latency promise (on a loaded machine a second is
#: not one; how fast changes propagate is measured, not asserted).
PROPAGATION_S = 30.0


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@contextlib.contextmanager
def replica(root: Path, store_url: str, name: str) -> Iterator[Served]:
    runtime = ServerRuntime.start(
        ServerSettings(
            registry=root / "registry",
            db=store_url,
            replica_name=name,
            journal_path=root / f"journal-{name}.jsonl",
            cpu_threads=1,
            public_url=f"http://{name}",
            allow_unsigned=True,
        )
    )
    tokens = {scope: runtime.tokens.create([scope], name=f"{scope}-{name}")[0] for scope in ("solve", "admin")}
    with TestClient(create_app(runtime)) as client:
        yield Served(runtime, client, tokens)


@pytest.fixture
def two(tmp_path, store_url) -> Iterator[tuple[Served, Served]]:
    build_registry(tmp_path, {"1.0.0": 0, "1.1.0": 1, "2.0.0": 2})
    with replica(tmp_path, store_url, "a") as a, replica(tmp_path, store_url, "b") as b:
        yield a, b


def state_of(server: Served) -> dict:
    return {s.name: s for s in server.runtime.host.modules()}[MODULE]


def solve_version(server: Served, course: str | None = None) -> str:
    body = {"input": puzzle(), **({"context": {"course": course}} if course else {})}
    response = server.client.post(f"/v1/modules/{MODULE}/solve", json=body, headers=server.auth("solve"))
    assert response.status_code == 200, response.text
    return response.json()["version"]


def test_a_pin_sent_to_one_replica_is_applied_by_the_other(two):
    a, b = two
    response = a.client.put(
        f"/v1/admin/modules/{MODULE}/pins/algebra-1", json={"version": "1.0.0"}, headers=a.auth("admin")
    )
    assert response.status_code == 200 and response.json()["revision"] == 1, response.text
    assert b.runtime.routing.wait_for_revision(MODULE, 1, timeout=PROPAGATION_S)
    assert dict(state_of(b).pins) == {"algebra-1": "1.0.0"}
    assert solve_version(b, "algebra-1") == "1.0.0" and solve_version(b) == "2.0.0"


def test_activate_canary_and_rollback_on_one_replica_are_served_by_the_other(two):
    a, b = two
    a.client.post(f"/v1/admin/modules/{MODULE}/activate", json={"version": "1.1.0"}, headers=a.auth("admin"))
    revision = a.client.put(
        f"/v1/admin/modules/{MODULE}/canary", json={"version": "2.0.0", "share": 0.25}, headers=a.auth("admin")
    ).json()["revision"]
    assert b.runtime.routing.wait_for_revision(MODULE, revision, timeout=PROPAGATION_S)
    assert (state_of(b).active, state_of(b).canary, state_of(b).canary_share) == ("1.1.0", "2.0.0", 0.25)
    revision = b.client.post(f"/v1/admin/modules/{MODULE}/rollback", headers=b.auth("admin")).json()["revision"]
    assert a.runtime.routing.wait_for_revision(MODULE, revision, timeout=PROPAGATION_S)
    assert state_of(a).active == "2.0.0" == state_of(b).active  # back to what served before the activate


def test_a_restarted_replica_serves_the_routing_it_left(tmp_path, store_url):
    build_registry(tmp_path, {"1.0.0": 0, "2.0.0": 2})
    with replica(tmp_path, store_url, "a") as a:
        a.client.post(f"/v1/admin/modules/{MODULE}/activate", json={"version": "1.0.0"}, headers=a.auth("admin"))
        a.client.put(f"/v1/admin/modules/{MODULE}/pins/geometry", json={"version": "2.0.0"}, headers=a.auth("admin"))
    with replica(tmp_path, store_url, "a") as again:
        assert (state_of(again).active, dict(state_of(again).pins)) == ("1.0.0", {"geometry": "2.0.0"})
        assert again.runtime.routing.revision(MODULE) == 2


def test_a_write_naming_a_stale_revision_is_refused_and_changes_nothing(two):
    a, b = two
    a.client.put(f"/v1/admin/modules/{MODULE}/pins/algebra-1", json={"version": "1.0.0"}, headers=a.auth("admin"))
    stale = b.client.put(
        f"/v1/admin/modules/{MODULE}/pins/algebra-1",
        json={"version": "1.1.0"},
        headers={**b.auth("admin"), "If-Match": '"0"'},
    )
    assert stale.status_code == 412 and stale.headers["ETag"] == '"1"'
    assert stale.json()["type"].endswith("stale-revision")
    assert dict(state_of(b).pins) in ({}, {"algebra-1": "1.0.0"})  # b's host was not changed by the refused write
    fresh = b.client.put(
        f"/v1/admin/modules/{MODULE}/pins/algebra-1",
        json={"version": "1.1.0"},
        headers={**b.auth("admin"), "If-Match": '"1"'},
    )
    assert fresh.status_code == 200 and fresh.json()["revision"] == 2 and fresh.headers["ETag"] == '"2"'


def test_concurrent_writes_to_two_replicas_are_both_applied_in_revision_order(two):
    a, b = two
    barrier = threading.Barrier(2)
    responses = {}

    def pin(server: Served, course: str, version: str) -> None:
        barrier.wait()
        responses[course] = server.client.put(
            f"/v1/admin/modules/{MODULE}/pins/{course}", json={"version": version}, headers=server.auth("admin")
        )

    threads = [
        threading.Thread(target=pin, args=(a, "algebra-1", "1.0.0")),
        threading.Thread(target=pin, args=(b, "geometry", "1.1.0")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.json()["revision"] for r in responses.values()) == [1, 2]
    for server in (a, b):
        assert server.runtime.routing.wait_for_revision(MODULE, 2, timeout=PROPAGATION_S)
        assert dict(state_of(server).pins) == {"algebra-1": "1.0.0", "geometry": "1.1.0"}


def test_a_version_that_cannot_be_loaded_is_refused_and_not_stored(two):
    a, b = two
    response = a.client.post(f"/v1/admin/modules/{MODULE}/activate", json={"version": "9.9.9"}, headers=a.auth("admin"))
    assert response.status_code == 404
    assert a.runtime.routing.table.get(MODULE) is None and state_of(b).active == "2.0.0"


def test_rolling_back_with_no_history_is_a_conflict(two):
    a, _ = two
    response = a.client.post(f"/v1/admin/modules/{MODULE}/rollback", headers=a.auth("admin"))
    assert response.status_code == 409 and response.json()["type"].endswith("routing-conflict")
