"""End to end: `trm serve` as a subprocess on a free port, driven by a real HTTP client (httpx)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from fixtures.server import MODULE, build_registry, puzzle
from trm_modules.cli import app as cli_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_token(db: str, *scopes: str) -> str:
    """`trm token create` through the CLI; the token is the last line of its output."""
    args = ["token", "create", "--db", db, "--name", "e2e"] + [a for s in scopes for a in ("--scope", s)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def trm_serve(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    registry = build_registry(root, {"1.0.0": 0, "1.1.0": 1})
    db = str(root / "store.sqlite3")
    tokens = {scope: create_token(db, scope) for scope in ("solve", "feedback", "admin")}
    port = free_port()
    env = {**os.environ, "TRM_HOME": str(root / "home"), "OMP_NUM_THREADS": "1", "XDG_DATA_HOME": str(root / "data")}
    env.pop("TRM_XAPI_LRS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trm_modules.cli",
            "serve",
            "--port",
            str(port),
            "--registry",
            str(registry.root),
            "--db",
            db,
            "--cpu-threads",
            "1",
            "--no-bootstrap-token",
            "--allow-unsigned",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    yield url, tokens, lines
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_trm_serve_prints_the_url_of_its_docs_page(trm_serve):
    url, _, lines = trm_serve
    assert any(f"{url}/docs" in line for line in lines), lines
    assert httpx.get(f"{url}/docs").status_code == 200


def test_solve_then_feedback_over_http(trm_serve):
    url, tokens, _ = trm_serve
    with httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post(
            f"/v1/modules/{MODULE}/solve",
            json={"input": puzzle(), "context": {"course": "c"}},
            headers=bearer(tokens["solve"]),
        )
        assert answer.status_code == 200 and answer.json()["version"] == "1.1.0"
        given = client.post(
            "/v1/feedback",
            json={"id": "e2e-fb", "solve_id": answer.json()["solve_id"], "kind": "correct"},
            headers=bearer(tokens["feedback"]),
        )
        assert given.status_code == 202


def test_swapping_versions_while_a_client_keeps_solving_fails_no_request(trm_serve):
    url, tokens, _ = trm_serve
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def keep_solving() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    f"/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=bearer(tokens["solve"])
                )
                if response.status_code == 200:
                    versions.append(response.json()["version"])
                else:
                    failures.append(f"{response.status_code} {response.text}")

    worker = threading.Thread(target=keep_solving)
    worker.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as admin:
            for version in ("1.0.0", "1.1.0", "1.0.0"):
                time.sleep(0.2)
                swapped = admin.post(
                    f"/v1/admin/modules/{MODULE}/activate", json={"version": version}, headers=bearer(tokens["admin"])
                )
                assert swapped.status_code == 200 and swapped.json()["active"] == version
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join(30)
    assert failures == []
    assert {"1.0.0", "1.1.0"} <= set(versions)
    after = httpx.post(
        f"{url}/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=bearer(tokens["solve"]), timeout=30
    )
    assert after.json()["version"] == "1.0.0"


def test_token_scopes_are_enforced_over_http(trm_serve):
    url, tokens, _ = trm_serve
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v1/modules").status_code == 401
        for scope in ("solve", "feedback"):
            refused = client.post(f"/v1/admin/modules/{MODULE}/rollback", headers=bearer(tokens[scope]))
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert (
            client.post(
                f"/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=bearer(tokens["feedback"])
            ).status_code
            == 403
        )
