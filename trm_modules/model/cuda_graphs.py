"""CUDA graphs for one supervision step on a GPU: the whole step replayed as one launch.

At small batches a step of the paper's models is hundreds of small kernels, each launched from
Python; on a GPU the launches, not the arithmetic, set the latency. ``CudaGraphStep`` captures
``TRM.deep_recursion`` once per batch size it meets (exact sizes, no padding, so every kernel sees
the shapes eager sees) into a ``torch.cuda.CUDAGraph`` with static input and output buffers, and
replays it; ``TRM.solve`` takes it as its ``step``, so halting (rows leaving the batch) works as in
eager: a new batch size is captured the first time it appears, up to ``max_graphs`` sizes (beyond
that, and for batches over ``max_batch``, the step runs eager).

Only for models on CUDA devices (``cuda_graph_step`` returns None elsewhere, so the CPU path never
changes). Not timed in this project's sessions (no GPU was available): opt-in
(``Settings.cuda_graphs``, ``trm solve --cuda-graphs``), off by default until measured.
"""

from __future__ import annotations

import torch

from .reasoning import Carry, ReasoningModel, StepOutput


class _Captured:
    """One captured step: static inputs, the graph, and its static outputs."""

    def __init__(self, model: ReasoningModel, x: torch.Tensor, carry: Carry) -> None:
        self.x, self.y, self.z = x.clone(), carry.y.clone(), carry.z.clone()
        stream = torch.cuda.Stream(device=x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):  # warm-up off the default stream, as capture requires
            for _ in range(2):
                model.deep_recursion(self.x, Carry(self.y, self.z))
        torch.cuda.current_stream(x.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # its own memory pool: graphs replay in any order
            self.out = model.deep_recursion(self.x, Carry(self.y, self.z))

    def __call__(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        self.x.copy_(x)
        self.y.copy_(carry.y)
        self.z.copy_(carry.z)
        self.graph.replay()
        out = self.out  # copies: the next replay overwrites the static outputs
        return StepOutput(
            Carry(out.carry.y.clone(), out.carry.z.clone()),
            out.logits.clone(),
            out.q_halt.clone(),
            out.q_continue.clone(),
        )


class CudaGraphStep:
    """``model.deep_recursion`` replayed from CUDA graphs, one per batch size (see the module docstring)."""

    def __init__(self, model: ReasoningModel, max_graphs: int = 32, max_batch: int = 256) -> None:
        self.model = model.eval()
        self.max_graphs = max_graphs
        self.max_batch = max_batch
        self._graphs: dict[tuple[int, torch.dtype, bool], _Captured] = {}

    def __call__(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        batch = x.shape[0]
        if batch > self.max_batch or torch.is_grad_enabled():
            return self.model.deep_recursion(x, carry)
        # Buffers made under inference mode cannot be written outside it (and the other way round).
        key = (batch, x.dtype, torch.is_inference_mode_enabled())
        captured = self._graphs.get(key)
        if captured is None:
            if len(self._graphs) >= self.max_graphs:
                return self.model.deep_recursion(x, carry)
            captured = self._graphs[key] = _Captured(self.model, x, carry)
        return captured(x, carry)


def cuda_graph_step(model: ReasoningModel) -> CudaGraphStep | None:
    """A ``CudaGraphStep`` for a model on a CUDA device; None for any other device (its step stays eager)."""
    device = next(model.parameters()).device
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return CudaGraphStep(model)
