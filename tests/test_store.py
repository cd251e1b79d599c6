"""The usage and feedback store: schema by migrations, idempotent writes, voiding, queries, export."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from fixtures.store import T0, backend, feedback, solve, store, store_url  # noqa: F401 (fixtures)
from trm_modules.codec import TaskCodec
from trm_modules.records import FeedbackEvent, SolveRecord
from trm_modules.store import (
    Store,
    StoreError,
    export_feedback_dataset,
    head_revision,
    module_stats,
    recent_solves,
    resolve_db_url,
)
from trm_modules.store.database import current_revision
from trm_modules.store.models import Base, Context, Feedback, Solve
from trm_modules.store.items import check_item


class ParityCodec(TaskCodec):
    """A task small enough for tests: the parity of a few bits."""

    name = "parity-test"

    def __init__(self, bits: int = 3) -> None:
        self.bits = bits

    @property
    def params(self):
        return {"bits": self.bits}

    @property
    def vocab_size(self):
        return 4

    @property
    def seq_len(self):
        return self.bits

    def input_schema(self):
        return {"type": "object"}

    def output_schema(self):
        return {"type": "object"}

    def encode_input(self, data):
        return np.array(data["bits"]) + 1

    def encode_output(self, data, data_in=None):
        return np.array([data["parity"] + 1])

    def decode_output(self, tokens, data_in):
        return {"parity": int(tokens[0]) - 1}

    def check(self, data_in, data_out):
        return data_out.get("parity") == sum(data_in["bits"]) % 2

    def reference_solution(self, data_in):
        return {"parity": sum(data_in["bits"]) % 2}

    def generate(self, rng, n, **difficulty):
        return []


def count(store: Store, model) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model))


# -- schema -----------------------------------------------------------------------------------


def test_fresh_database_is_migrated_to_the_shipped_head_on_first_use(store):
    store.write([solve(1)])
    assert current_revision(store.engine) == head_revision()


def test_migrations_create_exactly_the_tables_and_columns_of_the_store_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def store_table(name, type_, _parent):  # other areas (the server's api_tokens) migrate their own tables here
        return type_ != "table" or name in Base.metadata.tables

    store.ensure_schema()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": store_table})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_db_upgrade_command_migrates_the_database_given_with_db(tmp_path):
    from trm_modules.cli import app

    path = tmp_path / "cli.sqlite3"
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert head_revision() in result.output
    assert current_revision(Store(str(path)).engine) == head_revision()


def test_db_path_becomes_an_absolute_sqlite_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_db_url("here.db") == f"sqlite:///{tmp_path / 'here.db'}"


def test_unsupported_database_url_is_refused_with_the_supported_ones():
    with pytest.raises(StoreError, match="unsupported database 'mysql'.*sqlite.*postgresql"):
        resolve_db_url("mysql://u@h/db")


# -- writes -----------------------------------------------------------------------------------


def test_writing_the_same_solve_twice_stores_it_once(store):
    record = solve(1)
    store.write([record, record])
    store.write([record])
    assert count(store, Solve) == 1


def test_writing_the_same_feedback_event_twice_stores_it_once(store):
    event = feedback("solve-x", "correct")
    store.write([event])
    store.write([event, event])
    assert count(store, Feedback) == 1


def test_solves_from_the_same_course_and_activity_share_one_context_row(store):
    store.write([solve(1), solve(2)])
    store.write([solve(3), solve(4, course="geometry")])
    assert count(store, Context) == 2


def test_solve_fields_and_utc_timestamps_round_trip(store):
    record = solve(5, valid=None, output=None)
    store.write([record])
    [summary] = recent_solves(store)
    assert (summary.id, summary.course, summary.learner, summary.valid, summary.output) == (
        record.id,
        "algebra-1",
        "learner-2",
        None,
        None,
    )
    assert summary.created_at == record.created_at and summary.created_at.tzinfo == timezone.utc


def test_void_naming_an_unknown_event_is_returned_as_rejected_and_the_rest_of_the_batch_is_stored(store):
    good = feedback("s1", "correct")
    bad = feedback("s1", "void", voids="no-such-event")
    rejected = store.write([good, bad])
    assert [r.item.id for r in rejected] == [bad.id]
    assert count(store, Feedback) == 1


def test_void_may_retract_an_event_written_in_the_same_batch(store):
    verdict = feedback("s1", "correct")
    store.write([feedback("s1", "void", voids=verdict.id), verdict])
    assert count(store, Feedback) == 2


def test_void_without_a_target_is_refused_when_the_event_is_built():
    with pytest.raises(ValueError, match="must name the id of the event it retracts"):
        feedback("s1", "void")


def test_void_without_a_target_is_refused_before_it_is_accepted():
    with pytest.raises(StoreError, match="names no event in 'voids'"):
        check_item(FeedbackEvent.model_construct(**{**dict(feedback("s1", "correct")), "kind": "void"}))


def test_overlong_id_is_refused_when_the_record_is_built():
    with pytest.raises(ValueError, match="at most 128 characters"):
        solve(1, id="x" * 129)


def test_overlong_id_is_refused_before_it_is_accepted():
    with pytest.raises(StoreError, match="at most 128"):
        check_item(SolveRecord.model_construct(**{**dict(solve(1)), "id": "x" * 129}))


def test_installed_package_keeps_the_codec_and_reinstalling_is_a_no_op(store):
    for _ in range(2):
        store.record_installed_package(
            name="parity",
            version="1.0.0",
            digest="sha256:aa",
            codec="parity-test",
            codec_params={"bits": 3},
            source="registry",
        )
    assert len(store.installed_packages()) == 1
    assert store.installed_package("parity").codec_params == {"bits": 3}


# -- effective feedback and queries --------------------------------------------------------------


def test_voided_verdict_no_longer_decides_the_outcome(store):
    record = solve(1)
    early = feedback(record.id, "correct", 0)
    late = feedback(record.id, "incorrect", 1)
    store.write([record, early, late])
    assert recent_solves(store)[0].outcome == "incorrect"
    store.write([feedback(record.id, "void", 2, voids=late.id)])
    assert recent_solves(store)[0].outcome == "correct"


def test_solve_without_verdict_has_unknown_outcome_even_with_comments_and_ratings(store):
    record = solve(1)
    store.write([record, feedback(record.id, "comment", value="nice"), feedback(record.id, "rating", value=0.5)])
    assert recent_solves(store)[0].outcome == "unknown"


def test_correction_counts_as_incorrect(store):
    record = solve(1)
    store.write([record, feedback(record.id, "correction", corrected_output={"parity": 1})])
    assert recent_solves(store)[0].outcome == "incorrect"


def test_logs_filter_by_module_course_and_outcome_newest_first(store):
    records = [solve(n) for n in range(6)] + [solve(9, module="maze"), solve(10, course="geometry")]
    store.write(
        records
        + [feedback(records[1].id, "correct"), feedback(records[3].id, "correct"), feedback(records[4].id, "incorrect")]
    )
    found = recent_solves(store, module="parity", course="algebra-1", outcome="correct")
    assert [s.id for s in found] == [records[3].id, records[1].id]
    assert len(recent_solves(store, limit=3)) == 3


def test_logs_command_prints_one_json_document_per_solve(store):
    from trm_modules.cli import app

    store.write([solve(1), solve(2)])
    result = CliRunner().invoke(app, ["logs", "--module", "parity", "--json", "--db", store.url])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [solve(2).id, solve(1).id]


def test_stats_gives_accuracy_from_effective_feedback_by_version_and_course(store):
    v1 = [solve(n, version="1.0.0") for n in range(4)]
    v2 = [solve(n, version="2.0.0", course="geometry") for n in range(2)]
    wrong = feedback(v1[2].id, "incorrect")
    store.write(
        v1
        + v2
        + [
            feedback(v1[0].id, "correct"),
            feedback(v1[1].id, "incorrect"),
            wrong,
            feedback(v1[2].id, "void", voids=wrong.id),
            feedback(v2[0].id, "correct"),
        ]
    )
    stats = module_stats(store, "parity")
    assert (stats.by_version["1.0.0"].with_verdict, stats.by_version["1.0.0"].accuracy) == (2, 0.5)
    assert stats.by_version["2.0.0"].accuracy == 1.0
    assert stats.by_course["geometry"].solves == 2 and stats.overall.accuracy == pytest.approx(2 / 3)


def test_stats_gives_steps_distribution_and_latency_percentiles(store):
    store.write([solve(n, latency_ms=float(n + 1)) for n in range(100)])
    stats = module_stats(store, "parity").overall
    assert stats.steps == {1: 25, 2: 25, 3: 25, 4: 25}
    assert (stats.latency_ms.p50, stats.latency_ms.p90, stats.latency_ms.p99) == pytest.approx((50.5, 90.1, 99.01))


def test_stats_of_a_module_without_solves_is_an_empty_report_naming_the_modules_that_have_solves(store):
    store.write([solve(1)])
    stats = module_stats(store, "sudoku")
    assert (stats.overall.solves, stats.by_version, stats.by_course) == (0, {}, {})
    assert stats.overall.latency_ms is None and stats.modules_with_solves == ["parity"]
    assert module_stats(store, "parity").modules_with_solves is None


def test_stats_command_prints_json(store):
    from trm_modules.cli import app

    store.write([solve(1)])
    result = CliRunner().invoke(app, ["stats", "parity", "--json", "--db", store.url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["overall"]["solves"] == 1


# -- feedback export -----------------------------------------------------------------------------


def read_train(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_takes_corrections_confirmations_and_solver_answers_for_failures(store, tmp_path):
    corrected, confirmed, wrong, unknown = solve(1), solve(2), solve(3), solve(4)
    store.write(
        [
            corrected,
            confirmed,
            wrong,
            unknown,
            feedback(corrected.id, "correction", corrected_output={"parity": 0}),
            feedback(confirmed.id, "correct"),
            feedback(wrong.id, "incorrect"),
        ]
    )
    summary = export_feedback_dataset(store, "parity", tmp_path, codec=ParityCodec())
    examples = read_train(summary.train_path)
    assert [(e["input"], e["output"], e["source"]) for e in examples] == [
        (corrected.input, {"parity": 0}, "correction"),
        (confirmed.input, confirmed.output, "confirmed"),
        (wrong.input, {"parity": 1}, "solver"),  # bits [1, 1, 1]
    ]


def test_export_replaces_a_correction_the_codec_finds_invalid_by_the_solver_answer(store, tmp_path):
    record = solve(1)  # bits [1, 0, 1]: parity 0
    store.write([record, feedback(record.id, "correction", corrected_output={"parity": 1})])
    summary = export_feedback_dataset(store, "parity", tmp_path, codec=ParityCodec())
    assert summary.excluded == {"correction_rejected_by_codec": 1}
    assert read_train(summary.train_path) == [{"input": record.input, "output": {"parity": 0}, "source": "solver"}]


def test_export_without_solver_labels_takes_labels_only_from_people(store, tmp_path):
    corrected, confirmed, wrong, unjudged_invalid = solve(1), solve(2), solve(3), solve(4, valid=False)
    store.write(
        [
            corrected,
            confirmed,
            wrong,
            unjudged_invalid,
            feedback(corrected.id, "correction", corrected_output={"parity": 0}),
            feedback(confirmed.id, "correct"),
            feedback(wrong.id, "incorrect"),
        ]
    )
    summary = export_feedback_dataset(store, "parity", tmp_path, codec=ParityCodec(), solver_labels=False)
    assert [e["source"] for e in read_train(summary.train_path)] == ["correction", "confirmed"]
    assert summary.counts == {"correction": 1, "confirmed": 1, "solver": 0}
    assert summary.excluded == {"failure_without_correction": 2}
    assert json.loads(summary.data_card_path.read_text())["solver_labels"] is False


def test_export_without_solver_labels_drops_a_correction_the_codec_rejects(store, tmp_path):
    record = solve(1)  # bits [1, 0, 1]: parity 0
    store.write([record, feedback(record.id, "correction", corrected_output={"parity": 1})])
    summary = export_feedback_dataset(store, "parity", tmp_path, codec=ParityCodec(), solver_labels=False)
    assert summary.total == 0
    assert summary.excluded == {"correction_rejected_by_codec": 1, "failure_without_correction": 1}


def test_export_ignores_voided_confirmations(store, tmp_path):
    record = solve(1)
    confirmation = feedback(record.id, "correct")
    store.write([record, confirmation, feedback(record.id, "void", voids=confirmation.id)])
    assert export_feedback_dataset(store, "parity", tmp_path, codec=ParityCodec()).total == 0


def test_export_window_starts_at_since(store, tmp_path):
    early, late = solve(1, minutes=1), solve(2, minutes=60)
    store.write([early, late, feedback(early.id, "correct"), feedback(late.id, "correct")])
    summary = export_feedback_dataset(store, "parity", tmp_path, since=T0 + timedelta(minutes=30), codec=ParityCodec())
    assert [e["input"] for e in read_train(summary.train_path)] == [late.input]


def test_data_card_counts_sources_and_names_window_and_versions(store, tmp_path):
    a, b = solve(1, version="1.0.0"), solve(2, version="1.1.0")
    store.write([a, b, feedback(a.id, "correct"), feedback(b.id, "incorrect")])
    summary = export_feedback_dataset(store, "parity", tmp_path, since=T0, codec=ParityCodec())
    card = json.loads(summary.data_card_path.read_text())
    assert card["counts"] == {"correction": 0, "confirmed": 1, "solver": 1, "total": 2}
    assert card["window"]["since"] == T0.isoformat()
    assert [v["version"] for v in card["versions_seen"]] == ["1.0.0", "1.1.0"]


def test_export_finds_the_codec_of_the_installed_package(store, tmp_path):
    from trm_modules import hookimpl
    from trm_modules.plugins import get_plugin_manager

    class ParityPlugin:
        @hookimpl
        def trm_register_codecs(self):
            return [ParityCodec]

    record = solve(3)
    store.record_installed_package(
        name="parity", version="1.0.0", digest="sha256:aa", codec="parity-test", codec_params={"bits": 3}
    )
    store.write([record, feedback(record.id, "incorrect")])
    pm = get_plugin_manager()
    pm.register(ParityPlugin(), name="parity-test-plugin")
    try:
        summary = export_feedback_dataset(store, "parity", tmp_path)
    finally:
        pm.unregister(name="parity-test-plugin")
    assert summary.counts["solver"] == 1


def test_export_without_a_codec_counts_failures_it_cannot_solve(store, tmp_path):
    record = solve(3)
    store.write([record, feedback(record.id, "incorrect")])
    summary = export_feedback_dataset(store, "parity", tmp_path)
    assert summary.total == 0 and summary.excluded == {"no_codec": 1}


def test_feedback_export_command_writes_train_and_data_card(store, tmp_path):
    from trm_modules.cli import app

    record = solve(1)
    store.write([record, feedback(record.id, "correct")])
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["feedback", "export", "parity", "--since", "2025-03-01", "-o", str(out), "--db", store.url]
    )
    assert result.exit_code == 0, result.output
    assert read_train(out / "train.jsonl") == [{"input": record.input, "output": record.output, "source": "confirmed"}]


def test_feedback_export_command_can_leave_out_solver_labels(store, tmp_path):
    from trm_modules.cli import app

    record = solve(3)
    store.write([record, feedback(record.id, "incorrect")])
    out = tmp_path / "export"
    result = CliRunner().invoke(
        app, ["feedback", "export", "parity", "-o", str(out), "--db", store.url, "--no-solver-labels"]
    )
    assert result.exit_code == 0, result.output
    card = json.loads((out / "data_card.json").read_text())
    assert (card["solver_labels"], card["excluded"]) == (False, {"failure_without_correction": 1})
    assert (out / "data_card.json").exists()


def test_feedback_export_command_explains_a_bad_since(tmp_path):
    from trm_modules.cli import app

    result = CliRunner().invoke(app, ["feedback", "export", "parity", "--since", "yesterday", "-o", str(tmp_path)])
    assert result.exit_code != 0 and "ISO 8601" in result.output
