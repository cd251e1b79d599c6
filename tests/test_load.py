"""Load with failures, the short form of ``bench/load/run.py``: three ``trm serve`` replicas on the real
registry's modules behind nginx, on a private PostgreSQL cluster, under mixed locust traffic (solves of every
module, feedback, outcomes, xAPI writes and reads, admin pins and canaries); PostgreSQL crashed and restarted
15 s into the two minutes, a replica ``kill -9``ed (and restarted) every 40 s (two or three kills). Every solve, feedback event, outcome and statement the
servers acknowledged (200/202) is in the database afterwards.

Real processes, real database, so it takes three to five minutes (``pytest -s`` prints the figures). Needs
PostgreSQL's server binaries, nginx (``.ci/run`` installs it) and locust (the ``load`` extra); in CI none may be
missing.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = [
    what
    for what, present in (
        ("nginx", shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
        ("PostgreSQL server binaries", shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        ("locust (pip install -e '.[load]')", importlib.util.find_spec("locust") is not None),
        ("the registry's modules", (REPO / "registry" / "index.json").exists()),
    )
    if not present
]


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_across_replica_kills_and_a_database_crash(tmp_path):
    if MISSING:
        message = f"needs {', '.join(MISSING)}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message)
    figures = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "load" / "run.py"),
            "--minutes",
            "2.0",
            "--replicas",
            "3",
            "--users",
            "6",
            "--baseline-seconds",
            "12",
            "--kill-every",
            "40",
            "--pg-restart-at",
            "15",
            "--seed",
            "25",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    print(result.stdout[-4000:])
    assert figures.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(figures.read_text())
    assert report["kills"] >= 2 and report["postgres_restarts"] == 1
    assert report["drained"], "a replica still held journaled events when the database was checked"
    acknowledged = report["acknowledged"]
    assert acknowledged["solve"] > 0 and acknowledged["feedback"] > 0 and acknowledged["statement"] > 0
    assert report["lost"] == 0, result.stdout[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    # Without faults nothing fails: the run's failures are the faults' (in flight at a kill, the database away).
    assert report["baseline"]["failures"] == 0, report["errors_baseline"]
