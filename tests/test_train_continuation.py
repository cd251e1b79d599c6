"""`trm train RECIPE --init-from PACKAGE`: a run that spans sittings continues from its last package."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from trm_modules.cli import app
from trm_modules.lifecycle import load_package_start, pack_run
from trm_modules.package import generate_keypair, open_package
from trm_modules.train import Trainer, load_recipe
from trm_modules.train.continuation import TRAINING_STATE_NAME, InitFromError
from trm_modules.train.trainer import lr_factor

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
    "train.steps": 20,
    "train.ema": 0.5,
}


def tiny_recipe(**overrides):
    return load_recipe(RECIPE, {**TINY, **overrides})


@pytest.fixture(scope="module")
def first_sitting(tmp_path_factory):
    """A 20-step run whose sitting ended after one step, packed with and without its training state."""
    work = tmp_path_factory.mktemp("sitting")
    trainer = Trainer(tiny_recipe(), work / "run", recipe_path=RECIPE)
    trainer.run(max_seconds=0)  # the first step past zero seconds ends the sitting
    with_state = pack_run(
        work / "run",
        name="sudoku-4x4",
        version="0.1.0-dev.1",
        out_path=work / "with-state.trm",
        training_state=True,
        allow_failing_examples=True,
    )
    weights_only = pack_run(
        work / "run",
        name="sudoku-4x4",
        version="0.1.0-dev.2",
        out_path=work / "weights.trm",
        allow_failing_examples=True,
    )
    return trainer, with_state, weights_only


def test_a_sitting_that_runs_out_of_time_stops_early_and_writes_the_run(first_sitting):
    trainer, _, _ = first_sitting
    assert trainer.step == 1
    training = json.loads((trainer.out_dir / "training.json").read_text())
    assert training["optimizer_steps"] == 1
    assert (trainer.out_dir / "model.safetensors").is_file()


def test_the_package_carries_the_step_count_and_the_training_state(first_sitting):
    _, with_state, weights_only = first_sitting
    package = open_package(with_state)
    assert package.manifest.provenance.optimizer_steps == 1
    assert TRAINING_STATE_NAME in package.archive
    assert TRAINING_STATE_NAME not in open_package(weights_only).archive


def test_continuing_restores_live_weights_moments_and_ema_and_the_step(first_sitting, tmp_path):
    trainer, with_state, _ = first_sitting
    start = load_package_start(with_state)
    continued = Trainer(tiny_recipe(), tmp_path, init_from=start)
    assert continued.step == 1
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(continued.model.state_dict()[key], value), key
    for key, value in trainer.ema.shadow.items():
        assert torch.allclose(continued.ema.shadow[key], value), key
    for param, original in zip(continued.model.parameters(), trainer.model.parameters()):
        restored, state = continued.optimizer.state[param], trainer.optimizer.state[original]
        assert torch.equal(restored["exp_avg"], state["exp_avg"])
        assert torch.equal(restored["exp_avg_sq"], state["exp_avg_sq"])
        assert float(restored["step"]) == float(state["step"])


def test_the_live_weights_differ_from_the_ema_so_both_must_travel(first_sitting):
    trainer, _, _ = first_sitting
    assert not torch.allclose(trainer.model.lm_head.weight.detach(), trainer.ema.shadow["lm_head.weight"])


def test_a_package_without_training_state_continues_from_its_ema_weights(first_sitting, tmp_path):
    trainer, _, weights_only = first_sitting
    continued = Trainer(tiny_recipe(), tmp_path, init_from=load_package_start(weights_only))
    assert continued.step == 1
    assert torch.allclose(continued.model.lm_head.weight.detach(), trainer.ema.shadow["lm_head.weight"])
    assert not continued.optimizer.state


def test_the_learning_rate_schedule_continues_at_the_package_step(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    recipe = tiny_recipe(**{"train.steps": 2, "train.schedule": "cosine", "train.warmup_steps": 0})
    continued = Trainer(recipe, tmp_path, init_from=load_package_start(with_state))
    continued.run()
    assert continued.step == 2
    expected = recipe.train.lr * lr_factor(1, 0, 2, "cosine", recipe.train.min_lr_ratio)
    assert expected < recipe.train.lr  # step 0 would have used the full rate
    assert continued.optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_the_continued_run_records_its_parent_and_cumulative_steps(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    start = load_package_start(with_state)
    Trainer(tiny_recipe(**{"train.steps": 3}), tmp_path / "run", init_from=start, recipe_path=RECIPE).run()
    packed = open_package(
        pack_run(
            tmp_path / "run",
            name="sudoku-4x4",
            version="0.1.0-dev.3",
            out_path=tmp_path / "next.trm",
            changes="continued for 2 steps",
            allow_failing_examples=True,
        )
    )
    provenance = packed.manifest.provenance
    assert provenance.parent_digest == start.digest
    assert provenance.optimizer_steps == 3
    extra = provenance.model_extra
    assert extra["continued_from"] == "sudoku-4x4@0.1.0-dev.1" and extra["continued_at_step"] == 1
    assert extra["changes"] == "continued for 2 steps"
    assert f"--init-from {with_state}" in provenance.command


def test_a_recipe_with_another_architecture_is_refused_naming_the_field(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    with pytest.raises(InitFromError, match=r"hidden_size \(recipe 64, package 32\)"):
        Trainer(tiny_recipe(**{"model.hidden_size": 64}), tmp_path, init_from=load_package_start(with_state))


def test_a_recipe_for_another_task_is_refused(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    recipe = tiny_recipe(**{"task.params": {"size": 6}, "data.difficulty": {"min_givens": 9, "max_givens": 30}})
    with pytest.raises(InitFromError, match="answers"):
        Trainer(recipe, tmp_path, init_from=load_package_start(with_state))


def test_an_unsigned_package_is_refused_when_trusted_keys_are_given(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    keys = tmp_path / "keys"
    keys.mkdir()
    generate_keypair(keys)
    with pytest.raises(InitFromError, match="signature"):
        load_package_start(with_state, trusted_keys=keys)


def test_trm_train_init_from_continues_and_reports_the_step(first_sitting, tmp_path):
    _, with_state, _ = first_sitting
    sets = [arg for key, value in {**TINY, "train.steps": 2}.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    result = CliRunner().invoke(
        app, ["train", str(RECIPE), "-o", str(tmp_path / "run"), "--init-from", str(with_state), *sets]
    )
    assert result.exit_code == 0, result.output
    assert "continuing sudoku-4x4@0.1.0-dev.1 at step 1" in " ".join(result.output.split())
    assert json.loads((tmp_path / "run" / "training.json").read_text())["optimizer_steps"] == 2


def test_trm_train_init_from_a_missing_file_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        app, ["train", str(RECIPE), "-o", str(tmp_path / "run"), "--init-from", str(tmp_path / "absent.trm")]
    )
    assert result.exit_code == 2  # bad input (trm_modules.cli.errors)
    assert "--init-from" in result.output and "Traceback" not in result.output


def test_bf16_training_keeps_fp32_master_weights_and_ema_and_says_so(tmp_path):
    trainer = Trainer(
        tiny_recipe(**{"train.steps": 3, "train.precision": "bf16"}), tmp_path / "run", recipe_path=RECIPE
    )
    assert trainer.precision == "bf16"
    trainer.run()
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    assert {v.dtype for v in trainer.ema.shadow.values() if v.is_floating_point()} == {torch.float32}
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    assert training["hardware"].endswith("bf16 autocast") and "thread" in training["hardware"]
    assert Trainer(tiny_recipe(), tmp_path / "other", recipe_path=RECIPE).precision == "fp32"  # auto on a CPU
