"""Acknowledged means stored: `kill -9` of a real `trm serve` under concurrent solves and feedback,
at random points, loses no event the API answered 200/202 and stores none twice (SQLite, PostgreSQL)."""

from __future__ import annotations

import random
import threading

import httpx
import pytest
from sqlalchemy import func, select

from fixtures.faults import ServeProcess
from fixtures.server import MODULE, build_registry, puzzle
from fixtures.store import BACKENDS, database_url
from trm_modules.server import TokenStore
from trm_modules.store import Recorder, Store
from trm_modules.store.models import Feedback, Solve

CLIENTS = 6
KILLS = 2


class Acknowledged:
    """What the API acknowledged, shared by the client threads; wakes whoever waits for a count."""

    def __init__(self) -> None:
        self.solves: set[str] = set()
        self.feedback: set[str] = set()
        self.changed = threading.Condition()

    def add(self, kind: set[str], event_id: str) -> None:
        with self.changed:
            kind.add(event_id)
            self.changed.notify_all()

    def total(self) -> int:
        return len(self.solves) + len(self.feedback)


def drive(url: str, token: str, prefix: str, acked: Acknowledged, stop: threading.Event) -> None:
    """Solve, then give feedback on the answer, until the server goes away or ``stop`` is set."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        for n in range(10**6):
            if stop.is_set():
                return
            solve_id, feedback_id = f"{prefix}-{n}", f"{prefix}-{n}-fb"
            try:
                answered = client.post(
                    f"/v1/modules/{MODULE}/solve",
                    json={
                        "input": puzzle(n % 50),
                        "client_id": solve_id,
                        "context": {"course": "fault", "learner": prefix},
                    },
                )
                if answered.status_code != 200:
                    continue
                acked.add(acked.solves, solve_id)
                given = client.post(
                    "/v1/feedback",
                    json={"id": feedback_id, "solve_id": solve_id, "kind": "correct" if n % 2 else "incorrect"},
                )
                if given.status_code in (200, 202):
                    acked.add(acked.feedback, feedback_id)
            except httpx.HTTPError:  # the server was killed under us: what it answered is what counts
                return


def run_until_killed(server: ServeProcess, token: str, round_: int, acked: Acknowledged, kill_after: int) -> None:
    stop = threading.Event()
    clients = [
        threading.Thread(target=drive, args=(server.url, token, f"r{round_}c{i}", acked, stop)) for i in range(CLIENTS)
    ]
    target = acked.total() + kill_after
    for client in clients:
        client.start()
    with acked.changed:
        assert acked.changed.wait_for(lambda: acked.total() >= target, timeout=120), "the clients stalled"
    server.kill9()  # while the clients are mid-request
    stop.set()
    for client in clients:
        client.join(60)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_acknowledged_event_is_lost_or_stored_twice_across_kill_9(backend, tmp_path):
    rng = random.Random(11)
    with database_url(backend, tmp_path) as url:
        registry = build_registry(tmp_path, {"1.0.0": 0})
        store = Store(url)
        token = TokenStore(store).create(["solve", "feedback"], name="fault")[0]
        server = ServeProcess(registry.root, url, tmp_path / "data")
        acked = Acknowledged()
        for round_ in range(KILLS):
            server.start()  # from the second round on: a restart after kill -9 on the same store and journal
            run_until_killed(server, token, round_, acked, kill_after=rng.randint(20, 120))
        with Recorder(store, journal_path=server.journal_path()) as recorder:  # what a restart replays first
            recorder.flush(60)
        with store.session() as session:
            stored_solves = set(session.scalars(select(Solve.id)))
            stored_feedback = set(session.scalars(select(Feedback.id)))
            rows = session.scalar(select(func.count()).select_from(Feedback)) + session.scalar(
                select(func.count()).select_from(Solve)
            )
        store.close()
    lost = (acked.solves - stored_solves) | (acked.feedback - stored_feedback)
    duplicated = rows - len(stored_solves) - len(stored_feedback)
    print(
        f"\nkill -9 x{KILLS} [{backend}]: acknowledged {len(acked.solves)} solves + {len(acked.feedback)} feedback, "
        f"stored {len(stored_solves)} + {len(stored_feedback)}, lost {len(lost)}, duplicated {duplicated}"
    )
    assert acked.solves and acked.feedback
    assert (sorted(lost), duplicated) == ([], 0)
