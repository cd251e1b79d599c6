"""Halting calibrated per package: the first answer stops where the model answers best."""

import json
from pathlib import Path

import numpy as np
import torch

from fixtures.host import one_torch_thread
from trm_modules.model import TRM, TRMConfig
from trm_modules.package import build_package, open_package
from trm_modules.plugins import get_codec
from trm_modules.train import Trainer, load_recipe
from trm_modules.train.halting import best_policy

ROOT = Path(__file__).resolve().parents[1]


def test_the_policy_waits_for_the_step_where_answers_peak():
    # Confident from step 1 (q > 0 everywhere), right only from step 3 on.
    valid = np.array([[False, False, True, True]] * 10)
    q_halt = np.full((10, 4), 2.0)
    policy = best_policy(valid, q_halt)
    assert policy["default_accuracy"] == 0.0 and policy["default_mean_steps"] == 1.0
    assert policy["accuracy"] == 1.0 and policy["mean_steps"] == 3.0


def test_the_papers_rule_is_kept_when_nothing_beats_it():
    valid = np.array([[True, True]] * 6 + [[False, True]] * 4)
    q_halt = np.array([[1.0, 1.0]] * 6 + [[-1.0, 1.0]] * 4)
    policy = best_policy(valid, q_halt)
    assert (policy["threshold"], policy["min_steps"], policy["accuracy"]) == (0.0, 1, 1.0)


def test_never_stopping_early_is_a_policy_of_its_own():
    # The halting head is too eager and its logits do not separate right from wrong answers.
    valid = np.array([[False, False, True]] * 5 + [[True, True, True]] * 5)
    q_halt = np.array([[3.0, 3.0, 3.0]] * 5 + [[1.0, 1.0, 1.0]] * 5)
    policy = best_policy(valid, q_halt)
    assert policy["accuracy"] == 1.0 and policy["default_accuracy"] == 0.5


def eager_model() -> TRM:
    torch.manual_seed(0)
    model = TRM(
        TRMConfig(
            vocab_size=6,
            seq_len=16,
            hidden_size=32,
            num_heads=2,
            H_cycles=1,
            L_cycles=1,
            halt_max_steps=5,
            puzzle_emb_ndim=32,
            puzzle_emb_len=1,
        )
    ).eval()
    with torch.no_grad():
        model.q_head.bias.fill_(5.0)  # halts after the first step under the paper's rule
    return model


def test_a_model_halts_by_the_policy_it_is_given():
    model = eager_model()
    tokens = torch.ones(3, 16, dtype=torch.long)
    assert model.solve(tokens).steps.tolist() == [1, 1, 1]
    assert model.use_halting(0.0, min_steps=3).solve(tokens).steps.tolist() == [3, 3, 3]
    assert model.use_halting(None).solve(tokens).steps.tolist() == [5, 5, 5]


def test_a_package_loads_with_its_calibrated_halting(tmp_path):
    codec = get_codec("sudoku", {"size": 4})
    puzzles = codec.generate(np.random.default_rng(0), 2)
    evaluation = {
        "dataset": "t",
        "metric": "exact_accuracy",
        "value": 0.0,
        "steps": 5,
        "halting": {
            "threshold": None,
            "min_steps": 1,
            "accuracy": 0.5,
            "mean_steps": 5.0,
            "default_accuracy": 0.25,
            "default_mean_steps": 1.0,
        },
    }
    with one_torch_thread():
        path = build_package(
            eager_model(),
            codec,
            name="sudoku-4x4",
            version="1.0.0",
            out_path=tmp_path / "p.trm",
            examples=[(inp, None) for inp, _ in puzzles],
            allow_failing_examples=True,
            title="4x4",
            evaluation=evaluation,
        )
        package = open_package(path)
        model = package.load_model()
    assert model.solve(torch.ones(1, 16, dtype=torch.long)).steps.tolist() == [5]
    assert "halting calibrated on held-out puzzles (every step runs)" in package.card


def test_a_training_run_records_the_policy_it_chose_and_judges_answers_by_it(tmp_path):
    recipe = load_recipe(
        ROOT / "registry" / "recipes" / "sudoku-4x4.toml",
        {
            "model.hidden_size": 32,
            "model.num_heads": 2,
            "model.puzzle_emb_ndim": 32,
            "model.halt_max_steps": 3,
            "model.H_cycles": 1,
            "model.L_cycles": 1,
            "train.batch_size": 16,
            "train.steps": 2,
            "data.train_puzzles": 32,
            "data.test_puzzles": 24,
            "train.eval_every": 1000,
        },
    )
    with one_torch_thread():
        Trainer(recipe, tmp_path).run()
    halting = json.loads((tmp_path / "evaluation.json").read_text())["halting"]
    assert halting["puzzles"] == 24 and len(halting["per_step_valid"]) == 3
    assert halting["accuracy"] >= halting["default_accuracy"]
    assert halting["judged_by"] == "rules"


def test_examples_are_recorded_as_the_package_halts_so_its_self_test_passes(tmp_path):
    # The paper's rule stops this model after one step; the package's policy runs every step.
    codec = get_codec("sudoku", {"size": 4})
    puzzles = codec.generate(np.random.default_rng(1), 4)
    evaluation = {
        "dataset": "t",
        "metric": "exact_accuracy",
        "value": 0.0,
        "steps": 5,
        "halting": {
            "threshold": None,
            "min_steps": 1,
            "accuracy": 0.0,
            "mean_steps": 5.0,
            "default_accuracy": 0.0,
            "default_mean_steps": 1.0,
        },
    }
    with one_torch_thread():
        path = build_package(
            eager_model(),
            codec,
            name="sudoku-4x4",
            version="1.0.0",
            out_path=tmp_path / "p.trm",
            examples=[(inp, None) for inp, _ in puzzles],
            allow_failing_examples=True,
            title="4x4",
            evaluation=evaluation,
        )
        results = open_package(path).self_test()
    assert all(result.passed and result.steps == 5 for result in results)


def test_recalibrating_a_shipped_package_keeps_its_weights_and_names_it_as_parent(tmp_path):
    from trm_modules.lifecycle.recalibrate import recalibrate_package

    shipped = ROOT / "registry" / "packages" / "sudoku-4x4" / "sudoku-4x4-1.0.0.trm"
    with one_torch_thread():
        path = recalibrate_package(shipped, version="1.0.1", out_path=tmp_path / "p.trm")
        new, old = open_package(path), open_package(shipped)
    assert new.manifest.provenance.parent_digest == old.digest
    assert all(torch.equal(new.state_dict()[k], v) for k, v in old.state_dict().items())
    assert new.halting["accuracy"] >= new.halting["default_accuracy"]
    assert new.manifest.evaluation.model_extra["rule_check"]["puzzles"] == 1000
