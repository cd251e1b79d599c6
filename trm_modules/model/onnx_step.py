"""ONNX Runtime as the CPU engine of one supervision step: the fast path for single puzzles.

At batch 1 the paper's 9×9 Sudoku models spend their time in 21 applications of a 2-layer network
per step, each a few dozen small kernels launched from Python. Exporting one supervision step
(``TRM.deep_recursion``: T·(n+1) network applications and both heads) as one ONNX graph lets ONNX
Runtime fuse and schedule the whole step natively. The recursion across steps and ACT halting stay
in ``TRM.solve``, which takes the step as a parameter, so both engines share one solving loop and
give the same answers (tokens identical; floats within fp32 rounding of a differently ordered sum).

Needs the ``onnx`` extra (``onnxruntime``); building a ``OnnxStep`` exports the graph once, in memory.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .trm import TRM, Carry, Solution, StepOutput


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

    ``threads``: ONNX Runtime intra-op threads (default: torch's intra-op thread count).
    """

    def __init__(self, model: TRM, threads: int | None = None, opset: int = 17) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError("the ONNX Runtime step needs onnxruntime: pip install 'trm-modules[onnx]'") from exc
        self.model = model.eval()
        config = model.config
        x = torch.zeros(1, config.total_len, config.hidden_size)
        carry = model.initial_carry(1)
        names = ["y_next", "z_next", "logits", "q_halt", "q_continue"]
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated but exact here; the tracer's warnings concern
            # Python branches on config values, which are constants of the graph.
            warnings.simplefilter("ignore")
            torch.onnx.export(_Step(self.model).float(), (x, carry.y.float(), carry.z.float()), buffer,
                              dynamo=False, opset_version=opset, input_names=["x", "y", "z"], output_names=names,
                              dynamic_axes={name: {0: "batch"} for name in ["x", "y", "z", *names]})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: Any = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                                          providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        feeds = {"x": _numpy(x), "y": _numpy(carry.y), "z": _numpy(carry.z)}
        y, z, logits, q_halt, q_continue = (torch.from_numpy(a) for a in self.session.run(None, feeds))
        return StepOutput(Carry(y, z), logits, q_halt, q_continue)

    def solve(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None, **options: Any) -> Solution:
        """``model.solve`` with this step: same arguments, same halting, same answers."""
        return self.model.solve(tokens, puzzle_ids, step=self, **options)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())
