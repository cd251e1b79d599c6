"""The ``auto`` engine and precision: chosen by measurement, never at the price of an answer.

``auto`` times eager and ONNX Runtime on 1 thread and on all cores at each batch shape and keeps
the fastest, but admits ONNX only when it answers the check inputs exactly as eager does;
``precision auto`` takes bf16 only when the device measures fast at it *and* the package's own
evaluation shows bf16 keeps its answers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fixtures.host import grid_inputs, tiny_model, tiny_spec
from fixtures.packages import build_tiny_package, example_inputs
from trm_modules.cli import app
from trm_modules.errors import ConfigError, EngineUnavailable
from trm_modules.host import Host, MemorySource
from trm_modules.model import engine_choice
from trm_modules.model.engine_choice import ChosenStep, choose_step
from trm_modules.model.onnx_step import step_for_engine
from trm_modules.model.precision import GemmSpeed, measure_gemm_speed, resolve_precision
from trm_modules.plugins import build_plugin_manager
from trm_modules.solving import solve_tokens

runner = CliRunner()
NO_LOSS = {"precision": {"bf16": {"no_loss": True, "summary": "first answer 97.0 % vs 97.0 %"}}}
LOSS = {"precision": {"bf16": {"no_loss": False, "summary": "first answer 91.0 % vs 97.0 %"}}}
SLOW_BF16 = GemmSpeed("cpu", 256, 1, fp32_gflops=70.0, bf16_gflops=1.0)
FAST_BF16 = GemmSpeed("cpu", 256, 1, fp32_gflops=70.0, bf16_gflops=150.0)


def tokens_of(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 6, size=(n, 16)).astype(np.int64), np.zeros(n, dtype=np.int64)


# ------------------------------------------------------------------------------------ auto engine
def test_auto_keeps_at_each_shape_the_candidate_that_measured_fastest():
    pytest.importorskip("onnxruntime")
    step = choose_step(tiny_model(1), shapes=(1, 8), threads=(1,), rounds=1, drop_above=float("inf"))
    assert set(step.choice.chosen) == {1, 8}
    for rows, name in step.choice.chosen.items():
        timings = step.choice.timings[rows]
        assert set(timings) == {"eager×1", "onnx×1"}
        assert timings[name] == min(timings.values())
    assert step.candidate_for(1).name == step.choice.chosen[1]
    assert step.candidate_for(5).name == step.candidate_for(200).name == step.choice.chosen[8]


def test_auto_answers_exactly_as_eager_does():
    pytest.importorskip("onnxruntime")
    model = tiny_model(1)
    tokens, ids = tokens_of(12, seed=3)
    eager = solve_tokens(model, tokens, ids)
    step = step_for_engine(model, "auto", threads=1, check_tokens=tokens[:4], check_puzzle_ids=ids[:4])
    assert isinstance(step, ChosenStep)
    for rows in (1, 5, 12):
        auto = solve_tokens(model, tokens, ids, step=step, batch_size=rows)
        assert np.array_equal(auto[0], eager[0]) and np.array_equal(auto[1], eager[1])
        assert len(set(eager[1].tolist())) > 1  # halting differed between rows: it went through the chosen step


def test_onnx_that_answers_differently_is_never_chosen(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(engine_choice, "_same_answers", lambda *args: False)
    step = choose_step(tiny_model(1), shapes=(1,), threads=(1,), rounds=1)
    assert step.engines == {"eager"}
    assert "differ" in (step.choice.refused or "")


def test_rows_split_across_single_threaded_workers_answer_as_the_whole_batch_and_compete_at_larger_shapes():
    model = tiny_model(1)
    tokens, ids = tokens_of(16, seed=5)
    step = choose_step(model, shapes=(1, 16), threads=(1, 2), engines=("eager",), rounds=1, drop_above=float("inf"))
    assert "eager×1 ÷2" not in step.choice.timings[1]  # one row cannot be split
    assert "eager×1 ÷2" in step.choice.timings[16]
    split = engine_choice.Candidate("eager", 1, workers=2)
    whole = solve_tokens(model, tokens, ids, batch_size=16)
    halves = solve_tokens(model, tokens, ids, batch_size=16, step=lambda x, c: split.run(model, x, c))
    assert np.array_equal(whole[0], halves[0]) and np.array_equal(whole[1], halves[1])


def test_a_split_that_answers_differently_is_never_chosen(monkeypatch):
    monkeypatch.setattr(engine_choice, "_same_answers", lambda model, candidate, *args: candidate.workers == 1)
    step = choose_step(tiny_model(1), shapes=(4,), threads=(1, 2), engines=("eager",), rounds=1)
    assert all("÷" not in name for name in step.choice.timings[4])
    assert "eager×1 ÷2" in (step.choice.refused_split or "")


def test_auto_without_onnxruntime_chooses_among_eager_thread_counts(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    step = choose_step(tiny_model(1), shapes=(1,), threads=(1,), rounds=1)
    assert step.engines == {"eager"} and "onnxruntime" in (step.choice.refused or "")


def test_a_host_on_auto_gives_the_answers_of_eager():
    pytest.importorskip("onnxruntime")
    spec, inputs = tiny_spec("1.0.0", 1), grid_inputs(6)
    answers = {}
    for engine in ("eager", "auto"):
        with Host(
            [MemorySource([spec])],
            plugin_manager=build_plugin_manager(entry_points=False, paths=""),
            memory_budgets={"cpu": 1 << 30},
            cpu_threads=1,
            engine=engine,
        ) as host:
            host.swap("grid", "1.0.0")
            answers[engine] = [(a.output, a.steps) for a in (host.solve("grid", d) for d in inputs)]
            (how,) = host.computing().values()
            assert how.startswith("fp32") and (engine != "auto" or "auto: batch 1:" in how)
    assert answers["auto"] == answers["eager"]


# ------------------------------------------------------------------------------------ precision
def test_precision_auto_takes_bf16_only_when_the_device_is_fast_and_the_package_keeps_its_answers():
    assert resolve_precision("auto", "cpu", NO_LOSS, speed=FAST_BF16).precision == "bf16"
    slow = resolve_precision("auto", "cpu", NO_LOSS, speed=SLOW_BF16)
    assert slow.precision == "fp32" and "bf16 GEMM 1.0 GFLOP/s vs fp32 70.0" in slow.reason
    lossy = resolve_precision("auto", "cpu", LOSS, speed=FAST_BF16)
    assert lossy.precision == "fp32" and "shows a loss" in lossy.reason
    unknown = resolve_precision("auto", "cpu", None, speed=FAST_BF16)
    assert unknown.precision == "fp32" and "no bf16 evaluation" in unknown.reason
    assert resolve_precision("bf16", "cpu", LOSS).precision == "bf16"  # asked for: the user's call
    with pytest.raises(ConfigError, match="fp32, bf16, auto"):
        resolve_precision("fp8", "cpu")


def test_the_gemm_measurement_reports_both_dtypes():
    speed = measure_gemm_speed("cpu", size=32, threads=1)
    assert speed.fp32_gflops > 0 and speed.bf16_gflops > 0 and speed.threads == 1
    assert speed.fast_bf16 == (speed.bf16_ratio >= 1.2)


def test_bf16_solves_through_autocast_with_the_weights_left_in_fp32():
    model = tiny_model(1)
    tokens, ids = tokens_of(4)
    out, steps, confidence = solve_tokens(model, tokens, ids, precision="bf16")
    assert out.shape == (4, 16) and confidence.dtype == np.float32 and steps.min() >= 1
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_onnx_in_bf16_is_refused_and_auto_stays_eager():
    model = tiny_model(1)
    with pytest.raises(EngineUnavailable, match="fp32"):
        step_for_engine(model, "onnx", precision="bf16")
    step = step_for_engine(model, "auto", precision="bf16", shapes=(1,))
    assert isinstance(step, ChosenStep) and step.engines == {"eager"}


@pytest.fixture(scope="module")
def package_path(tmp_path_factory):
    return build_tiny_package(tmp_path_factory.mktemp("precision") / "sudoku-4x4-1.0.0.trm")


def solve(package_path, tmp_path, *options):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in example_inputs(4, seed=5)))
    return runner.invoke(
        app, ["solve", str(package_path), "--input", str(tmp_path / "in.jsonl"), "--output", "-", *options]
    )


def test_trm_solve_says_what_it_computes_in_and_why(package_path, tmp_path):
    result = solve(package_path, tmp_path, "--precision", "auto", "--engine", "eager")
    assert result.exit_code == 0, result.output
    assert "computes in fp32 (bf16 refused: the package carries no bf16 evaluation" in result.stderr
    bf16 = solve(package_path, tmp_path, "--precision", "bf16", "--engine", "eager")
    assert bf16.exit_code == 0, bf16.output
    assert "computes in bf16" in bf16.stderr
    assert len([line for line in bf16.stdout.splitlines() if line.startswith("{")]) == 4


def test_trm_solve_refuses_an_unknown_precision(package_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_PRECISION", "fp8")
    result = solve(package_path, tmp_path)
    assert result.exit_code == 2 and "unknown precision 'fp8'" in result.output
