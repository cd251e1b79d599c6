"""Shared fixtures of the fault tests (no tests here): `trm serve` as a real process that can be
killed with SIGKILL and started again on the same store, and a TCP proxy that cuts a database off."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`trm serve` over ``registry`` and ``db`` in a subprocess; ``start`` again after ``kill9`` reuses both
    (and the journal, which lives in ``data_dir``)."""

    def __init__(self, registry: Path, db: str, data_dir: Path, *extra_args: str) -> None:
        self.registry, self.db, self.data_dir, self.extra_args = registry, db, data_dir, extra_args
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.url = ""

    def start(self) -> "ServeProcess":
        """Start the server and return once /healthz answers (the wait is on that event, bounded)."""
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_DATA_HOME": str(self.data_dir),
               "TRM_HOME": str(self.data_dir / "home"), "TRM_JOURNAL_PATH": str(self.journal_path())}
        env.pop("TRM_XAPI_LRS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trm_modules.cli", "serve", "--port", str(port), "--registry", str(self.registry),
             "--db", self.db, "--cpu-threads", "1", "--no-bootstrap-token", "--allow-unsigned", "--views", "1", *self.extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        process = self.process
        threading.Thread(target=lambda: self.output.extend(process.stdout), daemon=True).start()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("trm serve did not come up:\n" + "".join(self.output[-40:]))
            time.sleep(0.05)

    def journal_path(self) -> Path:
        """The journal this server uses (``TRM_JOURNAL_PATH``), kept across restarts."""
        return self.data_dir / "journal.jsonl"

    def kill9(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGINT (a graceful shutdown), SIGKILL if it takes longer than 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; ``cut`` drops every connection and refuses new ones,
    ``restore`` accepts again on the same port. Lets a test take a real database away from a server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._connections += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass
