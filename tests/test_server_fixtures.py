"""Shared fixtures of the server, xAPI and SCORM tests (no tests here): a registry of tiny Sudoku
packages, a server runtime over it with a temporary store, and tokens of each scope."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fastapi.testclient import TestClient

from test_package_kit import build_tiny_package, example_inputs
from trm_modules.package import DirectoryRegistry
from trm_modules.server import ServerRuntime, ServerSettings, create_app

MODULE = "sudoku-4x4"


def build_registry(root: Path, versions: dict[str, int]) -> DirectoryRegistry:
    """A registry with one tiny package of ``MODULE`` per version (version → model seed)."""
    registry = DirectoryRegistry(root / "registry", create=True)
    for version, seed in versions.items():
        path = build_tiny_package(root / f"{MODULE}-{version}.trm", name=MODULE, version=version, seed=seed)
        registry.publish(path)
    return registry


def puzzle(seed: int = 5) -> dict:
    """A valid 4x4 Sudoku input."""
    return example_inputs(1, seed=seed)[0]


@dataclass
class Served:
    """A running app with a client and one token per scope."""

    runtime: ServerRuntime
    client: TestClient
    tokens: dict[str, str]

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


@contextlib.contextmanager
def served(root: Path, versions: dict[str, int] | None = None, **settings: object) -> Iterator[Served]:
    """An in-process server over a fresh registry and store under ``root``."""
    registry = build_registry(root, versions if versions is not None else {"1.0.0": 0})
    runtime = ServerRuntime.start(ServerSettings(registry=registry.root, db=str(root / "store.sqlite3"),
                                                 journal_path=root / "journal.jsonl", cpu_threads=1,
                                                 public_url="http://testserver",
                                                 **{"allow_unsigned": True, **settings}))
    tokens = {scope: runtime.tokens.create([scope], name=scope)[0] for scope in ("solve", "feedback", "admin")}
    with TestClient(create_app(runtime)) as client:
        yield Served(runtime, client, tokens)


@contextlib.contextmanager
def on_a_socket(runtime: ServerRuntime) -> Iterator[str]:
    """``runtime``'s app behind a real socket, for clients that speak HTTP rather than ASGI; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, close_runtime_on_shutdown=False), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
