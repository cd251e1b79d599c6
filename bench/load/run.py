"""Load with failures: N ``trm serve`` replicas behind nginx on a private PostgreSQL, mixed traffic from
locust, a replica ``kill -9``ed every minute (and restarted), PostgreSQL restarted once; nothing the servers
acknowledged may be missing from the database afterwards.

    python bench/load/run.py --minutes 2 --replicas 3 [--users 8] [--baseline-seconds 20] [--json out.json]

What it does, in one run:

1. starts its own PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary folder, on a free port; never the
   system's server), runs ``trm db upgrade`` and ``trm token create`` on it;
2. starts N replicas; baseline: one of them alone (the others idle), with the same users and traffic, for
   ``--baseline-seconds``;
3. the run: the N replicas behind nginx for ``--minutes`` (a float), one
   random replica killed with SIGKILL every ``--kill-every`` seconds and started again at once, PostgreSQL
   stopped in immediate mode (a crash: no checkpoint, WAL recovery on start) and started again once, at
   ``--pg-restart-at`` seconds;
4. waits until every replica has written what it journaled while the database was away, stops everything, and
   looks up every acknowledged id (solves, feedback, outcomes, xAPI statements) in the database.

It prints throughput and p50/p99 of the run against the baseline, errors by class, ``kills: K``,
``acknowledged lost: L`` and each replica's RSS growth per hour (slope of a least-squares line through its
samples, ``scipy.stats.linregress``, over the longest life of each replica). Exit status 1 when L > 0.
Traffic: ``bench/load/locustfile.py``. Needs PostgreSQL's server binaries and nginx (Debian packages).
"""

from __future__ import annotations

# locust patches the standard library for gevent: it comes first.
from locust.env import Environment  # isort: skip

import argparse
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import locustfile  # noqa: E402  (beside this file)
from inputs import served_modules  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: RSS growth is fitted over each process's samples after this many seconds (loading, first pins and
#: canaries, allocator warm-up come first).
RSS_WARMUP_S = 60.0
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
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
      # deploy/nginx.conf's rule: a refused connection (a killed replica) is retried on the next replica.
      proxy_next_upstream error;
      proxy_connect_timeout 1s;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_store(db_url: str) -> str:
    """What ``trm db upgrade`` and ``trm token create`` do, in this process: the schema, and a token of every
    scope (returned)."""
    from trm_modules.server import TokenStore
    from trm_modules.store import Store

    store = Store(db_url)
    try:
        store.upgrade()
        token, _ = TokenStore(store).create(["solve", "feedback", "read", "admin"], name="load")
    finally:
        store.close()
    return token


