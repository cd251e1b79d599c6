"""Run the ADL LRS Conformance Test Suite against a real ``trm serve`` process and report what failed.

    python tests/lrs_conformance.py                   # xAPI 1.0.3; prints counts and every failing test
    python tests/lrs_conformance.py --xapi 1.0.3 --suite /path/to/installed/suite

The suite (Node) comes from ``$TRM_LRS_SUITE`` (a copy with ``node_modules`` installed, as ``.ci/run``
prepares it), else it is copied from the read-only ``/work/shared/conformance/`` original into the
user cache and ``npm install``-ed once. ``tests/test_xapi_conformance.py`` runs this in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SUITE_ENV = "TRM_LRS_SUITE"
SHARED_SUITE = Path("/work/shared/conformance/lrs-conformance-test-suite")


@dataclass
class SuiteResult:
    total: int
    passed: int
    failed: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (test path, error)
    seconds: float = 0.0

    @property
    def share(self) -> float:
        return self.passed / self.total if self.total else 0.0


def installed_suite(source: Path = SHARED_SUITE) -> Path | None:
    """An installed copy of the suite (``$TRM_LRS_SUITE``, else one made in the user cache), or None."""
    configured = os.environ.get(SUITE_ENV)
    if configured:
        return Path(configured) if (Path(configured) / "node_modules").is_dir() else None
    if not source.is_dir() or shutil.which("npm") is None or shutil.which("node") is None:
        return None
    import platformdirs

    target = Path(platformdirs.user_cache_dir("trm-modules", appauthor=False)) / "lrs-conformance-test-suite"
    if not (target / "node_modules").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    """``trm serve`` on a fresh store under ``workdir``; returns (process, base URL, a feedback token)."""
    from trm_modules.server.tokens import TokenStore
    from trm_modules.store import Store

    db = str(workdir / "store.sqlite3")
    store = Store(db)
    token, _ = TokenStore(store).create(["feedback"], name="adl-conformance-suite")
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "trm_modules.cli", "serve", "--port", str(port), "--db", db, "--registry",
         str(workdir / "registry"), "--no-bootstrap-token", "--public-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TRM_XAPI_LRS_URL": ""})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trm serve exited: {process.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, token
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("trm serve did not answer /healthz within 60 s")


def failures_in(log: dict) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(node: dict, path: list[str]) -> None:
        children = node.get("tests") or []
        for child in children:
            walk(child, path + [node.get("title", "")])
        if node.get("error") and not children:
            found.append((" > ".join(p for p in path[-1:] + [node.get("title", "")] if p), str(node["error"])))

    walk(log.get("log", log), [])
    return found


def run_suite(suite: Path, xapi_version: str = "1.0.3", timeout_s: float = 600) -> SuiteResult:
    """Serve a fresh LRS, run the suite's ``xapi_version`` tests against it, and read its log."""
    with tempfile.TemporaryDirectory(prefix="trm-lrs-suite-") as tmp:
        process, url, token = serve(Path(tmp))
        started = time.monotonic()
        try:
            run = subprocess.run(["node", "bin/console_runner.js", "-e", f"{url}/xapi", "-a", "-u", "suite",
                                  "-p", token, "-x", xapi_version], cwd=suite, capture_output=True, text=True,
                                 timeout=timeout_s)
        finally:
            process.terminate()
            process.wait(10)
        seconds = time.monotonic() - started
    written = re.search(r"Full run log written to (\S+)", run.stdout)
    if not written:
        raise RuntimeError(f"the suite wrote no log:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    log_path = Path(written.group(1))
    log = json.loads((log_path if log_path.is_absolute() else suite / log_path).read_text())
    summary = log["summary"]
    return SuiteResult(summary["total"], summary["passed"], summary["failed"], failures_in(log), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xapi", default="1.0.3", help="xAPI version of the tests (1.0.3 or 2.0.0).")
    parser.add_argument("--suite", type=Path, help="An installed suite (default: $TRM_LRS_SUITE or a cached copy).")
    args = parser.parse_args()
    suite = args.suite or installed_suite()
    if suite is None:
        sys.exit("no conformance suite: set TRM_LRS_SUITE, or install node/npm next to " + str(SHARED_SUITE))
    result = run_suite(suite, args.xapi)
    print(f"ADL LRS conformance suite, xAPI {args.xapi}: {result.passed}/{result.total} passed "
          f"({100 * result.share:.1f} %), {result.failed} failed, {result.seconds:.0f} s")
    for name, error in result.failures:
        print(f"FAILED {name}\n    {error.splitlines()[0][:300]}")


if __name__ == "__main__":
    main()
