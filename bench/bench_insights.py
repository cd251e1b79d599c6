"""How long a course × version report takes over 1,000,000 solves with feedback, on SQLite and PostgreSQL.

    python bench/bench_insights.py [--solves 1000000] [--postgres URL] [--rounds 3] [--keep DIR]

Loads ``--solves`` solves (90 % of one module, ``maze-9x9``, three versions, 20 courses, 20,000
learners, 5,000 distinct inputs, 90 days) with their feedback — a verdict on 60 % of them (1 % of
those voided and judged again), a 1-5 rating on 12 % — by bulk insert (sqlite3 ``executemany`` /
PostgreSQL ``COPY``, indexes built after the load as a restore would) into a store the shipped
migrations created; ``solves.verdict`` is the latest effective verdict, checked against
``store.refresh_verdicts`` on a sample. PostgreSQL (``--postgres`` or ``$TRM_TEST_POSTGRES_URL``)
runs in a schema of its own, dropped afterwards, and is analysed after the load as autovacuum would;
SQLite is not (a store's file has no statistics).

Then times, best of ``--rounds`` after one warm-up call, in the same process:

- ``report``: ``store.insights.module_report(store, "maze-9x9", by="version,course")`` with every
  section (performance, ratings, calibration, failures, outcomes), what ``GET
  /v1/modules/maze-9x9/stats`` and ``trm stats`` compute;
- ``report, one course``: the same with ``course=``;
- ``core``: the groups alone (``sections=()``);
- ``raw SQL``: one hand-written aggregate, ``SELECT version, course, count(*), count(DISTINCT
  learner), count(verdict), sum(verdict) FROM solves WHERE module = ? GROUP BY version, course``,
  through the driver;

and prints each time and its ratio to the raw SQL aggregate. Goal: the report under 1 s on both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from trm_modules.store import Store
from trm_modules.store.insights import module_report
from trm_modules.store.models import Solve
from trm_modules.store.storage import SOLVE_COLUMNS, refresh_verdicts

MODULE = "maze-9x9"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
COURSES = tuple(f"course-{i:02d}" for i in range(20))
FEEDBACK_COLUMNS = ("id", "solve_id", "kind", "value", "corrected_output", "source", "actor", "voids", "created_at")
RAW_SQL = (
    "SELECT version, course, count(*), count(DISTINCT learner), count(verdict), sum(verdict) "
    "FROM solves WHERE module = {p} GROUP BY version, course"
)
T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)


def generate(n: int, seed: int = 0) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[str, str, str]]]:
    """(solve rows in SOLVE_COLUMNS order, feedback rows, contexts) with Python values; dates as datetimes."""
    rng = np.random.default_rng(seed)
    learners = 20_000
    learner_course = rng.integers(0, len(COURSES), learners)
    learner = rng.integers(0, learners, n)
    course = learner_course[learner]
    module_is_maze = rng.random(n) < 0.9
    version = rng.choice(len(VERSIONS), n, p=[0.3, 0.3, 0.4])
    inputs = [{"maze": int(i)} for i in range(5_000)]
    outputs = [{"path": int(s)} for s in range(17)]
    digests = [
        hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest() for doc in inputs
    ]
    input_index = rng.integers(0, len(inputs), n)
    steps = rng.integers(1, 17, n)
    latency = rng.gamma(2.0, 8.0, n)
    seconds = np.sort(rng.uniform(0, 90 * 86_400, n))
    accuracy = np.array([0.80, 0.84, 0.90])[version]
    judged = rng.random(n) < 0.6
    correct = rng.random(n) < accuracy
    confidence = np.clip(accuracy + rng.normal(0, 0.1, n), 0, 1)
    valid = rng.random(n) < 0.97
    rated = rng.random(n) < 0.12
    ratings = rng.integers(1, 6, n)
    rejudged = judged & (rng.random(n) < 0.01)
    contexts = [("moodle", c, "maze-week") for c in COURSES]
    solves, feedback = [], []
    for i in range(n):
        sid = f"s{i:07d}"
        when = T0 + timedelta(seconds=float(seconds[i]))
        verdict = None
        if judged[i]:
            verdict = int(correct[i])
            first = f"f{i:07d}v"
            kind = "correct" if correct[i] else "incorrect"
            if rejudged[i]:  # a wrong first verdict, voided, then the right one
                wrong = "incorrect" if correct[i] else "correct"
                feedback.append((f"f{i:07d}w", sid, wrong, None, None, "api", None, None, when + timedelta(minutes=1)))
                feedback.append(
                    (f"f{i:07d}x", sid, "void", None, None, "api", None, f"f{i:07d}w", when + timedelta(minutes=2))
                )
                feedback.append((first, sid, kind, None, None, "api", None, None, when + timedelta(minutes=3)))
            else:
                feedback.append((first, sid, kind, None, None, "xapi", None, None, when + timedelta(minutes=1)))
        if rated[i]:
            feedback.append(
                (f"f{i:07d}r", sid, "rating", int(ratings[i]), None, "api", None, None, when + timedelta(minutes=4))
            )
        c = int(course[i])
        solves.append(
            (
                sid,
                MODULE if module_is_maze[i] else "sudoku",
                VERSIONS[version[i]],
                "sha256:" + "ab" * 32,
                c,
                f"p-{int(learner[i]):05d}",
                inputs[input_index[i]],
                outputs[steps[i]],
                int(steps[i]),
                float(confidence[i]),
                bool(valid[i]),
                float(latency[i]),
                "cpu",
                when,
                COURSES[c],
                None,
                digests[input_index[i]],
                verdict,
            )
        )
    return solves, feedback, contexts


# ------------------------------------------------------------------------------------ loading
def load_sqlite(store: Store, path: str, solves: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]) -> None:
    import sqlite3

    def day(value: datetime) -> str:
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    connection = sqlite3.connect(path)
    try:
        indexes = _drop_indexes_sqlite(connection)
        rows = (
            (
                *r[:4],
                r[4] + 1,
                r[5],
                json.dumps(r[6]),
                json.dumps(r[7]),
                *r[8:10],
                int(r[10]),
                *r[11:13],
                day(r[13]),
                *r[14:],
            )
            for r in solves
        )
        connection.executemany(
            f"INSERT INTO solves ({', '.join(SOLVE_COLUMNS)}) VALUES ({', '.join('?' * len(SOLVE_COLUMNS))})", rows
        )
        connection.executemany(
            f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))})",
            ((*f[:3], None if f[3] is None else json.dumps(f[3]), *f[4:8], day(f[8])) for f in feedback),
        )
        connection.commit()
        for statement in indexes:
            connection.execute(statement)
        connection.commit()  # no ANALYZE: a store's SQLite file has no statistics either
    finally:
        connection.close()


def _drop_indexes_sqlite(connection: Any) -> list[str]:
    rows = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('solves', 'feedback')"
    ).fetchall()
    for name, _ in rows:
        connection.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in rows]


def load_postgres(url: str, solves: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            indexes = connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename IN ('solves', 'feedback') AND indexname NOT LIKE '%pkey'"
                )
            ).all()
            for name, _ in indexes:
                connection.execute(text(f'DROP INDEX "{name}"'))
            cursor = connection.connection.driver_connection.cursor()
            with cursor.copy(f"COPY solves ({', '.join(SOLVE_COLUMNS)}) FROM STDIN") as copy:
                for r in solves:
                    copy.write_row((*r[:4], r[4] + 1, r[5], json.dumps(r[6]), json.dumps(r[7]), *r[8:]))
            with cursor.copy(f"COPY feedback ({', '.join(FEEDBACK_COLUMNS)}) FROM STDIN") as copy:
                for f in feedback:
                    copy.write_row((*f[:3], None if f[3] is None else json.dumps(f[3]), *f[4:]))
            for _, definition in indexes:
                connection.execute(text(definition))
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def insert_contexts(store: Store, contexts: list[tuple[str, str, str]]) -> None:
    from trm_modules.store.models import Context

    with store.session() as session, session.begin():
        session.execute(
            Context.__table__.insert(),
            [{"id": i + 1, "platform": p, "course": c, "activity": a} for i, (p, c, a) in enumerate(contexts)],
        )


def check_verdicts(store: Store, sample: list[str]) -> None:
    """The loaded ``solves.verdict`` equals what the store derives from the feedback (a sample)."""
    with store.session() as session:
        before = dict(session.execute(select(Solve.id, Solve.verdict).where(Solve.id.in_(sample))).all())
        refresh_verdicts(session.connection(), sample)
        after = dict(session.execute(select(Solve.id, Solve.verdict).where(Solve.id.in_(sample))).all())
        session.rollback()
    if before != after:
        different = [k for k in sample if before.get(k) != after.get(k)][:5]
        raise SystemExit(f"loaded verdicts differ from the store's derivation, e.g. {different}")


# ------------------------------------------------------------------------------------ timing
def best_time(call: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    """(best wall time, this process's CPU time in that round, result), after a warm-up call."""
    result = call()  # warm-up: imports, statement cache, database cache
    times = []
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        result = call()
        times.append((time.perf_counter() - started, time.process_time() - cpu))
    wall, cpu = min(times)
    return wall, cpu, result


def measure(label: str, store: Store, rounds: int) -> bool:
    param = "?" if store.dialect == "sqlite" else "%(module)s"
    raw_sql = RAW_SQL.format(p=param)

    def raw() -> list[Any]:
        with store.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute(raw_sql, (MODULE,) if store.dialect == "sqlite" else {"module": MODULE})
            return cursor.fetchall()

    raw_s, raw_cpu, raw_rows = best_time(raw, rounds)
    full_s, full_cpu, report = best_time(lambda: module_report(store, MODULE, by="version,course"), rounds)
    course_s, course_cpu, _ = best_time(
        lambda: module_report(store, MODULE, by="version,course", course=COURSES[7]), rounds
    )
    core_s, core_cpu, core = best_time(lambda: module_report(store, MODULE, by="version,course", sections=()), rounds)
    # The report's groups reconcile with the hand-written aggregate, figure for figure.
    raw_groups = {(r[0], r[1]): (r[2], r[3], r[4], int(r[5] or 0)) for r in raw_rows}
    ours = {(g.version, g.course): (g.solves, g.learners, g.verdicts, g.correct) for g in core.groups}
    if raw_groups != ours:
        raise SystemExit(f"{label}: the report's groups differ from the raw aggregate")
    solves = sum(g.solves for g in report.groups)
    print(
        f"{label}: {len(report.groups)} groups, {solves:,} solves of {MODULE}; best of {rounds}, wall (this "
        f"process's CPU{', the database runs in it' if store.dialect == 'sqlite' else ', not the server'})"
    )

    def line(name: str, wall: float, cpu: float) -> None:
        goal = f"  -> {'MET' if wall < 1.0 else 'NOT MET'} (< 1 s)" if name != "raw SQL aggregate" else ""
        print(f"  {name:34} {wall * 1e3:8.0f} ms ({cpu * 1e3:6.0f} ms CPU)  ratio to raw {wall / raw_s:6.2f}{goal}")

    line("raw SQL aggregate", raw_s, raw_cpu)
    line("core report (groups only)", core_s, core_cpu)
    line("full report (every section)", full_s, full_cpu)
    line("full report, one course", course_s, course_cpu)
    return full_s < 1.0 and core_s < 1.0


def run_sqlite(
    args: argparse.Namespace,
    solves: list[tuple[Any, ...]],
    feedback: list[tuple[Any, ...]],
    contexts: list[tuple[str, str, str]],
    sample: list[str],
) -> bool:
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        path = os.path.join(tmp, "insights.sqlite3")
        store = Store(f"sqlite:///{path}")
        try:
            store.ensure_schema()
            insert_contexts(store, contexts)
            started = time.perf_counter()
            load_sqlite(store, path, solves, feedback)
            print(
                f"sqlite     loaded in {time.perf_counter() - started:.0f} s ({os.path.getsize(path) / 2**20:.0f} MiB)"
            )
            check_verdicts(store, sample)
            return measure("sqlite", store, args.rounds)
        finally:
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solves", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("TRM_TEST_POSTGRES_URL"))
    parser.add_argument("--keep", help="keep the SQLite file in this directory (default: a temporary one)")
    parser.add_argument("--databases", default="sqlite,postgres", help="which to time, comma-separated")
    args = parser.parse_args()

    started = time.perf_counter()
    solves, feedback, contexts = generate(args.solves)
    print(
        f"generated {len(solves):,} solves and {len(feedback):,} feedback events in "
        f"{time.perf_counter() - started:.0f} s"
    )
    sample = [solves[i][0] for i in range(0, len(solves), max(1, len(solves) // 2000))]
    met = True
    databases = {name.strip() for name in args.databases.split(",")}
    if "sqlite" in databases:
        met &= run_sqlite(args, solves, feedback, contexts, sample)
    if "postgres" in databases and args.postgres:
        schema = f"trm_bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(args.postgres)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(args.postgres)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        store = Store(url)
        try:
            store.ensure_schema()
            insert_contexts(store, contexts)
            with store.engine.begin() as connection:  # ids given explicitly: move the sequence past them
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence('contexts', 'id'), :n)"), {"n": len(contexts)}
                )
            started = time.perf_counter()
            load_postgres(url, solves, feedback)
            print(f"postgres   loaded in {time.perf_counter() - started:.0f} s")
            check_verdicts(store, sample)
            met &= measure("postgres", store, args.rounds)
        finally:
            store.close()
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    elif "postgres" in databases:
        print("postgres   skipped: pass --postgres URL or set TRM_TEST_POSTGRES_URL")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
