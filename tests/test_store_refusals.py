"""A bad row never stops recording: refused rows become dead letters, the writer outlives any error."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from fixtures.store import backend, feedback, solve, store, store_url  # noqa: F401
from trm_modules.records import SolveContext, SolveRecord
from trm_modules.store import Journal, Recorder, Store
from trm_modules.store.models import Solve


def stored_solve_ids(store: Store) -> list[str]:
    with store.session() as session:
        return sorted(session.scalars(select(Solve.id)))


def unvalidated_solve(n: int, **context: str) -> SolveRecord:
    """A record built without validation: what a buggy or hostile caller could hand the recorder."""
    good = solve(n)
    return SolveRecord.model_construct(**{**dict(good), "context": SolveContext.model_construct(**context)})


def test_a_lone_surrogate_becomes_a_dead_letter_and_the_rest_of_its_batch_is_written(store, tmp_path):
    bad = unvalidated_solve(1, learner="\ud800")
    with Recorder(store, journal_path=tmp_path / "journal.jsonl", flush_interval_s=10) as recorder:
        for item in (solve(0), bad, solve(2)):
            ticket = recorder.record_solve(item)
        assert ticket.wait(30)
        assert (recorder.stats.written, recorder.stats.rejected) == (2, 1)
    assert stored_solve_ids(store) == sorted([solve(0).id, solve(2).id])
    [letter] = store.dead_letters()
    assert (letter.item_id, "\\ud800" in letter.entry) == (bad.id, True)


def test_recording_goes_on_after_a_refused_row(store, tmp_path):
    with Recorder(store, journal_path=tmp_path / "journal.jsonl") as recorder:
        recorder.record_solve(unvalidated_solve(1, learner="\ud800"), durable=True)
        recorder.record_solve(solve(2), durable=True)
        assert recorder.database_available
    assert stored_solve_ids(store) == [solve(2).id]


@pytest.mark.postgres
def test_a_value_longer_than_its_column_becomes_a_dead_letter_on_postgresql(tmp_path):
    from fixtures.store import database_url

    with database_url("postgresql", tmp_path) as url, Recorder(url, journal_path=tmp_path / "j.jsonl") as recorder:
        recorder.record_solve(unvalidated_solve(1, learner="x" * 201), durable=True)
        recorder.record_solve(solve(2), durable=True)
        assert (recorder.stats.rejected, recorder.database_available) == (1, True)
        assert stored_solve_ids(recorder.store) == [solve(2).id]
        assert "too long" in recorder.store.dead_letters()[0].reason
        assert not Journal(tmp_path / "j.jsonl").has_entries()


def test_a_journaled_refused_row_is_dead_lettered_on_replay_and_the_replay_goes_on(store, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([solve(0), unvalidated_solve(1, learner="\ud800"), solve(2)])
    with Recorder(store, journal_path=journal.path) as recorder:
        assert recorder.flush(timeout=30)
        assert recorder.stats.rejected == 1
    assert stored_solve_ids(store) == sorted([solve(0).id, solve(2).id])
    assert not journal.has_entries()


def test_the_writer_is_restarted_after_an_unexpected_error_and_keeps_its_batch(store, tmp_path, monkeypatch):
    recorder = Recorder(store, journal_path=tmp_path / "journal.jsonl")
    monkeypatch.setattr(recorder, "_persist", _failing_once(recorder._persist))
    try:
        recorder.record_solve(solve(1), durable=True)
        recorder.record_solve(solve(2), durable=True)
        assert recorder.stats.writer_restarts == 1
        assert "a bug in the persist step" in recorder.stats.last_writer_error
    finally:
        recorder.close()
    assert stored_solve_ids(store) == sorted([solve(1).id, solve(2).id])


def _failing_once(function):
    failed = threading.Event()

    def wrapper(*args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in the persist step")
        return function(*args, **kwargs)

    return wrapper


def test_trm_logs_dead_letter_shows_refused_items_with_their_reason(store, tmp_path):
    import json

    from typer.testing import CliRunner

    from trm_modules.cli import app

    with Recorder(store, journal_path=tmp_path / "journal.jsonl") as recorder:
        recorder.record_feedback(feedback("s1", "void", voids="no-such-event"), durable=True)
    result = CliRunner().invoke(app, ["logs", "--dead-letter", "--json", "--db", store.url])
    assert result.exit_code == 0, result.output
    [letter] = [json.loads(line) for line in result.output.splitlines()]
    assert (letter["type"], letter["id"], bool(letter["reason"])) == (
        "feedback",
        feedback("s1", "void", voids="x").id,
        True,
    )


def test_the_sqlite_store_and_the_journal_are_readable_by_their_owner_only(tmp_path):
    import os
    import stat

    with Recorder(f"sqlite:///{tmp_path / 'store.sqlite3'}", journal_path=tmp_path / "journal.jsonl") as recorder:
        recorder.record_solve(solve(1), durable=True)
        recorder.journal.append([solve(2)])
    for name in ("store.sqlite3", "journal.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
