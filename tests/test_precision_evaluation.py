"""A package says whether it keeps its answers in bf16, and ``precision auto`` believes only that.

``trm pack --outside`` with rows measured by ``bench/outside_puzzles.py --bf16`` answers the run's held-out
puzzles in fp32 and in bf16 autocast too and records ``evaluation.precision.bf16``: ``no_loss`` only when, on
every set, bf16 is right at least as often as fp32 for the first answer and the default answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_modules.lifecycle import pack_run
from trm_modules.model.precision import GemmSpeed, package_bf16_verdict, resolve_precision
from trm_modules.package import open_package
from trm_modules.precision_evaluation import compare_precisions, precision_record
from trm_modules.train import Trainer, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "registry" / "recipes" / "sudoku-4x4.toml"
TINY = {
    "model.hidden_size": 32,
    "model.num_heads": 2,
    "model.puzzle_emb_ndim": 32,
    "model.H_cycles": 1,
    "model.L_cycles": 1,
    "model.halt_max_steps": 2,
    "train.batch_size": 16,
    "data.train_puzzles": 64,
    "data.test_puzzles": 16,
    "train.eval_every": 1000,
    "train.warmup_steps": 2,
    "train.steps": 3,
}
FAST_BF16 = GemmSpeed("cpu", 256, 1, fp32_gflops=70.0, bf16_gflops=300.0)


def row(name: str, fp32: tuple[float, float], bf16: tuple[float, float]) -> dict:
    return {
        "set": name,
        "puzzles": 100,
        "fp32": {"first": fp32[0], "default": fp32[1]},
        "bf16": {"first": bf16[0], "default": bf16[1]},
        "differing_first": 0,
        "differing_default": 0,
    }


def test_no_loss_needs_every_set_and_both_answers_at_least_as_right_in_bf16():
    assert precision_record([row("held-out", (0.9, 0.99), (0.91, 0.99)), row("py-sudoku", (0.8, 1.0), (0.8, 1.0))])[
        "no_loss"
    ]
    first_lost = precision_record([row("held-out", (0.9, 0.99), (0.91, 0.99)), row("dokusan", (0.8, 1.0), (0.79, 1.0))])
    assert (
        not first_lost["no_loss"]
        and "dokusan (100): first answer 79.0% in bf16 vs 80.0% in fp32" in first_lost["summary"]
    )
    assert not precision_record([row("held-out", (0.9, 0.99), (0.9, 0.98))])["no_loss"]  # the default answer lost
    assert not precision_record([])["no_loss"]  # nothing measured proves nothing


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    Trainer(load_recipe(RECIPE, TINY), work / "run", recipe_path=RECIPE).run()
    return work / "run"


def test_compare_precisions_answers_each_set_in_both_precisions_by_the_rules(run_dir):
    package = open_package(
        pack_run(
            run_dir, name="sudoku-4x4", version="0.0.1", out_path=run_dir.parent / "a.trm", allow_failing_examples=True
        )
    )
    documents = [inp for inp, _ in package.codec().generate(__import__("numpy").random.default_rng(3), 12)]
    result = compare_precisions(package.load_model(), package.codec(), package.input_validator, {"mine": documents})
    (measured,) = result["sets"]
    assert measured["set"] == "mine" and measured["puzzles"] == 12
    for precision in ("fp32", "bf16"):
        assert 0.0 <= measured[precision]["first"] <= 1.0 and 0.0 <= measured[precision]["default"] <= 1.0
    assert 0 <= measured["differing_first"] <= 12 and "bf16 GEMM" in result["device"]


def test_a_package_packed_with_outside_bf16_rows_records_the_verdict_and_auto_reads_it(run_dir):
    outside = [
        {
            "module": "sudoku-4x4@0.0.2",
            "generator": "py-sudoku",
            "puzzles": 100,
            "first": {"valid": 0.5, "mean_steps": 1.0},
            "default": {"valid": 0.9, "mean_views": 1.5},
            "bf16_check": row("py-sudoku", (0.5, 0.9), (0.4, 0.9)),
        }
    ]
    package = open_package(
        pack_run(
            run_dir,
            name="sudoku-4x4",
            version="0.0.2",
            out_path=run_dir.parent / "b.trm",
            outside=outside,
            allow_failing_examples=True,
        )
    )
    evaluation = package.manifest.evaluation.model_dump()
    bf16 = evaluation["precision"]["bf16"]
    assert [s["set"] for s in bf16["sets"]] == ["held-out", "py-sudoku"]
    assert bf16["no_loss"] is False  # the outside generator's first answer lost 10 points in bf16
    keeps, why = package_bf16_verdict(evaluation)
    assert not keeps and "shows a loss" in why
    assert resolve_precision("auto", "cpu", evaluation, speed=FAST_BF16).precision == "fp32"
    assert "bf16 (autocast) against fp32, judged by the rules: **a loss**" in package.read_file("README.md").decode()


def test_without_bf16_rows_a_package_claims_nothing_about_bf16(run_dir):
    package = open_package(
        pack_run(
            run_dir,
            name="sudoku-4x4",
            version="0.0.3",
            out_path=run_dir.parent / "c.trm",
            allow_failing_examples=True,
            outside=[
                {
                    "module": "sudoku-4x4@0.0.3",
                    "generator": "py-sudoku",
                    "puzzles": 10,
                    "first": {"valid": 1.0, "mean_steps": 1.0},
                    "default": {"valid": 1.0, "mean_views": 1.0},
                }
            ],
        )
    )
    assert "precision" not in package.manifest.evaluation.model_dump()


def test_pack_compare_puts_other_versions_side_by_side_in_the_card(run_dir):
    from trm_modules.package.side_by_side import side_by_side_row

    other = open_package(ROOT / "registry" / "packages" / "sudoku-4x4" / "sudoku-4x4-1.0.1.trm")
    manifest = other.manifest.model_dump(mode="json", exclude_none=True)
    packed = open_package(
        pack_run(
            run_dir,
            name="sudoku-4x4",
            version="0.0.4",
            out_path=run_dir.parent / "d.trm",
            compare=[manifest],
            allow_failing_examples=True,
        )
    )
    row = side_by_side_row(manifest)
    assert row["module"] == "sudoku-4x4@1.0.1" and row["parameters"] == manifest["model"]["parameters"]
    assert row["heldout_exact"] == manifest["evaluation"]["value"]
    card = packed.read_file("README.md").decode()
    assert "Side by side with other versions of this module" in card
    assert "| sudoku-4x4@0.0.4 | TRM |" in card and "| sudoku-4x4@1.0.1 | TRM |" in card
    assert packed.manifest.evaluation.model_dump()["side_by_side"][0]["module"] == "sudoku-4x4@1.0.1"
