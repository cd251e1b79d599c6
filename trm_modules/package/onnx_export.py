"""ONNX exports of a package's model.

``export_onnx``: the recursion unrolled for a fixed number of steps, no halting. The graph maps
``tokens`` (int64, batch × L) and ``puzzle_ids`` (int64, batch) to ``answer`` (int64 tokens after
the last step, decoded within what each input cell allows, as every solving path decodes) and
``confidence`` (sigmoid of the last halting logit) — the same as
``model.solve(..., max_steps=N, halt=False, answer_table=…)``. ``check_onnx`` runs the file with
onnxruntime on the package's examples and compares tokens with torch.

``export_onnx_step``: one supervision step, the carry passed in and out, for runtimes that loop
themselves and halt early as ``model.solve(halt=True)`` does (the browser activities). Its graph is
about a step's size, so a browser builds the session in seconds where the unrolled graph, N times
larger, takes tens of seconds. ``check_onnx_step`` loops it with halting and compares with torch.

Both go through ``trm_modules.model.onnx_step.export_graph``, the export the host's ``onnx`` engine uses too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..model import ReasoningModel, constrained_argmax
from ..errors import EngineUnavailable
from ..model.onnx_step import export_graph
from ..model.reasoning import Carry
from .errors import PackageError
from .loaded import Package


class UnrolledSolver(nn.Module):
    """``steps`` supervision steps of ``model`` back to back, as one traceable forward pass; the
    codec's answer-token table (when it has one) is a constant of the graph."""

    def __init__(self, model: ReasoningModel, steps: int, answer_table: np.ndarray | None = None) -> None:
        super().__init__()
        self.model = model
        self.steps = steps
        self.answer_table = None if answer_table is None else torch.from_numpy(answer_table)

    def forward(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model.input_embeddings(tokens, puzzle_ids)
        carry = self.model.initial_carry(tokens.shape[0])
        out = None
        for _ in range(self.steps):
            out = self.model.deep_recursion(x, carry)
            carry = out.carry
        return constrained_argmax(out.logits, tokens, self.answer_table), torch.sigmoid(out.q_halt)


class StepSolver(nn.Module):
    """One supervision step of ``model`` with the carry as explicit tensors; ``fresh`` rows start from
    the model's initial carry (``reset_carry``), so the caller never needs the model's buffers."""

    def __init__(self, model: ReasoningModel, answer_table: np.ndarray | None = None) -> None:
        super().__init__()
        self.model = model
        self.answer_table = None if answer_table is None else torch.from_numpy(answer_table)

    def forward(
        self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, y: torch.Tensor, z: torch.Tensor, fresh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        carry = self.model.reset_carry(Carry(y, z), fresh)
        out = self.model.deep_recursion(self.model.input_embeddings(tokens, puzzle_ids), carry)
        halt = self.model.halting_logit(out)  # the architecture's halting logit (HRM: q_halt − q_continue)
        return constrained_argmax(out.logits, tokens, self.answer_table), halt, out.carry.y, out.carry.z


#: Inputs and outputs of the step graph; the carry is ``(batch, puzzle_len + seq_len, hidden_size)`` float32.
STEP_INPUTS = ("tokens", "puzzle_ids", "y", "z", "fresh")
STEP_OUTPUTS = ("answer", "q_halt", "y_next", "z_next")


def _example_tokens(package: Package) -> tuple[torch.Tensor, torch.Tensor]:
    codec = package.codec()
    inputs = [inp for inp, _ in package.examples]
    tokens = torch.from_numpy(np.stack([codec.encode_input(d) for d in inputs]).astype(np.int64))
    puzzle_ids = torch.tensor([codec.puzzle_id(d) for d in inputs], dtype=torch.long)
    return tokens, puzzle_ids


def export_onnx(
    package: Package, out_path: str | os.PathLike, *, max_steps: int | None = None, opset: int = 17
) -> Path:
    """Write the package's model as ONNX (float32, steps = ``max_steps`` or the config's ``halt_max_steps``)."""
    out_path = Path(out_path)
    steps = max_steps or package.manifest.model.config.halt_max_steps
    model = package.load_model("cpu", dtype=torch.float32)
    solver = UnrolledSolver(model, steps, package.codec().answer_token_table()).eval()
    tokens, puzzle_ids = _example_tokens(package)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(
        export_graph(solver, (tokens, puzzle_ids), ["tokens", "puzzle_ids"], ["answer", "confidence"], opset=opset)
    )
    return out_path


@dataclass
class OnnxCheck:
    """Agreement of the ONNX file with torch on the package's examples."""

    examples: int
    identical: int
    max_confidence_difference: float

    @property
    def ok(self) -> bool:
        return self.examples == self.identical

    @classmethod
    def compare(cls, answer: np.ndarray, confidence: np.ndarray, expected: Any) -> "OnnxCheck":
        """How far ONNX's ``answer`` and ``confidence`` are from torch's ``expected`` (a ``Solution``)."""
        identical = int((answer == expected.tokens.numpy()).all(axis=1).sum())
        difference = float(np.abs(confidence - expected.confidence.numpy()).max()) if len(confidence) else 0.0
        return cls(examples=len(answer), identical=identical, max_confidence_difference=difference)


def _torch_reference(
    package: Package, onnx_path: str | os.PathLike, max_steps: int | None, halt: bool
) -> tuple[ReasoningModel, torch.Tensor, torch.Tensor, Any, Any]:
    """(model, example tokens, puzzle ids, torch's solution, an onnxruntime session of ``onnx_path``)."""
    try:
        import onnxruntime
    except ImportError as exc:  # the `onnx` extra
        raise PackageError(
            "checking an ONNX export needs onnxruntime: pip install 'trm-modules[onnx]'", rule="onnx"
        ) from exc
    steps = max_steps or package.manifest.model.config.halt_max_steps
    tokens, puzzle_ids = _example_tokens(package)
    model = package.load_model("cpu", dtype=torch.float32)
    table = package.codec().answer_token_table()
    expected = model.solve(
        tokens, puzzle_ids, max_steps=steps, halt=halt, answer_table=None if table is None else torch.from_numpy(table)
    )
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return model, tokens, puzzle_ids, expected, session


def check_onnx(package: Package, onnx_path: str | os.PathLike, *, max_steps: int | None = None) -> OnnxCheck:
    """Run ``onnx_path`` with onnxruntime on the examples; compare with ``model.solve(halt=False)``."""
    _, tokens, puzzle_ids, expected, session = _torch_reference(package, onnx_path, max_steps, halt=False)
    answer, confidence = session.run(None, {"tokens": tokens.numpy(), "puzzle_ids": puzzle_ids.numpy()})
    return OnnxCheck.compare(answer, confidence, expected)


def export_onnx_step(package: Package, out_path: str | os.PathLike, *, opset: int = 17) -> Path:
    """Write one supervision step of the package's model as ONNX (see the module docstring), constant-folded
    by onnxscript's optimizer (half the nodes, and a browser builds a session in proportion to them)."""
    from ..plugins import get_architecture

    architecture = get_architecture(package.manifest.model.architecture)
    if not (architecture.onnx_step and architecture.browser_export):
        raise PackageError(
            f"the {architecture.name} architecture does not export its step for the browser", rule="onnx"
        )
    out_path = Path(out_path)
    model = package.load_model("cpu", dtype=torch.float32)
    solver = StepSolver(model, package.codec().answer_token_table()).eval()
    tokens, puzzle_ids = _example_tokens(package)
    carry = model.initial_carry(tokens.shape[0])
    fresh = torch.ones(tokens.shape[0], dtype=torch.bool)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        graph = export_graph(
            solver, (tokens, puzzle_ids, carry.y, carry.z, fresh), STEP_INPUTS, STEP_OUTPUTS, opset=opset, optimize=True
        )
    except EngineUnavailable as exc:  # the `onnx` extra
        raise PackageError(f"exporting the step graph: {exc}", rule="onnx") from exc
    out_path.write_bytes(graph)
    return out_path


def check_onnx_step(package: Package, onnx_path: str | os.PathLike, *, max_steps: int | None = None) -> OnnxCheck:
    """Loop the step graph with early halting on the examples; compare with ``model.solve(halt=True)``."""
    model, tokens, puzzle_ids, expected, session = _torch_reference(package, onnx_path, max_steps, halt=True)
    steps = max_steps or package.manifest.model.config.halt_max_steps
    carry = model.initial_carry(len(tokens))
    y, z = np.zeros_like(carry.y.numpy()), np.zeros_like(carry.z.numpy())
    fresh = np.ones(len(tokens), dtype=bool)
    answer = np.zeros_like(tokens.numpy())
    confidence = np.zeros(len(tokens), dtype=np.float32)
    running = np.ones(len(tokens), dtype=bool)
    for step in range(1, steps + 1):
        step_answer, q_halt, y, z = session.run(
            None, {"tokens": tokens.numpy(), "puzzle_ids": puzzle_ids.numpy(), "y": y, "z": z, "fresh": fresh}
        )
        fresh = np.zeros_like(fresh)
        answer[running] = step_answer[running]
        confidence[running] = 1.0 / (1.0 + np.exp(-q_halt[running]))
        running &= q_halt <= 0
        if not running.any():
            break
    return OnnxCheck.compare(answer, confidence, expected)
