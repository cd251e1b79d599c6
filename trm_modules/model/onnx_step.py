"""ONNX Runtime as the CPU engine of one supervision step: the fast path for single puzzles.

At batch 1 the paper's 9×9 Sudoku models spend their time in 21 applications of a 2-layer network
per step, each a few dozen small kernels launched from Python. Exporting one supervision step
(``TRM.deep_recursion``: T·(n+1) network applications and both heads) as one ONNX graph lets ONNX
Runtime fuse and schedule the whole step natively. The recursion across steps and ACT halting stay
in ``TRM.solve``, which takes the step as a parameter, so both engines share one solving loop and
give the same answers (tokens identical; floats within fp32 rounding of a differently ordered sum).

Engines (``ENGINES``; ``step_for_engine`` turns a name into the ``step`` ``TRM.solve`` takes):
``eager`` is PyTorch (the reference, any device, no extra dependency — the default everywhere);
``onnx`` is ``OnnxStep`` (CPU only, needs the ``onnx`` extra, exports the graph once per model, in
memory). ``export_graph`` is the one TorchScript-to-ONNX export every ONNX graph of the project
goes through (this step, and the browser/SCORM graphs of ``trm_modules.package.onnx_export``).
"""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, EngineUnavailable
from .cuda_graphs import cuda_graph_step
from .trm import TRM, Carry, Solution, StepFunction, StepOutput

#: The engines a model can be solved with; ``eager`` is the default.
Engine = Literal["eager", "onnx"]
ENGINES: tuple[str, ...] = ("eager", "onnx")


def export_graph(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: Sequence[str],
                 output_names: Sequence[str], *, opset: int = 17, optimize: bool = False) -> bytes:
    """The ONNX bytes of ``module`` traced on ``args``, every input and output with a dynamic batch axis 0.

    The TorchScript exporter is deprecated but exact here; the tracer's warnings concern Python
    branches on config values, which are constants of the graph. ``optimize``: fold constants with
    onnxscript's optimizer (about half the nodes; a browser builds its session in proportion to them).
    """
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names),
                          dynamic_axes={name: {0: "batch"} for name in [*input_names, *output_names]})
    graph = buffer.getvalue()
    if optimize:
        try:
            import onnx
            import onnxscript.optimizer
        except ImportError as exc:  # the `onnx` extra
            raise EngineUnavailable("optimizing an ONNX graph needs onnx and onnxscript: "
                                    "pip install 'trm-modules[onnx]'") from exc
        graph = onnxscript.optimizer.optimize(onnx.load_from_string(graph)).SerializeToString()
    return graph


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or ``EngineUnavailable`` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailable("the onnx engine needs onnxruntime, which is not installed: "
                                "pip install 'trm-modules[onnx]' (or use the eager engine)") from exc
    return onnxruntime


class _Step(nn.Module):
    """``deep_recursion`` with plain tensors in and out (what the ONNX exporter traces)."""

    def __init__(self, model: TRM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.deep_recursion(x, Carry(y, z))
        return out.carry.y, out.carry.z, out.logits, out.q_halt, out.q_continue


class OnnxStep:
    """One supervision step of ``model`` (float32, CPU) as an ONNX Runtime session; call it like
    ``model.deep_recursion(x, carry)``, or pass it to ``model.solve(..., step=...)``.

    ``threads``: ONNX Runtime intra-op threads (default: torch's intra-op thread count). A model in
    another dtype is exported from a float32 copy (``model`` itself is left as it is).
    ``EngineUnavailable`` when onnxruntime is not installed.
    """

    def __init__(self, model: TRM, threads: int | None = None, opset: int = 17) -> None:
        onnxruntime = import_onnxruntime()
        self.model = model.eval()
        exported = model
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in model.parameters()):
            exported = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
        config = model.config
        x = torch.zeros(1, config.total_len, config.hidden_size)
        carry = exported.initial_carry(1)
        graph = export_graph(_Step(exported), (x, carry.y.float(), carry.z.float()), ["x", "y", "z"],
                             ["y_next", "z_next", "logits", "q_halt", "q_continue"], opset=opset)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.threads = options.intra_op_num_threads
        self.session: Any = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        feeds = {"x": _numpy(x), "y": _numpy(carry.y), "z": _numpy(carry.z)}
        y, z, logits, q_halt, q_continue = (torch.from_numpy(a) for a in self.session.run(None, feeds))
        return StepOutput(Carry(y, z), logits, q_halt, q_continue)

    def solve(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None, **options: Any) -> Solution:
        """``model.solve`` with this step: same arguments, same halting, same answers."""
        return self.model.solve(tokens, puzzle_ids, step=self, **options)


def check_engine(engine: str) -> str:
    """``engine`` if it is one of ``ENGINES``, else ``ConfigError`` naming them."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    return engine


def step_for_engine(model: TRM, engine: str, threads: int | None = None, *,
                    cuda_graphs: bool = False) -> StepFunction | None:
    """The ``step`` that solves ``model`` with ``engine``: None for ``eager`` (``TRM.deep_recursion``), an
    ``OnnxStep`` for ``onnx``. ``EngineUnavailable`` for ``onnx`` without onnxruntime or on a GPU model.
    ``cuda_graphs``: with ``eager``, a model on a CUDA device replays its steps from CUDA graphs
    (``trm_modules.model.cuda_graphs``); a model on the CPU is not affected."""
    if check_engine(engine) == "eager":
        return cuda_graph_step(model) if cuda_graphs else None
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise EngineUnavailable(f"the onnx engine runs on the CPU; the model is on {device} (use the eager engine "
                                "there, or the CPU)")
    return OnnxStep(model, threads=threads)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())
