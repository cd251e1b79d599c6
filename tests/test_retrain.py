"""Retraining from feedback: lineage, the not-worse gate, and promote/rollback in the registry."""

import json
from pathlib import Path

import numpy as np
import pytest

from trm_modules.package import open_package
from trm_modules.lifecycle import pack_run
from trm_modules.package.registry import DirectoryRegistry
from trm_modules.errors import TRMError
from trm_modules.train import Trainer, load_recipe
from trm_modules.lifecycle.retrain import bump_minor, recipe_of, retrain

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
    "data.test_puzzles": 32,
    "train.eval_every": 1000,
    "train.warmup_steps": 1,
    "train.steps": 2,
}


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    work = tmp_path_factory.mktemp("parent")
    recipe_file = work / "tiny.toml"
    recipe = load_recipe(RECIPE, TINY)
    from trm_modules.lifecycle.retrain import _dump_recipe

    recipe_file.write_text(_dump_recipe(recipe))
    Trainer(load_recipe(recipe_file), work / "run", recipe_path=recipe_file).run()
    return open_package(
        pack_run(
            work / "run",
            name="tiny-sudoku",
            version="1.0.0",
            out_path=work / "tiny-sudoku-1.0.0.trm",
            allow_failing_examples=True,
        )
    )


@pytest.fixture
def feedback_dir(parent, tmp_path):
    codec = parent.codec()
    pairs = codec.generate(np.random.default_rng(3), 20, min_givens=4, max_givens=6)
    lines = [json.dumps({"input": i, "output": o, "source": "solver"}) for i, o in pairs]
    (tmp_path / "fb").mkdir()
    (tmp_path / "fb" / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "fb" / "data_card.json").write_text(
        json.dumps(
            {
                "window": {"first_solve": "2026-11-01T00:00:00+00:00", "last_solve": "2026-11-20T00:00:00+00:00"},
                "counts": {"total": 20},
            }
        )
    )
    return tmp_path / "fb"


def test_a_package_carries_the_recipe_it_was_trained_with(parent):
    assert recipe_of(parent).train.steps == 2
    assert recipe_of(parent).model["hidden_size"] == 32


def test_retrained_package_records_its_parent_and_feedback_window(parent, feedback_dir, tmp_path):
    result = retrain(parent, feedback_dir, tmp_path / "out", steps=2, allow_failing_examples=True)
    assert result.accepted and result.version == "1.1.0"
    assert result.feedback_examples["train"] + result.feedback_examples["held_out"] == 20
    child = open_package(result.package_path)
    assert child.manifest.provenance.parent_digest == parent.digest
    assert child.manifest.provenance.feedback_window.start.startswith("2026-11-01")
    assert child.manifest.module_id == parent.manifest.module_id


def test_a_successor_that_is_worse_is_not_packed(parent, feedback_dir, tmp_path):
    # A negative tolerance demands a gain no 2-step fine-tune can make on the held-out set.
    result = retrain(parent, feedback_dir, tmp_path / "out", steps=2, tolerance=-2.0, allow_failing_examples=True)
    assert not result.accepted and result.package_path is None
    assert "held-out accuracy" in result.reason


def test_minor_version_bump():
    assert bump_minor("1.4.2") == "1.5.0" and bump_minor("2.0.0-rc.1") == "2.1.0"


def test_promote_and_rollback_move_the_active_version(parent, tmp_path):
    registry = DirectoryRegistry(tmp_path / "reg", create=True)
    registry.add(parent)
    assert registry.active_version("tiny-sudoku") == "1.0.0"
    with pytest.raises(TRMError):
        registry.promote("tiny-sudoku", "9.9.9")
    with pytest.raises(TRMError):
        registry.rollback("tiny-sudoku")
    registry.promote("tiny-sudoku", "1.0.0")
    assert registry.active_version("tiny-sudoku") == "1.0.0"
