"""The trainer: deep supervision with halting, EMA, schedules, checkpoints, DDP and recipes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trm_modules.train import Trainer, load_recipe
from trm_modules.train.losses import deep_supervision_loss, log_stablemax
from trm_modules.train.trainer import lr_factor

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "registry" / "recipes").glob("*.toml"))
TINY = {
    "model.hidden_size": 32,
    "model.num_heads": 2,
    "model.puzzle_emb_ndim": 32,
    "model.H_cycles": 2,
    "model.L_cycles": 2,
    "model.halt_max_steps": 4,
    "train.batch_size": 32,
    "data.train_puzzles": 256,
    "data.test_puzzles": 64,
    "train.eval_every": 1000,
    "train.warmup_steps": 5,
}


def sudoku_recipe(**overrides):
    return load_recipe(ROOT / "registry" / "recipes" / "sudoku-4x4.toml", {**TINY, **overrides})


def test_stablemax_is_a_log_distribution():
    logits = torch.randn(5, 7) * 4
    assert torch.allclose(log_stablemax(logits.double()).exp().sum(-1), torch.ones(5, dtype=torch.float64))


def test_halting_target_is_whole_answer_correctness():
    labels = torch.tensor([[1, 2], [1, 2]])
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 2], [1, 0]]), 3).float() * 10
    _, metrics = deep_supervision_loss(logits, labels, torch.zeros(2))
    assert metrics["seq_correct"].tolist() == [True, False]


def test_learning_rate_warms_up_then_decays_with_cosine():
    factors = [lr_factor(s, 10, 100, "cosine", 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[50] < factors[10] and factors[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_factor(80, 10, 100, "constant", 0.1) == 1.0


def test_tiny_sudoku_training_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(sudoku_recipe(**{"train.steps": 60, "train.lr": 3e-3}), tmp_path)
    losses = []
    trainer.run(on_progress=lambda p: losses.append(p.loss))
    assert len(losses) >= 5
    assert sum(losses[-2:]) / 2 < 0.8 * losses[0]


def test_run_directory_holds_what_pack_needs(tmp_path):
    Trainer(sudoku_recipe(**{"train.steps": 3}), tmp_path).run()
    for name in (
        "model.safetensors",
        "config.json",
        "task.json",
        "evaluation.json",
        "training.json",
        "examples.jsonl",
        "accuracy_vs_steps.png",
        "halting_steps.png",
    ):
        assert (tmp_path / name).exists(), name
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert len(evaluation["per_step_accuracy"]) == 4 and 1 <= evaluation["mean_steps_halting"] <= 4


def test_shipped_weights_are_the_ema_not_the_raw_weights(tmp_path):
    trainer = Trainer(sudoku_recipe(**{"train.steps": 5, "train.ema": 0.9}), tmp_path)
    trainer.run()
    shipped = load_file(tmp_path / "model.safetensors")
    assert torch.allclose(shipped["lm_head.weight"], trainer.ema.shadow["lm_head.weight"])
    assert not torch.allclose(shipped["lm_head.weight"], trainer.model.lm_head.weight.detach())


def test_same_seed_gives_identical_weights(tmp_path):
    a = Trainer(sudoku_recipe(**{"train.steps": 4}), tmp_path / "a")
    a.run()
    b = Trainer(sudoku_recipe(**{"train.steps": 4}), tmp_path / "b")
    b.run()
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_resume_continues_from_the_checkpoint(tmp_path):
    first = Trainer(sudoku_recipe(**{"train.steps": 4, "train.eval_every": 2}), tmp_path)
    first.run()
    resumed = Trainer(sudoku_recipe(**{"train.steps": 6, "train.eval_every": 2}), tmp_path)
    assert resumed.load_checkpoint() and resumed.step == 4
    assert torch.equal(resumed.model.lm_head.weight, first.model.lm_head.weight)
    resumed.run(resume=True)
    assert resumed.step == 6


def test_two_ddp_ranks_end_with_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(RECIPES[0]),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    for kind in ("rank", "ema"):
        r0, r1 = load_file(tmp_path / f"{kind}0.safetensors"), load_file(tmp_path / f"{kind}1.safetensors")
        assert r0.keys() == r1.keys()
        assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("recipe_path", RECIPES, ids=[p.stem for p in RECIPES])
def test_each_registry_recipe_trains_for_a_handful_of_steps(recipe_path, tmp_path):
    recipe = load_recipe(
        recipe_path,
        {
            "train.steps": 2,
            "train.batch_size": 8,
            "data.train_puzzles": 16,
            "data.test_puzzles": 8,
            "train.eval_every": 1000,
        },
    )
    report = Trainer(recipe, tmp_path).run()
    assert report.puzzles == 8 and len(report.per_step_accuracy) == recipe.model.get("halt_max_steps", 16)
