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
from .reasoning import Carry, ReasoningModel, Solution, StepFunction, StepOutput

#: The engines a model can be solved with; ``auto`` measures eager and onnx when a model loads
#: (``trm_modules.model.engine_choice``).
Engine = Literal["eager", "onnx", "auto"]
ENGINES: tuple[str, ...] = ("eager", "onnx", "auto")


def export_graph(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    *,
    opset: int = 17,
    optimize: bool = False,
) -> bytes:
    """The ONNX bytes of ``module`` traced on ``args``, every input and output with a dynamic batch axis 0.

    The TorchScript exporter is deprecated but exact here; the tracer's warnings concern Python
    branches on config values, which are constants of the graph. ``optimize``: fold constants with
    onnxscript's optimizer (about half the nodes; a browser builds its session in proportion to them).
    """
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in [*input_names, *output_names]},
        )
    graph = buffer.getvalue()
    if optimize:
        try:
            import onnx
            import onnxscript.optimizer
        except ImportError as exc:  # the `onnx` extra
            raise EngineUnavailable(
                "optimizing an ONNX graph needs onnx and onnxscript: pip install 'trm-modules[onnx]'"
            ) from exc
        graph = onnxscript.optimizer.optimize(onnx.load_from_string(graph)).SerializeToString()
    return graph


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or ``EngineUnavailable`` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailable(
            "the onnx engine needs onnxruntime, which is not installed: "
            "pip install 'trm-modules[onnx]' (or use the eager engine)"
        ) from exc
    return onnxruntime


class _Step(nn.Module):
    """``deep_recursion`` with plain tensors in and out (what the ONNX exporter traces)."""

    def __init__(self, model: ReasoningModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.deep_recursion(x, Carry(y, z))
        return out.carry.y, out.carry.z, out.logits, out.q_halt, out.q_continue


def export_step_graph(model: ReasoningModel, opset: int = 17) -> bytes:
    """The ONNX bytes of one supervision step of ``model`` (exported from a float32 CPU copy when needed)."""
    exported = model
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in model.parameters()):
        exported = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    config = model.config
    x = torch.zeros(1, config.total_len, config.hidden_size)
    carry = exported.initial_carry(1)
    return export_graph(
        _Step(exported),
        (x, carry.y.float(), carry.z.float()),
        ["x", "y", "z"],
        ["y_next", "z_next", "logits", "q_halt", "q_continue"],
        opset=opset,
    )


class OnnxStep:
    """One supervision step of ``model`` (float32, CPU) as an ONNX Runtime session; call it like
    ``model.deep_recursion(x, carry)``, or pass it to ``model.solve(..., step=...)``.

    ``threads``: ONNX Runtime intra-op threads (default: torch's intra-op thread count). A model in
    another dtype is exported from a float32 copy (``model`` itself is left as it is).
    ``EngineUnavailable`` when onnxruntime is not installed.
    """

    def __init__(
        self, model: ReasoningModel, threads: int | None = None, opset: int = 17, *, graph: bytes | None = None
    ) -> None:
        onnxruntime = import_onnxruntime()
        self.model = model.eval()
        if graph is None:  # ``graph``: one export shared by sessions on different thread counts
            graph = export_step_graph(model, opset)
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


def step_for_engine(
    model: ReasoningModel,
    engine: str,
    threads: int | None = None,
    *,
    cuda_graphs: bool = False,
    precision: str = "fp32",
    check_tokens: np.ndarray | None = None,
    check_puzzle_ids: np.ndarray | None = None,
    answer_table: np.ndarray | None = None,
    shapes: Sequence[int] = (1, 16),
) -> StepFunction | None:
    """The ``step`` that solves ``model`` with ``engine``: None for ``eager`` (``TRM.deep_recursion``), an
    ``OnnxStep`` for ``onnx``, a ``ChosenStep`` for ``auto`` (measured now; ``threads``: the most cores it may
    use; ``check_tokens``/``check_puzzle_ids``/``answer_table``: inputs ONNX must answer as eager does;
    ``shapes``: the batch sizes measured).
    ``EngineUnavailable`` for ``onnx`` without onnxruntime or on a GPU model. ``precision`` bf16: the ONNX graph
    is fp32, so ``auto`` chooses among eager thread counts only and ``onnx`` is refused.
    ``cuda_graphs``: with ``eager``, a model on a CUDA device replays its steps from CUDA graphs
    (``trm_modules.model.cuda_graphs``); a model on the CPU is not affected."""
    device = next(model.parameters()).device
    if check_engine(engine) == "auto":
        if device.type != "cpu" or next(model.parameters()).dtype != torch.float32:
            return step_for_engine(model, "eager", cuda_graphs=cuda_graphs)
        from .engine_choice import choose_step
        from .precision import all_cores

        cores = threads or all_cores()
        return choose_step(
            model,
            threads=(1, cores),
            shapes=shapes,
            engines=("eager",) if precision == "bf16" else ("eager", "onnx"),
            check_tokens=check_tokens,
            check_puzzle_ids=check_puzzle_ids,
            answer_table=answer_table,
        )
    if engine == "eager":
        return cuda_graph_step(model) if cuda_graphs else None
    if precision == "bf16":
        raise EngineUnavailable("the onnx engine computes in fp32; use --precision fp32 with it (or the eager engine)")
    if device.type != "cpu":
        raise EngineUnavailable(
            f"the onnx engine runs on the CPU; the model is on {device} (use the eager engine there, or the CPU)"
        )
    return OnnxStep(model, threads=threads)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())
