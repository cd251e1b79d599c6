"""Store write throughput: solve records/s through the Recorder vs raw driver executemany, in one run.

    python bench/bench_store.py [--records 20000] [--batch 500] [--postgres URL]

Each record is ~0.5 KB (a 6×6 grid as JSON input and output). The baseline inserts the same rows
(JSON serialised in the timed loop too, with the
same encoder as the store) with ``sqlite3.executemany`` in WAL mode, the same
``synchronous`` level and one commit per batch, into a database with the same schema; with a
PostgreSQL URL (or ``$TRM_TEST_POSTGRES_URL``), the same through psycopg ``executemany``.
Prints records/s and the ratio store / raw (goal ≥ 0.7).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from trm_modules.records import SolveContext, SolveRecord
from trm_modules.store import Recorder, Store
from trm_modules.store.database import dump_json

COLUMNS = (
    "id",
    "module",
    "version",
    "digest",
    "context_id",
    "learner",
    "input",
    "output",
    "steps",
    "confidence",
    "valid",
    "latency_ms",
    "device",
    "created_at",
)


def make_records(n: int) -> list[SolveRecord]:
    rng = random.Random(0)
    context = SolveContext(platform="moodle", course="algebra-1", activity="sudoku-week-3", learner="p-4c1a")
    records = []
    for _ in range(n):
        grid = [[rng.randint(0, 9) for _ in range(6)] for _ in range(6)]
        records.append(
            SolveRecord(
                id=str(uuid.uuid4()),
                module="sudoku",
                version="1.2.0",
                digest="sha256:" + "ab" * 32,
                context=context,
                input={"grid": grid},
                output={"grid": [[(v % 6) + 1 for v in row] for row in grid]},
                steps=rng.randint(1, 16),
                confidence=rng.random(),
                valid=True,
                latency_ms=rng.uniform(2, 40),
                device="cpu",
                created_at=datetime.now(timezone.utc),
            )
        )
    return records


def raw_row(record: SolveRecord, context_id: int) -> tuple:
    return (
        record.id,
        record.module,
        record.version,
        record.digest,
        context_id,
        record.context.learner,
        dump_json(record.input),
        dump_json(record.output),
        record.steps,
        record.confidence,
        record.valid,
        record.latency_ms,
        record.device,
        record.created_at,
    )


def time_store(url: str, records: list[SolveRecord], batch: int, journal: Path, synchronous: str = "FULL") -> float:
    store = Store(url, sqlite_synchronous=synchronous)
    store.ensure_schema()
    store.write(records[:1])  # warm: context row, compiled statement cache, pool
    with Recorder(store, journal_path=journal, batch_size=batch, flush_interval_s=0.05) as recorder:
        start = time.perf_counter()
        for record in records[1:]:
            recorder.record_solve(record)
        recorder.flush()
        elapsed = time.perf_counter() - start
    store.close()
    return (len(records) - 1) / elapsed


def time_raw_sqlite(path: str, records: list[SolveRecord], batch: int, synchronous: str) -> float:
    Store(f"sqlite:///{path}").ensure_schema()  # the same tables and indices
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    context_id = connection.execute(
        "INSERT INTO contexts (platform, course, activity) VALUES ('moodle', 'algebra-1', 'w3') RETURNING id"
    ).fetchone()[0]
    sql = f"INSERT INTO solves ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    start = time.perf_counter()
    for offset in range(0, len(records), batch):
        connection.execute("BEGIN")
        connection.executemany(sql, [raw_row(r, context_id) for r in records[offset : offset + batch]])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return len(records) / elapsed


def time_raw_postgres(url: str, records: list[SolveRecord], batch: int) -> float:
    import psycopg
    from psycopg.types.json import Jsonb

    Store(url).ensure_schema()
    parsed = make_url(url)
    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
        context_id = connection.execute(
            "INSERT INTO contexts (platform, course, activity) VALUES ('moodle', 'algebra-1', 'w3') RETURNING id"
        ).fetchone()[0]
        connection.commit()
        sql = f"INSERT INTO solves ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        start = time.perf_counter()
        for offset in range(0, len(records), batch):
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql,
                    [
                        (*row[:6], Jsonb(row[6]), Jsonb(row[7]), *row[8:])
                        for row in (raw_row(r, context_id) for r in records[offset : offset + batch])
                    ],
                )
            connection.commit()
        elapsed = time.perf_counter() - start
    return len(records) / elapsed


def fresh_postgres_schema(base_url: str) -> tuple[str, str]:
    import psycopg

    schema = f"trm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_postgres_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(
        make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", default="FULL", choices=["NORMAL", "FULL"])
    parser.add_argument("--postgres", default=os.environ.get("TRM_TEST_POSTGRES_URL"))
    args = parser.parse_args()

    records = make_records(args.records)
    size = sum(len(r.model_dump_json()) for r in records[:100]) / 100
    print(f"{args.records} solve records, ~{size:.0f} bytes each as JSON, batches of {args.batch}")
    print(f"best of {args.rounds} alternating rounds (fresh database each)")
    with tempfile.TemporaryDirectory() as tmp:
        raw_rates, our_rates = [], []
        for round_ in range(args.rounds):
            raw_rates.append(time_raw_sqlite(f"{tmp}/raw{round_}.sqlite3", records, args.batch, args.synchronous))
            our_rates.append(
                time_store(
                    f"sqlite:///{tmp}/store{round_}.sqlite3",
                    records,
                    args.batch,
                    Path(tmp) / "journal.jsonl",
                    args.synchronous,
                )
            )
        raw, ours = max(raw_rates), max(our_rates)
        print(
            f"sqlite   raw executemany {raw:9,.0f} rec/s | store Recorder {ours:9,.0f} rec/s | "
            f"ratio {ours / raw:.2f} (synchronous={args.synchronous})"
        )
        if args.postgres:
            raw_rates, our_rates = [], []
            for _ in range(args.rounds):
                raw_schema, raw_url = fresh_postgres_schema(args.postgres)
                our_schema, our_url = fresh_postgres_schema(args.postgres)
                try:
                    raw_rates.append(time_raw_postgres(raw_url, records, args.batch))
                    our_rates.append(time_store(our_url, records, args.batch, Path(tmp) / "journal-pg.jsonl"))
                finally:
                    drop_postgres_schema(args.postgres, raw_schema)
                    drop_postgres_schema(args.postgres, our_schema)
            raw, ours = max(raw_rates), max(our_rates)
            print(
                f"postgres raw executemany {raw:9,.0f} rec/s | store Recorder {ours:9,.0f} rec/s | "
                f"ratio {ours / raw:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
