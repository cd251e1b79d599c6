"""What every reasoning architecture's network is to the rest of the project: the supervision-step contract.

A reasoning model (TRM, HRM, a plugin's) answers a task in *supervision steps*. One step maps the
input embedding ``x`` (B, P+L, D) and a ``Carry`` (two latent states, each (B, P+L, D)) to a new
carry, answer logits (B, L, vocab) and two halting logits. Everything that solves, batches, trains,
exports or serves a model — ``solve`` below, ``trm_modules.solving``, the host, the trainer, the ONNX
engine and the browser export — goes through this contract and nothing else, so an architecture a
plugin registers (``trm_register_architectures``) is packed, served and trained like the built-in ones.

A subclass of ``ReasoningModel`` provides:

- ``config``: a pydantic model with at least ``vocab_size``, ``seq_len``, ``hidden_size``,
  ``halt_max_steps``, ``halt_exploration_prob``, and the properties ``puzzle_len`` and ``total_len``;
- ``deep_recursion(x, carry) -> StepOutput`` (one supervision step; the returned carry is detached);
- optionally ``input_embeddings``, ``initial_carry``/``reset_carry`` (defaults: the TRM authors' token
  and puzzle embeddings, ``H_init``/``L_init`` broadcast over positions), ``halting_logit`` (default
  ``q_halt``) and ``supervision_loss`` (default: token cross-entropy + ``halt_weight`` · BCE(q_halt,
  answer right), as TRM trains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Carry:
    """Recursion state carried between supervision steps: answer ``y`` and reasoning ``z``."""

    y: torch.Tensor  # (B, P+L, D), authors' z_H
    z: torch.Tensor  # (B, P+L, D), authors' z_L


@dataclass
class StepOutput:
    carry: Carry
    logits: torch.Tensor  # (B, L, vocab)
    q_halt: torch.Tensor  # (B,) halting logit
    q_continue: torch.Tensor  # (B,) kept for checkpoint compatibility; unused by TRM's halting


#: One supervision step from (x, carry), in place of ``model.deep_recursion`` (``solve``'s ``step``: an engine's).
StepFunction = Callable[[torch.Tensor, Carry], StepOutput]


@dataclass
class Solution:
    tokens: torch.Tensor  # (B, L) answer token ids
    steps: torch.Tensor  # (B,) supervision steps used
    confidence: torch.Tensor  # (B,) sigmoid(q_halt) at the step that answered


def constrained_argmax(
    logits: torch.Tensor, tokens: torch.Tensor, answer_table: torch.Tensor | None = None
) -> torch.Tensor:
    """Answer tokens (B, L): the argmax of ``logits`` (B, L, V), where ``answer_table`` (V, V) bool is
    given only over the tokens it allows at each cell (row = the input's token there), so an answer
    never contradicts what the input fixes (``TaskCodec.answer_token_table``)."""
    if answer_table is None:
        return logits.argmax(-1)
    allowed = answer_table[tokens.long()]  # (B, L, V)
    return logits.masked_fill(~allowed, float("-inf")).argmax(-1)


def owned_copy(tensor: torch.Tensor, device: str | torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A copy of ``tensor`` on ``device`` in ``dtype`` that shares no memory with it.

    A contiguous CPU tensor staying on the CPU in its own dtype is copied with one single-threaded
    ``memcpy`` (through NumPy byte views): ``Tensor.to(copy=True)`` splits a large copy across the
    intra-op thread pool, which on a busy machine waits milliseconds for every thread to be scheduled.
    """
    if (
        torch.device(device).type == "cpu"
        and tensor.device.type == "cpu"
        and tensor.dtype == dtype
        and tensor.is_contiguous()
        and tensor.numel() > 0
    ):
        copy = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        copy.view(-1).view(torch.uint8).numpy()[...] = tensor.detach().view(-1).view(torch.uint8).numpy()
        return copy
    return tensor.to(device=device, dtype=dtype, copy=True)


class ReasoningModel(nn.Module):
    """Base of every architecture's network: the generic inputs, carry, halting and solving loop."""

    #: The name a manifest's ``model.architecture`` gives this network (``Architecture.name``).
    architecture: ClassVar[str] = ""
    config: Any
    H_init: torch.Tensor
    L_init: torch.Tensor
    # Read by the default ``input_embeddings`` (an architecture with its own inputs need not have them).
    embed_tokens: Any
    puzzle_emb: Any
    embed_pos: Any

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        # Halting at inference: stop at the first step >= halt_min_steps where the halting logit > halt_threshold.
        # The paper's rule (0, 1) unless a package calibrated its own (trm_modules.train.halting).
        self.halt_threshold = 0.0
        self.halt_min_steps = 1

    @classmethod
    def from_state_dict(
        cls,
        config: Any,
        tensors: Mapping[str, torch.Tensor],
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The model of ``config`` holding copies of ``tensors`` (every persistent tensor, strictly), in eval mode.

        Built on the meta device and each tensor copied once, straight into the tensor the model
        keeps (no random init, no empty model to copy into); the buffers that are computed rather
        than stored (the RoPE tables) are recomputed here. ``dtype`` (floating-point tensors only)
        defaults to the dtype of ``tensors``.
        """
        if dtype is None:
            dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
        with torch.device("meta"):
            model = cls(config)
        persistent = set(model.state_dict())
        # Computed buffers are built on the CPU even under the meta device (see RotaryEmbedding).
        computed = {name: buffer for name, buffer in model.named_buffers() if name not in persistent}
        owned = {
            name: owned_copy(t, device, dtype if t.is_floating_point() else t.dtype) for name, t in tensors.items()
        }
        model.load_state_dict(owned, strict=True, assign=True)
        for name, buffer in computed.items():
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner).register_buffer(leaf, buffer.to(device=device, dtype=dtype), persistent=False)
        return model.eval()

    # ----------------------------------------------------------------------------- inputs
    def input_embeddings(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        """x = sqrt(D) · [puzzle vector as P rows ; token embeddings]  → (B, P+L, D)."""
        cfg = self.config
        dtype = self.H_init.dtype
        x = self.embed_tokens(tokens.long()).to(dtype)
        if cfg.puzzle_emb_ndim > 0:
            pe = self.puzzle_emb(puzzle_ids.long()).to(dtype)
            pad = cfg.puzzle_len * cfg.hidden_size - pe.shape[-1]
            if pad > 0:
                pe = F.pad(pe, (0, pad))
            x = torch.cat((pe.view(-1, cfg.puzzle_len, cfg.hidden_size), x), dim=-2)
        if cfg.pos_encodings == "learned":
            x = 0.707106781 * (x + self.embed_pos.weight.to(dtype))
        return math.sqrt(cfg.hidden_size) * x

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        return Carry(y=self.H_init.expand(shape).clone(), z=self.L_init.expand(shape).clone())

    def reset_carry(self, carry: Carry, reset: torch.Tensor) -> Carry:
        """Put rows where ``reset`` is True back to ``H_init`` / ``L_init`` (new examples)."""
        r = reset.view(-1, 1, 1)
        return Carry(y=torch.where(r, self.H_init, carry.y), z=torch.where(r, self.L_init, carry.z))

    # ------------------------------------------------------------------------ one step
    def deep_recursion(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        """One supervision step (the architecture's own computation)."""
        raise NotImplementedError

    def forward(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, carry: Carry) -> StepOutput:
        return self.deep_recursion(self.input_embeddings(tokens, puzzle_ids), carry)

    def halting_logit(self, out: StepOutput) -> torch.Tensor:
        """The logit whose sign says "stop here" (B,): ``q_halt`` for TRM; an architecture may combine
        both heads (HRM halts where ``q_halt > q_continue``). Solving, calibration, training and the
        browser export all halt on it."""
        return out.q_halt

    def supervision_loss(
        self,
        out: StepOutput,
        labels: torch.Tensor,
        *,
        tokens: torch.Tensor,
        puzzle_ids: torch.Tensor,
        is_last: torch.Tensor,
        kind: str = "stablemax",
        halt_weight: float = 0.5,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss of one supervision step (``out`` of ``forward(tokens, puzzle_ids, carry)``);
        ``is_last`` marks the rows at their last allowed step. Default: TRM's deep-supervision loss."""
        from .losses import deep_supervision_loss

        return deep_supervision_loss(out.logits, labels, out.q_halt, kind, halt_weight)

    def describe(self) -> str:
        """One line for a model card: which network, which recursion."""
        return self.architecture

    def count_parameters(self) -> int:
        """Trainable parameters as the authors count them (puzzle-embedding table excluded)."""
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("puzzle_emb."))

    # -------------------------------------------------------------------------- inference
    def use_halting(self, threshold: float | None, min_steps: int = 1) -> Any:
        """Halt at the first step >= ``min_steps`` with halting logit > ``threshold`` (None: run every step);
        a package's calibrated policy (``evaluation.halting``, see ``trm_modules.train.halting``)."""
        self.halt_threshold = float("inf") if threshold is None else float(threshold)
        self.halt_min_steps = int(min_steps)
        return self

    @torch.no_grad()
    def solve(
        self,
        tokens: torch.Tensor,
        puzzle_ids: torch.Tensor | None = None,
        max_steps: int | None = None,
        halt: bool = True,
        answer_table: torch.Tensor | None = None,
        step: StepFunction | None = None,
    ) -> Solution:
        """Answer a batch, with early halting.

        With ``halt=True`` an example stops at the first step where ``q_halt > halt_threshold`` (0
        unless calibrated; the halting logit, see ``halting_logit``) and at least ``halt_min_steps`` steps ran, and leaves the batch, so later
        steps only compute the rows still running. With ``halt=False`` every
        example runs ``max_steps`` steps, as in the authors' evaluation. ``answer_table`` constrains
        each answer token to those the input allows at its cell (``constrained_argmax``). ``step``
        computes one supervision step in place of ``deep_recursion`` (``onnx_step.OnnxStep``).
        """
        run_step = step or self.deep_recursion
        steps_at_most: int = max_steps or self.config.halt_max_steps
        B = tokens.shape[0]
        device = tokens.device
        if puzzle_ids is None:
            puzzle_ids = torch.zeros(B, dtype=torch.long, device=device)
        x = self.input_embeddings(tokens, puzzle_ids)
        carry = self.initial_carry(B)
        answer = torch.zeros_like(tokens, dtype=torch.long)
        steps = torch.zeros(B, dtype=torch.long, device=device)
        confidence = torch.zeros(B, dtype=torch.float32, device=device)
        rows = torch.arange(B, device=device)  # original index of each running row
        for n in range(1, steps_at_most + 1):
            out = run_step(x, carry)
            answer[rows] = constrained_argmax(out.logits, tokens, answer_table)
            steps[rows] = n
            confidence[rows] = torch.sigmoid(out.q_halt)
            carry = out.carry
            if halt and n < steps_at_most:
                running = (self.halting_logit(out) <= self.halt_threshold) | (n < self.halt_min_steps)
                if not bool(running.all()):
                    if not bool(running.any()):
                        break
                    rows, x, tokens = rows[running], x[running], tokens[running]
                    carry = Carry(carry.y[running], carry.z[running])
        return Solution(tokens=answer, steps=steps, confidence=confidence)


def count_parameters(model: ReasoningModel) -> int:
    """Trainable parameters as the authors count them (puzzle-embedding table excluded)."""
    return model.count_parameters()