# ----------------------------------------------------------------------------------------------- PostgreSQL
class PrivatePostgres:
    """A PostgreSQL cluster of this run only: its own data folder, port and socket folder."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        initdb = shutil.which("initdb") or (found[-1] if found else None)
        if initdb is None:
            raise SystemExit("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(initdb).parent
        self.root, self.port = root, free_port()
        self.data, self.log = root / "data", root / "postgres.log"
        # initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(root, "postgres", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.restarts = 0

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=300"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def crash_and_restart(self) -> float:
        """Stop in immediate mode (no checkpoint: a crash as far as the data is concerned) and start again;
        seconds the database was away."""
        began = time.monotonic()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()
        self.restarts += 1
        return time.monotonic() - began

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass


# ------------------------------------------------------------------------------------------------ replicas
@dataclass
class Life:
    """One process of a replica: when it started and its RSS samples (seconds since start, bytes)."""

    started: float
    samples: list[tuple[float, int]] = field(default_factory=list)


class Replica:
    """One ``trm serve`` on its own port, home and journal folder (a restart finds its journal again)."""

    def __init__(self, root: Path, name: str, db_url: str, registry: Path) -> None:
        self.name, self.port, self.db_url, self.registry = name, free_port(), db_url, registry
        self.home = root / name
        self.home.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.lives: list[Life] = []

    def start(self) -> None:
        env = {
            **os.environ,
            "TRM_DB_URL": self.db_url,
            "TRM_HOME": str(self.home / "home"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "TRM_REPLICA_NAME": self.name,
            "OMP_NUM_THREADS": "1",
        }
        log = open(self.home / "serve.log", "ab")
        # eager fp32: a restarted replica serves at once instead of measuring engines and precisions first.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trm_modules.cli",
                "serve",
                "--port",
                str(self.port),
                "--registry",
                str(self.registry),
                "--cpu-threads",
                "1",
                "--engine",
                "eager",
                "--precision",
                "fp32",
                "--no-bootstrap-token",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.home,
        )
        log.close()
        self.lives.append(Life(time.monotonic()))

    def wait_ready(self, timeout: float = 300.0) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited: {(self.home / 'serve.log').read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - began
            except requests.RequestException:
                pass
            gevent.sleep(0.2)
        raise RuntimeError(f"replica {self.name} did not answer /healthz within {timeout:.0f} s")

    def sample_rss(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                rss = psutil.Process(self.process.pid).memory_info().rss
            except psutil.Error:
                return
            life = self.lives[-1]
            life.samples.append((time.monotonic() - life.started, rss))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def drained(self) -> bool:
        """The database is up and nothing this replica acknowledged waits in its queue or journal."""
        try:
            store = requests.get(self.url + "/healthz", timeout=5).json()["store"]
        except (requests.RequestException, ValueError, KeyError):
            return False
        return store["database"] == "up" and store["pending"] == 0 and store["journal"] == "empty"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_growth_mb_per_hour(self, warmup_s: float) -> tuple[float, float] | None:
        """(slope in MB/h, seconds sampled) over the longest life of this replica, after ``warmup_s``."""
        from scipy.stats import linregress

        best = None
        for life in self.lives:
            points = [(t, rss) for t, rss in life.samples if t >= warmup_s]
            if len(points) >= 3 and (best is None or points[-1][0] - points[0][0] > best[-1][0] - best[0][0]):
                best = points
        if best is None:
            return None
        fit = linregress([t / 3600 for t, _ in best], [rss / 2**20 for _, rss in best])
        return fit.slope, best[-1][0] - best[0][0]


def stop_all(replicas: list[Replica]) -> None:
    """SIGTERM every replica at once, then wait for each."""
    gevent.joinall([gevent.spawn(replica.stop) for replica in replicas])


# ------------------------------------------------------------------------------------------------- traffic
@dataclass
class Phase:
    """Figures of one phase of traffic."""

    name: str
    seconds: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    solves: int
    solve_p50_ms: float
    solve_p99_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<9} {self.seconds:6.0f} s  {self.throughput:7.1f} req/s  p50 {self.p50_ms:6.0f} ms  "
            f"p99 {self.p99_ms:6.0f} ms  | solves {self.solves / self.seconds:6.1f}/s  p50 "
            f"{self.solve_p50_ms:6.0f} ms  p99 {self.solve_p99_ms:6.0f} ms  | failed {self.failures}"
        )


def run_traffic(name: str, host: str, users: int, seconds: float, during: Any = None) -> Phase:
    """``users`` locust users (plus the administrator) against ``host`` for ``seconds``; ``during(elapsed)``
    is called every second while they run."""
    environment = Environment(
        user_classes=[locustfile.Learner, locustfile.Platform, locustfile.Administrator], host=host
    )
    runner = environment.create_local_runner()
    runner.start(users + 1, spawn_rate=max(users, 1))
    began = time.monotonic()
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            if during is not None:
                during(elapsed)
            gevent.sleep(1.0)
    finally:
        runner.quit()
    seconds = time.monotonic() - began
    total, solve = environment.stats.total, environment.stats.get("solve", "POST")
    return Phase(
        name,
        seconds,
        total.num_requests,
        total.num_failures,
        total.get_response_time_percentile(0.5) or 0,
        total.get_response_time_percentile(0.99) or 0,
        solve.num_requests - solve.num_failures,
        solve.get_response_time_percentile(0.5) or 0,
        solve.get_response_time_percentile(0.99) or 0,
    )


def lost_ids(db_url: str, acked: dict[str, set[str]]) -> dict[str, list[str]]:
    """Per kind, the acknowledged ids the database does not hold."""
    from sqlalchemy import create_engine, text

    tables = {"solve": "solves", "feedback": "feedback", "outcome": "learner_outcomes", "statement": "lrs_statements"}
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            stored = {
                kind: {row[0] for row in connection.execute(text(f"SELECT id FROM {table}"))}
                for kind, table in tables.items()
            }
    finally:
        engine.dispose()
    return {kind: sorted(ids - stored[kind]) for kind, ids in acked.items()}


# ------------------------------------------------------------------------------------------------------ run
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="Length of the run with failures.")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--users", type=int, default=8, help="Learners and platforms (plus one administrator).")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=None,
        help="Length of the one-process baseline (default: a quarter of the run, 15 to 120 s).",
    )
    parser.add_argument("--kill-every", type=float, default=60.0, help="Seconds between replica kills.")
    parser.add_argument(
        "--pg-restart-at",
        type=float,
        default=30.0,
        help="Seconds into the run PostgreSQL is crashed and restarted (once).",
    )
    parser.add_argument("--registry", type=Path, default=REPO / "registry", help="Registry to serve (copied).")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs) and print it.")
    args = parser.parse_args(argv)
    if NGINX is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    seconds = args.minutes * 60
    baseline_s = args.baseline_seconds if args.baseline_seconds is not None else min(max(seconds / 4, 15), 120)
    rng = random.Random(args.seed)

    wall = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="trm-load-"))
    os.chmod(tmp, 0o755)  # the cluster's owner (postgres, when run as root) must reach its folder
    postgres = PrivatePostgres(tmp / "pg")
    replicas: list[Replica] = []
    nginx = None
    sampler = None
    try:
        registry = tmp / "registry"
        shutil.copytree(args.registry, registry, ignore=shutil.ignore_patterns("recipes"))
        postgres.init()
        token = prepare_store(postgres.url)
        replicas = [Replica(tmp, f"r{i + 1}", postgres.url, registry) for i in range(args.replicas)]

        def sample_forever() -> None:
            while True:
                for replica in replicas:
                    replica.sample_rss()
                gevent.sleep(5.0)

        # Every replica starts (loads and self-tests its modules) before the baseline: the baseline's process is
        # then one of them, answering alone while the others sit idle.
        starting = time.monotonic()
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        ready_s = time.monotonic() - starting
        listed = requests.get(
            replicas[0].url + "/v1/modules", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        traffic = locustfile.configure(token, served_modules(listed, registry))
        print(
            f"modules: {', '.join(f'{m.name} ({len(m.inputs)} inputs)' for m in traffic.modules)}; {len(replicas)} "
            f"replicas ready in {ready_s:.0f} s",
            flush=True,
        )
        sampler = gevent.spawn(sample_forever)
        setup_s = time.monotonic() - wall

        baseline = run_traffic("baseline", replicas[0].url, args.users, baseline_s)
        baseline_errors = dict(traffic.errors)
        traffic.errors.clear()
        print(baseline.line(), flush=True)

        lb_port = free_port()
        servers = "\n".join(f"    server 127.0.0.1:{r.port} max_fails=1 fail_timeout=1s;" for r in replicas)
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, servers=servers, port=lb_port))
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        lb = f"http://127.0.0.1:{lb_port}"
        for _ in range(100):
            try:
                if requests.get(lb + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                gevent.sleep(0.1)

        events: list[str] = []
        schedule = {"next_kill": args.kill_every, "pg_done": False}
        kills = [0]

        def chaos(elapsed: float) -> None:
            if not schedule["pg_done"] and elapsed >= args.pg_restart_at:
                schedule["pg_done"] = True
                away = postgres.crash_and_restart()
                events.append(f"{elapsed:5.0f} s  PostgreSQL crashed (immediate stop) and restarted: away {away:.1f} s")
            if elapsed >= schedule["next_kill"] and seconds - elapsed > 5:
                schedule["next_kill"] += args.kill_every
                victim = rng.choice(replicas)
                victim.kill()
                kills[0] += 1
                victim.start()
                events.append(f"{elapsed:5.0f} s  kill -9 {victim.name}, restarted")

        run = run_traffic("run", lb, args.users, seconds, during=chaos)
        run_errors = dict(traffic.errors)

        # Every replica must be up (a restarted one replays its journal when it starts) and drained.
        for replica in replicas:
            replica.wait_ready()
        deadline = time.monotonic() + 120
        while not all(r.drained() for r in replicas) and time.monotonic() < deadline:
            gevent.sleep(0.5)
        drained = all(r.drained() for r in replicas)
        sampler.kill()
        sampler = None
        stop_all(replicas)
        lost = lost_ids(postgres.url, traffic.acked)
        lost_count = sum(len(ids) for ids in lost.values())

        print(run.line())
        print(
            f"run/baseline: throughput x{run.throughput / baseline.throughput:.2f}, solves/s "
            f"x{(run.solves / run.seconds) / max(baseline.solves / baseline.seconds, 1e-9):.2f}, p50 "
            f"x{run.p50_ms / max(baseline.p50_ms, 1e-9):.2f}, p99 x{run.p99_ms / max(baseline.p99_ms, 1e-9):.2f} "
            f"({args.replicas} replicas vs 1 process, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})"
        )
        for line in events:
            print("  " + line)
        print(
            "errors by class (baseline): "
            + (", ".join(f"{k}: {v}" for k, v in sorted(baseline_errors.items())) or "none")
        )
        print("errors by class (run): " + (", ".join(f"{k}: {v}" for k, v in sorted(run_errors.items())) or "none"))
        print("acknowledged: " + ", ".join(f"{k} {len(v)}" for k, v in traffic.acked.items()))
        print(f"kills: {kills[0]}")
        print(f"postgres restarts: {postgres.restarts}")
        print(f"drained before the check: {'yes' if drained else 'NO'}")
        print(
            f"acknowledged lost: {lost_count}"
            + (f" {json.dumps({k: v[:5] for k, v in lost.items() if v})}" if lost_count else "")
        )
        growth = {}
        for replica in replicas:
            fit = replica.rss_growth_mb_per_hour(warmup_s=RSS_WARMUP_S)
            growth[replica.name] = None if fit is None else {"mb_per_hour": round(fit[0], 1), "over_s": round(fit[1])}
            last = max((s for life in replica.lives for s in life.samples[-1:]), default=(0, 0), key=lambda s: s[0])
            print(
                f"rss {replica.name}: "
                + (
                    f"too few samples after {RSS_WARMUP_S:.0f} s of life"
                    if fit is None
                    else f"{fit[0]:+.1f} MB/h over {fit[1]:.0f} s of its longest life"
                )
                + f", {len(replica.lives)} start(s), last {last[1] / 2**20:.0f} MB"
            )
        print(f"wall time {time.monotonic() - wall:.0f} s (setup and the replicas' start {setup_s:.0f} s)")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "baseline": {**baseline.__dict__, "throughput": baseline.throughput},
                        "run": {**run.__dict__, "throughput": run.throughput},
                        "replicas": args.replicas,
                        "users": args.users,
                        "kills": kills[0],
                        "postgres_restarts": postgres.restarts,
                        "errors_baseline": baseline_errors,
                        "errors_run": run_errors,
                        "acknowledged": {k: len(v) for k, v in traffic.acked.items()},
                        "lost": lost_count,
                        "drained": drained,
                        "rss_growth": growth,
                        "events": events,
                    },
                    indent=2,
                )
            )
        return 1 if lost_count else 0
    finally:
        if sampler is not None:
            sampler.kill()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        stop_all(replicas)
        postgres.stop()
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
