"""Draining the xAPI outbox (the store's ``xapi_outbox`` table) into a local capture LRS, in one process.

    python bench/bench_xapi_outbox.py                 # backlogs of 2k, 8k and 20k statements
    python bench/bench_xapi_outbox.py --sizes 20000 --db postgresql+psycopg://postgres@127.0.0.1/bench

For each backlog: the time to drain it through ``XapiForwarder.send_due`` (select due rows through
the index, POST a batch, delete the batch), its rate, and the ratio against the baseline measured
in the same run: the same statements POSTed to the same LRS in the same batches straight from
memory (no queue). A linear drain keeps the rate flat as the backlog grows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from trm_adapters.xapi import XapiForwarder
from trm_adapters.xapi_statements import StatementNaming, statement_for_solve
from trm_modules.records import SolveRecord
from trm_modules.store import Store


class CaptureHandler(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        CaptureHandler.received += len(body)
        answer = json.dumps([s["id"] for s in body]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def statements(count: int) -> list[dict]:
    naming = StatementNaming("http://bench.example", {"lms": "https://lms.example"})
    return [
        statement_for_solve(
            SolveRecord(
                id=f"bench-{i}",
                module="sudoku-4x4",
                version="1.0.0",
                digest="sha256:" + "0" * 64,
                input={"grid": [[0] * 4] * 4},
                output={"grid": [[1, 2, 3, 4]] * 4},
                steps=3,
                confidence=0.9,
                valid=True,
                latency_ms=4.0,
                device="cpu",
                context={"platform": "lms", "course": "c", "learner": f"p-{i % 97}"},
            ),
            naming,
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 20000])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--db", help="Store URL (default: a fresh SQLite file per size).")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), CaptureHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/xapi/"
    client = httpx.Client(timeout=30)
    print(f"{'backlog':>8} {'drain s':>8} {'stmt/s':>8} {'direct s':>9} {'outbox/direct':>14}")
    for size in args.sizes:
        batch = statements(size)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(args.db or str(Path(tmp) / "store.sqlite3"))
            forwarder = XapiForwarder(endpoint, store, batch_size=args.batch, client=client, start=False)
            for start in range(0, size, 1000):
                forwarder.outbox.add(batch[start : start + 1000])
            CaptureHandler.received = 0
            began = time.perf_counter()
            assert forwarder.send_due() and forwarder.pending() == 0
            drained = time.perf_counter() - began
            assert CaptureHandler.received == size, CaptureHandler.received
            began = time.perf_counter()
            for start in range(0, size, args.batch):
                body = (
                    "["
                    + ",".join(json.dumps(s, separators=(",", ":")) for s in batch[start : start + args.batch])
                    + "]"
                )
                client.post(
                    endpoint + "statements",
                    content=body,
                    headers={"Content-Type": "application/json", "X-Experience-API-Version": "1.0.3"},
                )
            direct = time.perf_counter() - began
            store.close()
        print(f"{size:>8} {drained:>8.2f} {size / drained:>8.0f} {direct:>9.2f} {drained / direct:>14.2f}")
    server.shutdown()


if __name__ == "__main__":
    main()
