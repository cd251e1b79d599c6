"""Three ``trm serve`` processes on one PostgreSQL behind nginx, under load, one of them killed and restarted.

What it shows (the counts are printed; ``pytest -s`` to see them):
- an admin pin sent to one replica is applied by all three within 1 s of being stored;
- a replica ``kill -9``ed under load costs the load balancer at most the requests that were in flight
  when it died (nginx sends every later request to the two others), and no acknowledged event:
  every solve answered 200 and every feedback answered 202 is in the store;
- the restarted replica comes back serving the pin.

Needs nginx (Debian package; ``.ci/run`` installs it) and ``TRM_TEST_POSTGRES_URL``; skips outside CI
when either is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from fixtures.server import MODULE, build_registry, puzzle
from fixtures.store import database_url

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
CLIENTS = 6
PROPAGATION_S = 1.0

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"),
    pytest.mark.skipif(not os.environ.get("TRM_TEST_POSTGRES_URL"), reason="TRM_TEST_POSTGRES_URL is not set"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/client-body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream trm {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://trm;
      # A refused connection (a dead replica) is retried on the next one, POSTs included: nothing was sent.
      proxy_next_upstream error timeout;
      proxy_connect_timeout 1s;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


class Replica:
    """One ``trm serve`` child process on its own port."""

    def __init__(self, tmp: Path, name: str, store_url: str) -> None:
        self.name, self.port, self.tmp, self.store_url = name, free_port(), tmp, store_url
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.tmp / f"{self.name}.log", "ab")
        env = {**os.environ, "TRM_DB_URL": self.store_url, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trm_modules.cli",
                "serve",
                "--port",
                str(self.port),
                "--registry",
                str(self.tmp / "registry"),
                "--cpu-threads",
                "1",
                "--views",
                "1",
                "--no-bootstrap-token",
                "--allow-unsigned",
            ],  # the test packages are unsigned
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tmp,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.tmp / f"{self.name}.log").read_text()[-3000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} did not answer within {timeout} s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def postgres_url(tmp_path):
    with database_url("postgresql", tmp_path) as url:
        yield url


def test_three_replicas_behind_nginx_agree_and_survive_a_kill(tmp_path, postgres_url):
    from trm_modules.server.tokens import TokenStore
    from trm_modules.store import Store

    build_registry(tmp_path, {"1.0.0": 0, "2.0.0": 2})
    store = Store(postgres_url)
    token, _ = TokenStore(store).create(["solve", "feedback", "admin"], name="multi-replica test")
    store.close()
    auth = {"Authorization": f"Bearer {token}"}

    replicas = [Replica(tmp_path, name, postgres_url) for name in ("r1", "r2", "r3")]
    lb_port = free_port()
    servers = "\n".join(f"    server 127.0.0.1:{r.port} max_fails=1 fail_timeout=1s;" for r in replicas)
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp_path, servers=servers, port=lb_port))
    nginx = None
    stop = threading.Event()  # ends the load clients, also when an assertion fails
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready()
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "nginx-error.log")],
            stderr=subprocess.STDOUT,
            stdout=open(tmp_path / "nginx.out", "wb"),
        )
        lb = f"http://127.0.0.1:{lb_port}"
        _wait_for(lambda: httpx.get(lb + "/healthz", timeout=1.0).status_code == 200, 10, "nginx")

        acked_solves: list[str] = []
        acked_feedback: list[str] = []
        failures: list[str] = []
        in_flight = [0]
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=lb, headers=auth, timeout=60.0) as http:
                while not stop.is_set():
                    solve_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
                    with lock:
                        in_flight[0] += 1
                    try:
                        response = http.post(
                            f"/v1/modules/{MODULE}/solve", json={"input": puzzle(), "client_id": solve_id}
                        )
                        if response.status_code != 200:
                            failures.append(f"solve {response.status_code}")
                            continue
                        acked_solves.append(solve_id)
                        response = http.post(
                            "/v1/feedback", json={"id": event_id, "solve_id": solve_id, "kind": "correct"}
                        )
                        if response.status_code != 202:
                            failures.append(f"feedback {response.status_code}: {response.text[:200]}")
                            continue
                        acked_feedback.append(event_id)
                    except httpx.TransportError as exc:
                        failures.append(f"transport {exc!r}")
                    finally:
                        with lock:
                            in_flight[0] -= 1

        pool = ThreadPoolExecutor(CLIENTS)
        clients = [pool.submit(client) for _ in range(CLIENTS)]
        _wait_for_more(acked_feedback, 2 * CLIENTS, 60, "load to start")

        # 1. Admin pins sent to one replica (which loads and self-tests the version before storing the pin) are
        #    applied by all three within a second of being stored: each replica's /healthz says when it stored
        #    and applied each routing revision (one machine, one clock). The first pin also loads and
        #    self-tests 1.0.0 on every replica, behind the batch its device is computing; the second is routing alone.
        delays = {}
        for course in ("algebra-1", "geometry"):
            pinned = httpx.put(
                f"{replicas[0].url}/v1/admin/modules/{MODULE}/pins/{course}",
                json={"version": "1.0.0"},
                headers=auth,
                timeout=30,
            )
            assert pinned.status_code == 200, pinned.text
            delays[course] = [_propagation_seconds(r.url, pinned.json()["revision"]) for r in replicas]
        print(
            f"\npin applied on the 3 replicas, seconds after it was stored: with loading 1.0.0: "
            f"{', '.join(f'{d:.3f}' for d in delays['algebra-1'])}; routing alone: "
            f"{', '.join(f'{d:.3f}' for d in delays['geometry'])}"
        )
        assert max(delays["geometry"]) <= PROPAGATION_S
        assert all(_pinned_version(r.url, auth) == "1.0.0" for r in replicas)

        # 2. kill -9 one replica under load, then restart it.
        before_kill = len(failures)
        with lock:
            in_flight_at_kill = in_flight[0]
        replicas[1].kill()
        _wait_for_more(acked_feedback, CLIENTS, 30, "load to go on past the killed replica")
        replicas[1].start()
        replicas[1].wait_ready()
        assert _pinned_version(replicas[1].url, auth) == "1.0.0"  # restarted with the stored routing
        _wait_for_more(acked_feedback, CLIENTS, 30, "load to go on after the restart")
        stop.set()
        for future in clients:
            future.result()
        pool.shutdown()

        failed_at_kill = len(failures) - before_kill
        print(
            f"{len(acked_solves)} solves and {len(acked_feedback)} feedback events acknowledged through nginx; "
            f"{len(failures)} failed ({failed_at_kill} around the kill, {in_flight_at_kill} requests in flight "
            f"then): {failures[:5]}"
        )
        assert len(failures) == failed_at_kill <= in_flight_at_kill

        # 3. Every acknowledged event is in the store.
        engine = create_engine(postgres_url)
        with engine.connect() as connection:
            stored_solves = {row[0] for row in connection.execute(text("SELECT id FROM solves"))}
            stored_feedback = {row[0] for row in connection.execute(text("SELECT id FROM feedback"))}
        engine.dispose()
        lost = (set(acked_solves) - stored_solves) | (set(acked_feedback) - stored_feedback)
        print(f"acknowledged events missing from the store: {len(lost)}")
        assert not lost
    finally:
        stop.set()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for r in replicas:
            r.stop()


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_more(acked: list[str], count: int, timeout: float, what: str) -> None:
    """Wait until ``count`` more events than now are acknowledged."""
    start = len(acked)
    _wait_for(lambda: len(acked) >= start + count, timeout, what)


def _propagation_seconds(url: str, revision: int, timeout: float = 30.0) -> float:
    """Seconds between the storing of ``revision`` of the module's routing and its application at ``url``."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < deadline:
            routing = http.get(f"{url}/healthz").json()["routing"].get(MODULE)
            if routing is not None and routing["revision"] >= revision:
                assert routing["revision"] == revision
                return (
                    datetime.fromisoformat(routing["applied_at"]) - datetime.fromisoformat(routing["stored_at"])
                ).total_seconds()
            time.sleep(0.02)
    raise AssertionError(f"{url} did not apply routing revision {revision} within {timeout} s")


def _pinned_version(url: str, auth: dict[str, str]) -> str:
    """The version the replica at ``url`` answers course algebra-1 with."""
    response = httpx.post(
        f"{url}/v1/modules/{MODULE}/solve",
        json={"input": puzzle(), "context": {"course": "algebra-1"}},
        headers=auth,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()["version"]
