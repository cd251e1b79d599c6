"""HRM, the second built-in architecture: its step schedule, halting, loss, checkpoints, packages and training,
as the authors' hrm_act_v1.py has them (bench/hrm_parity.py compares outputs with their code itself)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trm_modules.errors import ConfigError
from trm_modules.model import HRM, HRMConfig, load_authors_hrm_checkpoint
from trm_modules.model.reasoning import Carry
from trm_modules.package import build_package, open_package
from trm_modules.plugins import get_architecture, get_codec
from trm_modules.train import Trainer
from trm_modules.train.run_dir import load_run
from test_train import ROOT, load_recipe

TINY = HRMConfig(
    vocab_size=6,
    seq_len=16,
    puzzle_emb_ndim=32,
    hidden_size=32,
    num_heads=2,
    H_layers=1,
    L_layers=2,
    H_cycles=2,
    L_cycles=3,
    halt_max_steps=4,
)


def tiny_hrm(seed: int = 0, config: HRMConfig = TINY) -> HRM:
    torch.manual_seed(seed)
    return HRM(config)


def test_the_paper_configuration_has_the_authors_parameter_count():
    hrm = get_architecture("hrm")
    assert hrm.parameter_count(hrm.presets["paper-hrm-sudoku"]) == 27_275_266  # "27M", puzzle table excluded


def test_model_info_prints_the_paper_hrm_count():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trm_modules.cli",
            "model-info",
            "--architecture",
            "hrm",
            "--preset",
            "paper-hrm-sudoku",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    info = json.loads(out.stdout)
    assert (info["architecture"], info["parameters"]) == ("hrm", 27_275_266)


def test_one_step_runs_h_cycles_times_l_cycles_l_updates_and_only_the_last_of_each_with_gradient():
    model = tiny_hrm()
    calls: list[tuple[str, bool]] = []
    for name in ("H_level", "L_level"):
        getattr(model, name).register_forward_hook(
            lambda module, args, out, name=name: calls.append((name[0], torch.is_grad_enabled()))
        )
    tokens = torch.randint(1, 6, (2, 16))
    model(tokens, torch.zeros(2, dtype=torch.long), model.initial_carry(2))
    # authors' order: L L L H | L L L(grad) H(grad)
    assert [c for c, _ in calls] == ["L", "L", "L", "H", "L", "L", "L", "H"]
    assert [g for _, g in calls] == [False] * 6 + [True, True]


def test_the_carry_is_detached_and_heads_read_z_h():
    model = tiny_hrm()
    out = model(torch.randint(1, 6, (2, 16)), torch.zeros(2, dtype=torch.long), model.initial_carry(2))
    assert not out.carry.y.requires_grad and not out.carry.z.requires_grad
    assert torch.allclose(out.logits, model.lm_head(out.carry.y)[:, model.config.puzzle_len :])
    assert out.logits.requires_grad


def set_q_bias(model: HRM, halt: float, cont: float) -> None:
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.copy_(torch.tensor([halt, cont]))


def test_inference_halts_where_q_halt_exceeds_q_continue():
    model = tiny_hrm().eval()
    tokens = torch.randint(1, 6, (3, 16))
    set_q_bias(model, -1.0, -2.0)  # both negative, yet halt > continue: HRM stops (TRM's rule would not)
    assert model.solve(tokens).steps.tolist() == [1, 1, 1]
    set_q_bias(model, 1.0, 2.0)
    assert model.solve(tokens).steps.tolist() == [4, 4, 4]


@pytest.mark.parametrize("is_last", [False, True])
def test_loss_adds_the_bootstrapped_continue_target(is_last):
    model = tiny_hrm()
    set_q_bias(model, 0.3, 1.2)
    tokens = torch.randint(1, 6, (2, 16))
    ids = torch.zeros(2, dtype=torch.long)
    out = model(tokens, ids, model.initial_carry(2))
    labels = torch.randint(2, 6, (2, 16))
    last = torch.full((2,), is_last)
    loss, metrics = model.supervision_loss(out, labels, tokens=tokens, puzzle_ids=ids, is_last=last)
    # next step's Q values are the biases again: target sigmoid(q_halt') at the last step, else sigmoid(max)
    target = torch.sigmoid(torch.tensor(0.3 if is_last else 1.2)).expand(2)
    q_continue = F.binary_cross_entropy_with_logits(torch.full((2,), 1.2), target)
    assert float(metrics["q_continue_loss"]) == pytest.approx(float(q_continue), abs=1e-6)
    expected = metrics["lm_loss"] + 0.5 * (metrics["halt_loss"] + q_continue)
    assert float(loss.detach()) == pytest.approx(float(expected), abs=1e-5)


def authors_layout(model: HRM, prefix: str) -> dict[str, torch.Tensor]:
    names = {"embed_tokens.weight": "embed_tokens.embedding_weight", "puzzle_emb.weight": "puzzle_emb.weights"}
    return {
        f"{prefix}inner.{names.get(k, k)}": (v.to(torch.bfloat16) if k.endswith("_init") else v.clone())
        for k, v in model.state_dict().items()
    }


def test_authors_checkpoints_import_with_weights_only_and_either_prefix(tmp_path):
    source = tiny_hrm(3)
    path = tmp_path / "step_100"
    torch.save(authors_layout(source, "_orig_mod.model."), path)
    imported = load_authors_hrm_checkpoint(path, TINY)
    plain = load_authors_hrm_checkpoint(authors_layout(source, "model."), TINY)
    tokens = torch.randint(1, 6, (2, 16))
    for model in (imported, plain):
        torch.testing.assert_close(
            model.eval().solve(tokens, halt=False).tokens, source.eval().solve(tokens, halt=False).tokens
        )
    with pytest.raises(ConfigError, match="unknown key"):
        load_authors_hrm_checkpoint({"model.inner.mystery.weight": torch.zeros(1)}, TINY)
    with pytest.raises(ConfigError, match="shape"):
        load_authors_hrm_checkpoint(
            authors_layout(
                tiny_hrm(config=TINY.model_copy(update={"hidden_size": 16, "puzzle_emb_ndim": 16})), "model."
            ),
            TINY,
        )


def test_an_hrm_package_names_its_architecture_and_loads_as_hrm(tmp_path):
    codec = get_codec("sudoku", {"size": 4})
    puzzles = [inp for inp, _ in codec.generate(np.random.default_rng(1), 2)]
    model = tiny_hrm(5).eval()
    path = build_package(
        model,
        codec,
        name="sudoku-4x4",
        version="9.0.0-hrm",
        out_path=tmp_path / "h.trm",
        examples=[(p, None) for p in puzzles],
        allow_failing_examples=True,
    )
    package = open_package(path)
    assert package.manifest.model.architecture == "hrm"
    assert isinstance(package.manifest.model.config, HRMConfig)
    loaded = package.load_model()
    assert isinstance(loaded, HRM) and package.manifest.model.parameters == loaded.count_parameters()
    assert "HRM" in package.card
    package.self_test()


def test_an_hrm_recipe_trains_writes_its_architecture_and_reloads(tmp_path):
    recipe = load_recipe(
        ROOT / "registry" / "recipes" / "sudoku-4x4.toml",
        {
            "model.architecture": "hrm",
            "model.hidden_size": 32,
            "model.num_heads": 2,
            "model.puzzle_emb_ndim": 32,
            "model.H_cycles": 2,
            "model.L_cycles": 2,
            "model.halt_max_steps": 3,
            "train.batch_size": 16,
            "train.steps": 3,
            "data.train_puzzles": 32,
            "data.test_puzzles": 16,
            "train.eval_every": 1000,
        },
    )
    recipe = recipe.model_copy(
        update={
            "model": {k: v for k, v in recipe.model.items() if k not in ("mlp_t", "L_layers")}
            | {"L_layers": 1, "H_layers": 1}
        }
    )
    Trainer(recipe, tmp_path).run()
    assert json.loads((tmp_path / "architecture.json").read_text()) == {"name": "hrm"}
    model, _ = load_run(tmp_path)
    assert isinstance(model, HRM)


def test_a_step_as_one_onnx_graph_answers_like_eager():
    pytest.importorskip("onnxruntime")
    from trm_modules.model.onnx_step import OnnxStep

    model = tiny_hrm(2).eval()
    tokens = torch.randint(1, 6, (3, 16))
    eager = model.solve(tokens, halt=False)
    onnx = OnnxStep(model, threads=1).solve(tokens, halt=False)
    assert torch.equal(eager.tokens, onnx.tokens)
    carry = Carry(model.initial_carry(3).y, model.initial_carry(3).z)
    assert carry.y.shape == (3, TINY.total_len, TINY.hidden_size)
