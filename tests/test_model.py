"""The TRM network: the paper's sizes, its recursion, halting and the authors' checkpoint layout."""

import json

import pytest
import torch

from trm_modules.model import PRESETS, TRM, TRMConfig, count_parameters, load_authors_checkpoint, to_authors_state_dict
from trm_modules.model.trm import rms_norm


def tiny(**overrides) -> TRMConfig:
    base = dict(
        vocab_size=6,
        seq_len=16,
        puzzle_emb_ndim=32,
        puzzle_emb_len=2,
        hidden_size=32,
        num_heads=2,
        H_cycles=2,
        L_cycles=2,
        halt_max_steps=4,
    )
    base.update(overrides)
    return TRMConfig(**base)


def test_paper_sudoku_attention_config_has_6_828_034_parameters():
    assert count_parameters(TRM(PRESETS["paper-sudoku-attn"])) == 6_828_034


def test_paper_sudoku_mlp_config_has_5_028_866_parameters():
    assert count_parameters(TRM(PRESETS["paper-sudoku-mlp"])) == 5_028_866


def test_model_info_prints_parameter_count_as_json(capsys):
    from typer.testing import CliRunner
    from trm_modules.cli import app

    result = CliRunner().invoke(app, ["model-info", "--preset", "paper-sudoku-mlp", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parameters"] == 5_028_866


def test_q_head_starts_at_zero_weight_and_minus_five_bias():
    model = TRM(tiny())
    assert torch.all(model.q_head.weight == 0)
    assert torch.all(model.q_head.bias == -5)


def test_mlp_mixer_normalises_over_the_sequence_axis_first():
    torch.manual_seed(0)
    model = TRM(tiny(mlp_t=True, pos_encodings="none"))
    block = model.net.layers[0]
    h = torch.randn(3, model.config.total_len, 32)
    t = h.transpose(1, 2)
    expected = rms_norm(t + block.mlp_t(t), 1e-5).transpose(1, 2)
    expected = rms_norm(expected + block.mlp(expected), 1e-5)
    assert torch.allclose(block(h, None), expected)


def test_deep_recursion_only_keeps_gradient_for_the_last_cycle():
    torch.manual_seed(0)
    model = TRM(tiny())
    calls = []
    original = model.net.forward
    model.net.forward = lambda *a: calls.append(torch.is_grad_enabled()) or original(*a)
    tokens = torch.randint(1, 6, (2, 16))
    out = model(tokens, torch.zeros(2, dtype=torch.long), model.initial_carry(2))
    # T=2, n=2: (T-1)*(n+1) = 3 applications without grad, then n+1 = 3 with grad.
    assert calls == [False] * 3 + [True] * 3
    assert not out.carry.y.requires_grad and out.logits.requires_grad


@pytest.mark.parametrize("mlp_t", [False, True])
def test_authors_layout_round_trips_with_identical_outputs(mlp_t):
    torch.manual_seed(1)
    cfg = tiny(mlp_t=mlp_t, pos_encodings="none" if mlp_t else "rope")
    model = TRM(cfg).eval()
    with torch.no_grad():
        model.puzzle_emb.weight.normal_()
    for prefix in ("_orig_mod.model.", "model."):
        state = to_authors_state_dict(model, prefix)
        assert any(".L_level.layers.0." in k for k in state)
        loaded = load_authors_checkpoint(state, cfg).eval()
        tokens = torch.randint(1, 6, (4, 16))
        a = model.solve(tokens, halt=False, max_steps=3)
        b = loaded.solve(tokens, halt=False, max_steps=3)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.confidence, b.confidence)


def test_authors_checkpoint_file_loads_with_weights_only(tmp_path):
    cfg = tiny()
    model = TRM(cfg)
    path = tmp_path / "step_10"
    torch.save(to_authors_state_dict(model), path)
    loaded = load_authors_checkpoint(path, cfg)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_solve_with_halting_shrinks_the_batch_to_running_rows():
    torch.manual_seed(0)
    model = TRM(tiny()).eval()
    # Row-dependent halting: q_halt follows one feature of y's first position.
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.weight[0, 0] = 10.0
        model.q_head.bias.zero_()
    tokens = torch.randint(1, 6, (8, 16))
    with torch.no_grad():  # centre the threshold so about half the rows halt at step 1
        first = model(tokens, torch.zeros(8, dtype=torch.long), model.initial_carry(8)).q_halt
        model.q_head.bias.fill_(-float(first.median()) + 1e-4)
    seen = []
    original = model.deep_recursion
    model.deep_recursion = lambda x, c: seen.append(x.shape[0]) or original(x, c)
    with torch.inference_mode():
        sol = model.solve(tokens, max_steps=4, halt=True)
        halted_batches = list(seen)
        full = model.solve(tokens, max_steps=4, halt=False)
    assert halted_batches[0] == 8
    assert all(b <= a for a, b in zip(halted_batches, halted_batches[1:]))
    # Rows that halted at step 1 are no longer computed at step 2.
    assert halted_batches[1] == int((sol.steps > 1).sum())
    assert sol.steps.min() >= 1 and sol.steps.max() <= 4
    halted_first = sol.steps == 1
    assert halted_first.any() and (~halted_first).any(), "the test needs both kinds of rows"
    assert torch.all(full.steps == 4)


def test_solve_runs_in_bfloat16():
    model = TRM(tiny()).to(torch.bfloat16).eval()
    with torch.inference_mode():
        sol = model.solve(torch.randint(1, 6, (2, 16)), max_steps=2)
    assert sol.tokens.shape == (2, 16)


@pytest.mark.parametrize("mixer", ["attention", "mlp_t"])
def test_from_state_dict_rebuilds_a_model_that_answers_like_the_original(mixer):
    torch.manual_seed(0)
    config = tiny(mlp_t=mixer == "mlp_t")
    original = TRM(config).eval()
    tokens = torch.randint(0, config.vocab_size, (3, config.seq_len))
    rebuilt = TRM.from_state_dict(config, original.state_dict(), "cpu")
    assert not rebuilt.training
    with torch.no_grad():
        expected, got = original.solve(tokens), rebuilt.solve(tokens)
    assert torch.equal(expected.tokens, got.tokens) and torch.equal(expected.confidence, got.confidence)


def test_from_state_dict_loads_into_the_dtype_asked_for_and_recomputes_rope_tables():
    config = tiny()
    original = TRM(config)
    rebuilt = TRM.from_state_dict(config, original.state_dict(), "cpu", torch.bfloat16)
    assert {p.dtype for p in rebuilt.parameters()} == {torch.bfloat16}
    assert torch.equal(rebuilt.rope.cos, original.rope.cos.to(torch.bfloat16))


def test_from_state_dict_owns_its_tensors_and_every_model_its_rope_tables():
    config = tiny()
    original = TRM(config)
    state = original.state_dict()
    before = {name: t.clone() for name, t in state.items()}
    first, second = TRM.from_state_dict(config, state), TRM.from_state_dict(config, state)
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)
        first.rope.cos.add_(1.0)  # the tables are built once per shape and handed out as copies
    assert all(torch.equal(state[name], before[name]) for name in state)
    assert all(torch.equal(second.state_dict()[name], before[name]) for name in state)
    assert torch.equal(second.rope.cos, original.rope.cos) and torch.equal(TRM(config).rope.cos, original.rope.cos)


def test_from_state_dict_refuses_tensors_that_do_not_match_the_config():
    state = TRM(tiny()).state_dict()
    del state["lm_head.weight"]
    with pytest.raises(RuntimeError, match="lm_head.weight"):
        TRM.from_state_dict(tiny(), state)
