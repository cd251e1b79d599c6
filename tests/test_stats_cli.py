"""``trm stats``: the report and the comparison of the HTTP routes from one command, filtered, as text, JSON or CSV.

The figures printed are those of ``store.insights`` / ``store.comparison`` (the CLI is a thin
shell over them), on a simulated course whose verdicts are known.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from fixtures.store import T0, backend, store, store_url  # noqa: F401 (fixtures)
from test_insights import COURSE, simulated_course
from trm_modules.cli import app
from trm_modules.store.comparison import compare_versions


def trm(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_course_filter_prints_each_version_in_the_course_with_its_interval(store):
    sent = simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.92})
    simulated_course(store, accuracy={"1.0.0": 0.5}, course="other-course", learners=10, seed=2)
    output = trm("stats", "maze-9x9", "--course", COURSE, "--db", store.url)
    lines = [line for line in output.splitlines()[1:] if line.strip()]
    assert [line.split()[:2] for line in lines] == [["1.0.0", COURSE], ["1.2.0", COURSE]]
    for line in lines:
        cell = sent[(line.split()[0], COURSE)]
        accuracy = cell["correct"] / cell["verdicts"]
        assert f"{accuracy:.3f}" in line and "[" in line
        assert line.split()[4:7] == [str(cell["solves"]), str(len(cell["learners"])), str(cell["verdicts"])]


def test_csv_is_the_report_table_and_reconciles_with_the_verdicts_sent(store):
    sent = simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.92})
    rows = list(csv.DictReader(io.StringIO(trm("stats", "maze-9x9", "--course", COURSE, "--csv", "--db", store.url))))
    assert [(r["version"], r["course"]) for r in rows] == [("1.0.0", COURSE), ("1.2.0", COURSE)]
    for row in rows:
        cell = sent[(row["version"], COURSE)]
        assert (int(row["solves"]), int(row["learners"]), int(row["verdicts"]), int(row["correct"])) == (
            cell["solves"],
            len(cell["learners"]),
            cell["verdicts"],
            cell["correct"],
        )
        assert float(row["accuracy_low"]) < float(row["accuracy"]) < float(row["accuracy_high"])


def test_by_cohort_and_day_within_a_window(store):
    simulated_course(store, accuracy={"1.0.0": 0.8, "1.2.0": 0.92})
    since, until = T0.isoformat(), (T0 + timedelta(hours=24)).isoformat()  # learners 0-23 (one solve burst an hour)
    report = json.loads(
        trm(
            "stats",
            "maze-9x9",
            "--course",
            COURSE,
            "--by",
            "version,cohort",
            "--by",
            "day",
            "--since",
            since,
            "--until",
            until,
            "--json",
            "--db",
            store.url,
        )
    )
    assert report["filters"]["by"] == ["version", "cohort", "day"]
    assert {(g["cohort"], g["period"]) for g in report["groups"]} == {
        ("A", "2025-03-01"),
        ("B", "2025-03-01"),
        ("A", "2025-03-02"),
        ("B", "2025-03-02"),
    }
    assert sum(g["learners"] for g in report["groups"] if g["period"] == "2025-03-01") == 12  # hours 12-23 of day 1
    assert sum(g["solves"] for g in report["groups"]) == 24 * 6


def test_other_tables_as_csv(store):
    simulated_course(store, accuracy={"1.0.0": 0.5, "1.2.0": 0.9})
    failures = list(
        csv.DictReader(io.StringIO(trm("stats", "maze-9x9", "--csv", "--table", "failures", "--db", store.url)))
    )
    assert failures and all(int(r["failures"]) > 0 for r in failures)
    reliability = list(
        csv.DictReader(io.StringIO(trm("stats", "maze-9x9", "--csv", "--table", "reliability", "--db", store.url)))
    )
    assert {r["version"] for r in reliability} == {"1.0.0", "1.2.0"}


def test_compare_names_the_better_version_with_the_figures_of_the_library(store):
    simulated_course(store, accuracy={"1.0.0": 0.6, "1.2.0": 0.9}, learners=80, puzzles=8)
    expected = compare_versions(store, "maze-9x9", "1.0.0", "1.2.0", course=COURSE)
    text = trm("stats", "maze-9x9", "--compare", "1.0.0", "1.2.0", "--course", COURSE, "--db", store.url)
    assert "decision: candidate-better" in text and f"{expected.difference:+.3f}" in text
    as_json = json.loads(
        trm("stats", "maze-9x9", "--compare", "1.0.0", "1.2.0", "--course", COURSE, "--json", "--db", store.url)
    )
    assert as_json == json.loads(expected.model_dump_json())
    rows = list(
        csv.DictReader(
            io.StringIO(
                trm("stats", "maze-9x9", "--compare", "1.0.0", "1.2.0", "--course", COURSE, "--csv", "--db", store.url)
            )
        )
    )
    assert [(r["role"], r["version"]) for r in rows] == [("baseline", "1.0.0"), ("candidate", "1.2.0")]
    assert all(r["decision"] == "candidate-better" for r in rows)
    assert int(rows[1]["verdicts"]) == expected.candidate.verdicts


@pytest.mark.parametrize(
    "args, says",
    [
        (["--since", "yesterday"], "--since"),
        (["--by", "month"], "month"),
        (["--compare", "1.0.0", "1.0.0"], "two different versions"),
        (["--csv", "--table", "nope"], "--table"),
        (["--csv", "--json"], "--csv"),
    ],
)
def test_bad_options_are_refused_with_what_was_wrong(store, args, says):
    simulated_course(store, accuracy={"1.0.0": 0.8}, learners=4, puzzles=1)
    result = CliRunner().invoke(app, ["stats", "maze-9x9", *args, "--db", store.url])
    assert result.exit_code != 0 and says in result.output, result.output


def test_an_unknown_module_says_which_modules_have_solves(store):
    simulated_course(store, accuracy={"1.0.0": 0.8}, learners=4, puzzles=1)
    result = CliRunner().invoke(app, ["stats", "sudoku", "--course", COURSE, "--db", store.url])
    assert result.exit_code != 0 and "maze-9x9" in result.output
