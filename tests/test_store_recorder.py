"""Recording off the solve path: batching, acknowledgement, the journal, the host hooks, and crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pluggy
import pytest
from sqlalchemy import func, select

from fixtures.store import (
    backend,  # noqa: F401
    closed_port_postgres_url,  # noqa: F401
    database_url,  # noqa: F401
    feedback,  # noqa: F401
    solve,  # noqa: F401
    store,  # noqa: F401
    store_url,  # noqa: F401
)
from trm_modules.store import Journal, Recorder, RecorderClosed, Store, StorePlugin
from trm_modules.store.models import Feedback, Solve


def stored_ids(store: Store, model) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(model.id)))


def test_recorder_writes_queued_records_when_flushed(store, tmp_path):
    with Recorder(store, journal_path=tmp_path / "journal.jsonl", flush_interval_s=10) as recorder:
        tickets = [recorder.record_solve(solve(n)) for n in range(3)]
        assert recorder.flush(timeout=10)
        assert all(ticket.done() for ticket in tickets)
        assert len(stored_ids(store, Solve)) == 3


def test_durable_record_returns_only_once_committed(store, tmp_path):
    with Recorder(store, journal_path=tmp_path / "journal.jsonl", flush_interval_s=10) as recorder:
        recorder.record_feedback(feedback("s1", "correct"), durable=True)
        assert stored_ids(store, Feedback) == [feedback("s1", "correct").id]


def test_batch_is_written_once_batch_size_items_are_queued(store, tmp_path):
    with Recorder(store, journal_path=tmp_path / "journal.jsonl", batch_size=4, flush_interval_s=60) as recorder:
        tickets = [recorder.record_solve(solve(n)) for n in range(4)]
        assert tickets[-1].wait(timeout=10)


def test_close_writes_what_is_still_queued(store, tmp_path):
    recorder = Recorder(store, journal_path=tmp_path / "journal.jsonl", flush_interval_s=60)
    for n in range(5):
        recorder.record_solve(solve(n))
    recorder.close()
    assert len(stored_ids(store, Solve)) == 5


def test_recording_after_close_is_refused(store, tmp_path):
    recorder = Recorder(store, journal_path=tmp_path / "journal.jsonl")
    recorder.close()
    with pytest.raises(RecorderClosed):
        recorder.record_solve(solve(1))


def test_batches_go_to_the_journal_while_the_database_is_down_and_are_replayed_into_it(backend, tmp_path):
    journal = tmp_path / "journal.jsonl"
    records = [solve(n) for n in range(20)]
    with Recorder(closed_port_postgres_url(), journal_path=journal) as down:
        for record in records:
            down.record_solve(record)
        down.record_feedback(feedback(records[0].id, "correct"), durable=True)
        assert down.stats.journaled == 21
    with database_url(backend, tmp_path) as url, Recorder(url, journal_path=journal) as up:
        assert up.flush(timeout=30)
        assert sorted(stored_ids(up.store, Solve)) == sorted(r.id for r in records)
        assert len(stored_ids(up.store, Feedback)) == 1
        assert not Journal(journal).has_entries()


def test_replaying_a_journal_twice_stores_each_item_once(store, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([solve(1), feedback(solve(1).id, "correct")])
    saved = journal.path.read_bytes()
    assert journal.replay(store.write) == 2
    journal.path.write_bytes(saved)
    assert journal.replay(store.write) == 2
    assert (len(stored_ids(store, Solve)), len(stored_ids(store, Feedback))) == (1, 1)


def test_a_torn_journal_line_is_skipped_and_the_next_append_stays_whole(store, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([solve(1)])
    with open(journal.path, "ab") as raw:
        raw.write(b'{"t":"solve","r":{"id":"torn')  # a crash in the middle of an append
    journal.append([solve(2)])
    assert journal.replay(store.write) == 2
    assert sorted(stored_ids(store, Solve)) == sorted([solve(1).id, solve(2).id])


def test_void_naming_an_unknown_event_is_kept_as_a_dead_letter(store, tmp_path):
    with Recorder(store, journal_path=tmp_path / "journal.jsonl") as recorder:
        recorder.record_feedback(feedback("s1", "void", voids="no-such-event"), durable=True)
        assert recorder.stats.rejected == 1
    [letter] = store.dead_letters()
    assert (letter.item_type, "no-such-event" in letter.entry) == ("feedback", True)


def test_store_plugin_records_solves_and_feedback_emitted_through_the_host_hooks(store, tmp_path):
    from trm_modules import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugin = StorePlugin(Recorder(store, journal_path=tmp_path / "journal.jsonl"))
    pm.register(plugin)
    pm.hook.trm_on_solve(record=solve(1))
    pm.hook.trm_on_feedback(event=feedback(solve(1).id, "correct"))
    plugin.recorder.flush(timeout=10)
    assert (stored_ids(store, Solve), len(stored_ids(store, Feedback))) == ([solve(1).id], 1)
    plugin.close()


def test_store_plugin_remembers_an_installed_package_with_its_codec(store, tmp_path):
    from types import SimpleNamespace

    task = SimpleNamespace(codec="sudoku", params={"size": 4})
    package = SimpleNamespace(
        manifest=SimpleNamespace(name="sudoku-4", version="1.0.0", task=task),
        digest="sha256:ab",
        path=tmp_path / "sudoku-4-1.0.0.trm",
    )
    plugin = StorePlugin(Recorder(store, journal_path=tmp_path / "journal.jsonl"))
    plugin.package_installed(package)
    installed = store.installed_package("sudoku-4")
    assert (installed.codec, installed.codec_params, installed.source) == ("sudoku", {"size": 4}, str(package.path))
    plugin.close()


def test_the_same_recorder_replays_its_journal_once_the_database_answers_again(store, tmp_path, monkeypatch):
    from trm_modules.store import StoreUnavailable

    real_write, failures = store.write, iter(range(2))

    def write_failing_twice(items):
        if next(failures, None) is not None:
            raise StoreUnavailable("simulated outage")
        return real_write(items)

    monkeypatch.setattr(store, "write", write_failing_twice)
    with Recorder(
        store, journal_path=tmp_path / "journal.jsonl", replay_interval_s=0.05, min_retry_delay_s=0.05
    ) as recorder:
        recorder.record_solve(solve(1), durable=True)  # outage: journaled
        assert recorder.stats.journaled == 1
        deadline = time.monotonic() + 10
        while Journal(tmp_path / "journal.jsonl").has_entries() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stored_ids(store, Solve) == [solve(1).id]


def test_a_full_queue_refuses_new_records_with_recorder_overloaded(store, tmp_path, monkeypatch):
    import threading

    from trm_modules.store import RecorderOverloaded

    release = threading.Event()
    real_write = store.write
    monkeypatch.setattr(store, "write", lambda items: (release.wait(10), real_write(items))[1])
    recorder = Recorder(
        store, journal_path=tmp_path / "journal.jsonl", batch_size=1, max_queue=2, enqueue_timeout_s=0.1
    )
    try:
        with pytest.raises(RecorderOverloaded, match="stayed full"):
            for n in range(10):
                recorder.record_solve(solve(n))
    finally:
        release.set()
        recorder.close()


def test_records_still_queued_at_interpreter_exit_are_written(store_url, tmp_path):
    script = textwrap.dedent("""
        import sys
        from trm_modules.records import SolveRecord
        from trm_modules.store import Recorder
        recorder = Recorder(sys.argv[1], journal_path=sys.argv[2], flush_interval_s=60)
        for n in range(50):
            recorder.record_solve(SolveRecord(id=f"exit-{n}", module="m", version="1", digest="sha256:00",
                                              input={}, output={}, steps=1, confidence=1.0, latency_ms=1.0,
                                              device="cpu"))
    """)
    subprocess.run([sys.executable, "-c", script, store_url, str(tmp_path / "journal.jsonl")], check=True, timeout=60)
    with Store(store_url).session() as session:
        assert session.scalar(select(func.count()).select_from(Solve)) == 50


def test_concurrent_first_uses_of_a_fresh_database_migrate_it_once(store_url):
    from concurrent.futures import ThreadPoolExecutor

    from trm_modules.store import head_revision
    from trm_modules.store.database import current_revision

    stores = [Store(store_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: s.ensure_schema(), stores))
    assert current_revision(stores[0].engine) == head_revision()
    for opened in stores:
        opened.close()


# -- crash safety ----------------------------------------------------------------------------

WRITER_THREADS, EVENTS_PER_THREAD = 8, 5_000
CRASH_WRITER = textwrap.dedent("""
    import os, sys, threading
    from trm_modules.records import FeedbackEvent, SolveContext, SolveRecord
    from trm_modules.store import Recorder

    url, journal, acked_path, threads, per_thread = sys.argv[1:4] + [int(a) for a in sys.argv[4:6]]
    recorder = Recorder(url, journal_path=journal, batch_size=500, flush_interval_s=0.01)
    acked = os.open(acked_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    context = SolveContext(platform="lms", course="c1", activity="a1", learner="l1")

    def write(thread):
        for start in range(0, per_thread, 100):
            ids = [f"t{thread}-{i}" for i in range(start, min(start + 100, per_thread))]
            for i, event_id in enumerate(ids, start):
                if i % 5 == 4:
                    ticket = recorder.record_feedback(FeedbackEvent(id=event_id, solve_id=f"t{thread}-{i - 1}",
                                                                    kind="correct"))
                else:
                    ticket = recorder.record_solve(SolveRecord(
                        id=event_id, module="crash", version="1", digest="sha256:00", context=context,
                        input={"cells": list(range(40))}, output={"cells": list(range(40))}, steps=3,
                        confidence=0.5, latency_ms=1.0, device="cpu"))
            ticket.wait()  # acknowledgement is in submission order: the whole chunk is durable
            os.write(acked, ("\\n".join(ids) + "\\n").encode())

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print("finished without being killed", flush=True)
""")


def run_writer_and_kill_it_mid_run(url: str, journal, acked, kill_after_acked: int) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CRASH_WRITER,
            url,
            str(journal),
            str(acked),
            str(WRITER_THREADS),
            str(EVENTS_PER_THREAD),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if acked.exists() and acked.read_bytes().count(b"\n") >= kill_after_acked:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the writer ended on its own or failed: {stderr.decode()[-2000:]}"


@pytest.mark.parametrize("database_up_during_run", [True, False], ids=["database-up", "database-down"])
def test_every_acknowledged_event_is_stored_exactly_once_after_a_kill_9_and_replay(
    backend, tmp_path, database_up_during_run
):
    journal, acked = tmp_path / "journal.jsonl", tmp_path / "acked.txt"
    total = WRITER_THREADS * EVENTS_PER_THREAD
    with database_url(backend, tmp_path) as url:
        Store(url).ensure_schema()
        run_writer_and_kill_it_mid_run(
            url if database_up_during_run else closed_port_postgres_url(), journal, acked, kill_after_acked=total // 20
        )
        acknowledged = acked.read_text().split()
        assert total // 20 <= len(acknowledged) < total
        with Recorder(url, journal_path=journal) as restarted:
            assert restarted.flush(timeout=60)
            with restarted.store.session() as session:
                stored = list(session.scalars(select(Solve.id))) + list(session.scalars(select(Feedback.id)))
        assert set(acknowledged) <= set(stored)
        assert len(stored) == len(set(stored)) and set(stored) <= {
            f"t{t}-{i}" for t in range(WRITER_THREADS) for i in range(EVENTS_PER_THREAD)
        }
