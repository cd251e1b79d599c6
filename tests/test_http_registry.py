"""A registry over HTTP: trm serve's read-only /registry, read by HttpRegistry (digests, resume, cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.server import MODULE, served
from trm_modules.package import DigestMismatch, RegistryError
from trm_modules.package.http_registry import HttpRegistry


@pytest.fixture
def server(tmp_path):
    with served(tmp_path / "server", {"1.0.0": 0, "2.0.0": 2}, allow_unsigned=True) as running:
        yield running


@pytest.fixture
def requests(server) -> list[tuple[str, dict, int]]:
    """Every request the registry client sends: (path, headers, status)."""
    seen: list[tuple[str, dict, int]] = []
    server.client.event_hooks["response"] = [
        lambda response: seen.append((response.request.url.path, dict(response.request.headers), response.status_code))
    ]
    return seen


def remote(server, tmp_path: Path) -> HttpRegistry:
    return HttpRegistry(
        "http://testserver/registry", tmp_path / "cache", headers=server.auth("solve"), client=server.client
    )


def test_a_package_opened_over_http_is_the_published_one(server, tmp_path):
    local = server.runtime.registry.resolve(MODULE, "^1")
    package = remote(server, tmp_path).open(MODULE, "^1")
    assert (package.version, package.digest) == ("1.0.0", local.digest)
    assert remote(server, tmp_path).list_versions(MODULE) == ["1.0.0", "2.0.0"]


def test_a_downloaded_package_is_cached_by_digest(server, tmp_path, requests):
    registry = remote(server, tmp_path)
    registry.open(MODULE, "2.0.0")
    downloads = [path for path, _, _ in requests if path.endswith(".trm")]
    registry.open(MODULE, "2.0.0")
    assert len(downloads) == 1 and [p for p, _, _ in requests if p.endswith(".trm")] == downloads


def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path, requests):
    registry = remote(server, tmp_path)
    entry = registry.resolve(MODULE, "2.0.0")
    data = server.runtime.registry.path_of(entry).read_bytes()
    part = tmp_path / "cache" / f"{entry.digest.removeprefix('sha256:')}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 3])  # what a dropped connection left
    assert registry.download(entry).read_bytes() == data
    ((_, headers, status),) = [r for r in requests if r[0].endswith(".trm")]
    assert headers["range"] == f"bytes={len(data) // 3}-" and status == 206


def test_a_file_whose_bytes_differ_from_the_index_is_refused_and_not_cached(server, tmp_path):
    entry = server.runtime.registry.resolve(MODULE, "1.0.0")
    path = server.runtime.registry.path_of(entry)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="the registry index records"):
        remote(server, tmp_path).open(MODULE, "1.0.0")
    assert not list((tmp_path / "cache").glob("*.trm")) and not list((tmp_path / "cache").glob("*.part"))


def test_an_index_naming_a_file_outside_the_registry_is_refused(server, tmp_path):
    index_path = server.runtime.registry.index_path
    index = json.loads(index_path.read_text())
    index["modules"][MODULE]["versions"]["1.0.0"]["file"] = "../store.sqlite3"
    index_path.write_text(json.dumps(index))
    with pytest.raises(RegistryError, match="unsafe file"):
        remote(server, tmp_path).open(MODULE, "1.0.0")


@pytest.mark.parametrize(
    "path", ["../store.sqlite3", ".lock", "packages/%2e%2e/%2e%2e/store.sqlite3", "packages/x.json"]
)
def test_the_server_serves_only_the_index_and_package_files(server, path):
    response = server.client.get(f"/registry/{path}", headers=server.auth("solve"))
    assert response.status_code == 404


def test_the_served_registry_needs_a_token(server):
    assert server.client.get("/registry/index.json").status_code == 401


def test_an_http_registry_is_read_only(server, tmp_path):
    with pytest.raises(RegistryError, match="read over HTTP"):
        remote(server, tmp_path).yank(MODULE, "1.0.0")


@pytest.fixture
def listening(server):
    """``server``'s app on a real port (uvicorn in a thread); yields its base URL."""
    import threading

    import uvicorn

    from trm_modules.server import create_app

    config = uvicorn.Config(
        create_app(server.runtime, close_runtime_on_shutdown=False),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
    )
    http_server = uvicorn.Server(config)
    thread = threading.Thread(target=http_server.run, daemon=True)
    thread.start()
    while not http_server.started:  # uvicorn sets it once the socket listens
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        thread.join(0.01)
    port = http_server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    http_server.should_exit = True
    thread.join(timeout=10)


def test_a_replica_serves_modules_from_another_servers_registry_over_http(server, listening, tmp_path):
    from fastapi.testclient import TestClient

    from fixtures.server import puzzle
    from trm_modules.server import ServerRuntime, ServerSettings, create_app

    token = server.tokens["solve"]
    replica = ServerRuntime.start(
        ServerSettings(
            registry_url=f"{listening}/registry",
            registry_token=token,
            db=str(tmp_path / "replica.sqlite3"),
            home=tmp_path / "home",
            journal_path=tmp_path / "journal.jsonl",
            cpu_threads=1,
            allow_unsigned=True,
        )
    )
    replica_token = replica.tokens.create(["solve"], name="solve")[0]
    with TestClient(create_app(replica)) as client:
        response = client.post(
            f"/v1/modules/{MODULE}/solve",
            json={"input": puzzle()},
            headers={"Authorization": f"Bearer {replica_token}"},
        )
    assert response.status_code == 200 and response.json()["version"] == "2.0.0"
    assert len(list((tmp_path / "home" / "cache" / "registry").glob("*.trm"))) == 1  # downloaded, verified, cached
