"""Browser tests' tools: Chromium from the distribution, node, and npm packages installed once into a cache.

The SCORM and cmi5 tests drive headless Chromium with playwright-core (``executablePath`` = the
distribution's Chromium: Playwright's own browser download needs a network this project does not
assume). Outside CI they skip where Chromium, node or npm is missing; under CI (``CI`` set) they
fail instead, since ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE, NPM = shutil.which("node"), shutil.which("npm")
FIXTURES = Path(__file__).parent / "fixtures"
#: npm packages the drivers use, pinned; one install for every browser test.
NPM_TOOLS = ("scorm-again@3.4.3", "playwright-core@1.65.1", "@xapi/cmi5@1.4.0")
#: Chromium's flags here: headless, no sandbox (root in CI), and nothing that reaches for a network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip (or, under CI, fail) when Chromium, node or npm is missing."""
    missing = [name for name, path in (("chromium", CHROMIUM), ("node", NODE), ("npm", NPM)) if not path]
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install chromium nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI: {message}")
        pytest.skip(message)


def npm_tools() -> Path:
    """``node_modules`` holding NPM_TOOLS, npm-installed once into the user cache."""
    from trm_adapters.scorm.vendor import default_npm_cache

    prefix = default_npm_cache() / "test-tools"
    modules = prefix / "node_modules"
    stamp = prefix / "installed.json"
    if not stamp.is_file() or json.loads(stamp.read_text()) != list(NPM_TOOLS):
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "package.json").write_text('{"private": true}\n')
        subprocess.run([NPM, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
                        *NPM_TOOLS], check=True, capture_output=True, timeout=600)
        stamp.write_text(json.dumps(list(NPM_TOOLS)))
    return modules


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free loopback port; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_driver(script: Path, env: dict[str, str], timeout: int = 300) -> dict:
    """Run a node driver (tests/fixtures/*.cjs) with playwright-core and Chromium; its last stdout line is JSON."""
    modules = npm_tools()
    full_env = {**os.environ, **env, "NODE_PATH": str(modules), "CHROMIUM": CHROMIUM,
                "CHROMIUM_ARGS": json.dumps(CHROMIUM_ARGS)}
    run = subprocess.run([NODE, str(script)], capture_output=True, text=True, env=full_env, timeout=timeout)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])
