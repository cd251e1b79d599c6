"""Engines (``eager`` | ``onnx``): the same answers through the host and ``trm solve``, a typed error
when ``onnx`` cannot run, and ``eager`` by default."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from fixtures.host import grid_inputs, tiny_model, tiny_spec
from fixtures.packages import build_tiny_package, example_inputs
from trm_modules.cli import app
from trm_modules.errors import ConfigError, EngineUnavailable
from trm_modules.host import Host, MemorySource
from trm_modules.model.onnx_step import step_for_engine
from trm_modules.plugins import build_plugin_manager
from trm_modules.settings import Settings

runner = CliRunner()
SPEC = tiny_spec("1.0.0", 1)
INPUTS = grid_inputs(8)


def make_host(**options) -> Host:
    return Host(
        [MemorySource([SPEC])],
        plugin_manager=build_plugin_manager(entry_points=False, paths=""),
        memory_budgets={"cpu": 1 << 30},
        cpu_threads=1,
        **options,
    )


def host_answers(engine: str) -> list[tuple]:
    with make_host(engine=engine) as host:
        host.swap("grid", "1.0.0")
        answers = [host.solve("grid", data) for data in INPUTS]
    return [(a.output, a.steps, a.confidence) for a in answers]


def test_the_host_gives_the_same_answers_with_either_engine():
    pytest.importorskip("onnxruntime")
    eager, onnx = host_answers("eager"), host_answers("onnx")
    assert [(o, s) for o, s, _ in onnx] == [(o, s) for o, s, _ in eager]
    assert len({s for _, s, _ in eager}) > 1  # answers halted at different steps: halting went through the engine
    assert max(abs(a[2] - b[2]) for a, b in zip(eager, onnx)) < 1e-4


def test_the_host_runs_eager_by_default_and_onnx_only_when_asked():
    pytest.importorskip("onnxruntime")
    with make_host() as host:
        assert host.engine == "eager"
        host.swap("grid", "1.0.0")
        assert host.solve("grid", INPUTS[0]).output is not None
    with make_host(engine="onnx") as host:
        host.swap("grid", "1.0.0")
        host.solve("grid", INPUTS[0])
        (loaded,) = [v for slot in host._slots.values() for v in slot.holders()]
        assert type(loaded.step).__name__ == "OnnxStep"


def test_onnx_without_onnxruntime_is_a_typed_error_at_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(EngineUnavailable, match="onnxruntime"):
        make_host(engine="onnx")
    with pytest.raises(EngineUnavailable, match="pip install"):
        step_for_engine(tiny_model(1), "onnx")


def test_an_unknown_engine_is_refused_by_name():
    with pytest.raises(ConfigError, match="eager, onnx"):
        make_host(engine="tensorrt")


def test_the_onnx_step_leaves_a_bfloat16_model_as_it_is():
    pytest.importorskip("onnxruntime")
    model = tiny_model(1).to(torch.bfloat16)
    step_for_engine(model, "onnx", threads=1)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_the_engine_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("TRM_ENGINE", raising=False)
    assert Settings().engine == "auto"  # trm solve and trm serve measure unless told
    monkeypatch.setenv("TRM_ENGINE", "eager")
    assert Settings().engine == "eager"
    monkeypatch.setenv("TRM_ENGINE", "onnx")
    assert Settings().engine == "onnx"


# ------------------------------------------------------------------------------------ trm solve
@pytest.fixture(scope="module")
def package_path(tmp_path_factory):
    return build_tiny_package(tmp_path_factory.mktemp("engines") / "sudoku-4x4-1.0.0.trm")


def solve(package_path, tmp_path, *options):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in example_inputs(6, seed=5)))
    return runner.invoke(
        app, ["solve", str(package_path), "--input", str(tmp_path / "in.jsonl"), "--output", "-", *options]
    )


def test_trm_solve_answers_the_same_with_either_engine(package_path, tmp_path):
    pytest.importorskip("onnxruntime")
    eager, onnx = solve(package_path, tmp_path, "--engine", "eager"), solve(package_path, tmp_path, "--engine", "onnx")
    assert eager.exit_code == onnx.exit_code == 0, (eager.output, onnx.output)
    eager_lines = [json.loads(line) for line in eager.stdout.splitlines() if line.startswith("{")]
    onnx_lines = [json.loads(line) for line in onnx.stdout.splitlines() if line.startswith("{")]
    assert len(eager_lines) == 6
    for a, b in zip(eager_lines, onnx_lines):
        assert (a["output"], a["steps"], a["views"]) == (b["output"], b["steps"], b["views"])
        assert abs(a["confidence"] - b["confidence"]) < 1e-4


def test_trm_solve_with_onnx_but_no_onnxruntime_says_so_in_one_line(package_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = solve(package_path, tmp_path, "--engine", "onnx")
    assert result.exit_code == 1
    assert "EngineUnavailable" in result.output and "onnxruntime" in result.output


def test_trm_solve_refuses_an_unknown_engine_from_the_environment(package_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_ENGINE", "fast-please")
    result = solve(package_path, tmp_path)
    assert result.exit_code == 2 and "unknown engine 'fast-please'" in result.output


# ------------------------------------------------------------------------------------ trm serve
def test_trm_serve_answers_the_same_with_either_engine(tmp_path):
    pytest.importorskip("onnxruntime")
    from fixtures.server import MODULE, puzzle, served

    outputs = {}
    for engine in ("eager", "onnx"):
        with served(tmp_path / engine, {"1.0.0": 0}, engine=engine) as server:
            assert server.runtime.host.engine == engine
            replies = [
                server.client.post(
                    f"/v1/modules/{MODULE}/solve", json={"input": puzzle(seed)}, headers=server.auth("solve")
                )
                for seed in range(4)
            ]
            assert all(r.status_code == 200 for r in replies), replies[0].text
            outputs[engine] = [(r.json()["output"], r.json()["steps"]) for r in replies]
    assert outputs["onnx"] == outputs["eager"]


# ------------------------------------------------------------------------------------ CUDA graphs
def test_cuda_graphs_leave_the_cpu_path_as_it_is():
    assert step_for_engine(tiny_model(1), "eager", cuda_graphs=True) is None
    assert host_answers_with(cuda_graphs=True) == host_answers_with(cuda_graphs=False)


def host_answers_with(**options) -> list[tuple]:
    with make_host(**options) as host:
        host.swap("grid", "1.0.0")
        return [(a.output, a.steps, a.confidence) for a in (host.solve("grid", d) for d in INPUTS)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_steps_answer_like_eager_on_the_gpu_with_halting():
    from trm_modules.model.cuda_graphs import CudaGraphStep

    model = tiny_model(1).to("cuda")
    tokens = torch.tensor([[c + 1 for c in d["cells"]] for d in INPUTS]).cuda()  # the grids the host tests solve
    with torch.inference_mode():
        eager = model.solve(tokens)
        step = CudaGraphStep(model)
        first, again = model.solve(tokens, step=step), model.solve(tokens, step=step)
    assert len(set(eager.steps.tolist())) > 1  # rows left the batch: several batch sizes were captured
    for got in (first, again):
        assert torch.equal(got.tokens, eager.tokens) and torch.equal(got.steps, eager.steps)
        assert torch.allclose(got.confidence, eager.confidence, atol=1e-5)
