"""The Tiny Recursive Model (arXiv 2510.04871), as the authors implement it.

Reads top to bottom: primitives (RMSNorm, RoPE, SwiGLU) → attention → block → the single
network ``net`` → ``TRM`` with ``latent_recursion`` / ``deep_recursion`` → ``solve``.
Shapes: B batch, P puzzle positions, L task tokens, D hidden size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .config import TRMConfig, swiglu_intermediate


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated normal at ±2 std whose *actual* std equals ``std`` (authors' init)."""
    if tensor.is_meta:  # shape-only models (package loading) need no random init
        return tensor
    if std == 0:
        with torch.no_grad():
            return tensor.zero_()
    # A standard normal truncated at ±2 has std 0.8796; rescale so the result has ``std``.
    with torch.no_grad():
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0)
        tensor.mul_(std / 0.8796)
    return tensor


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Parameter-free RMSNorm over the last axis, computed in fp32."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


class Linear(nn.Linear):
    """``nn.Linear`` with the authors' init: truncated normal, std 1/sqrt(fan_in); no bias by default."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, 1.0 / math.sqrt(self.in_features))
        if self.bias is not None and not self.bias.is_meta:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), b)


class Embedding(nn.Embedding):
    """``nn.Embedding`` initialised with a truncated normal of the given std (0 = zeros)."""

    init_std: float

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float) -> None:
        object.__setattr__(self, "init_std", init_std)  # read by reset_parameters during __init__
        super().__init__(num_embeddings, embedding_dim)

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, self.init_std)


class RotaryEmbedding(nn.Module):
    """RoPE tables (cos, sin) for every position; recomputed, never loaded from a checkpoint."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_positions: int, theta: float) -> None:
        super().__init__()
        # Computed on the CPU even under a meta-device context (the tables are cheap and exact).
        cos, sin = _rope_tables(head_dim, max_positions, theta)
        self.register_buffer("cos", cos.clone(), persistent=False)
        self.register_buffer("sin", sin.clone(), persistent=False)


@functools.lru_cache(maxsize=16)
def _rope_tables(head_dim: int, max_positions: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) RoPE tables, (max_positions, head_dim) fp32 on the CPU, computed once per shape.

    Remembered because every model built for a package needs them, and on a busy machine the two
    elementwise ops cost milliseconds each; callers get clones, so the cached tables stay as computed.
    """
    with torch.device("cpu"):
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim))
        t = torch.arange(max_positions, dtype=torch.float32, device="cpu")
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # (P+L, head_dim)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, S, H, hd); cos/sin: (S, hd)
    cos = cos.unsqueeze(-2).to(x.dtype)
    sin = sin.unsqueeze(-2).to(x.dtype)
    return x * cos + _rotate_half(x) * sin


class SwiGLU(nn.Module):
    """Fused ``gate_up_proj`` (width → 2·I, rows [gate | up]) and ``down_proj`` (I → width)."""

    def __init__(self, width: int, expansion: float) -> None:
        super().__init__()
        inter = swiglu_intermediate(width, expansion)
        self.gate_up_proj = Linear(width, inter * 2)
        self.down_proj = Linear(inter, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Attention(nn.Module):
    """Non-causal multi-head self-attention, fused ``qkv_proj`` (rows [q | k | v]), no biases."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = Linear(hidden_size, 3 * hidden_size)
        self.o_proj = Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        B, S, D = x.shape
        qkv = self.qkv_proj(x).view(B, S, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # each (B, S, H, hd)
        if rope is not None:
            q = apply_rope(q, rope.cos[:S], rope.sin[:S])
            k = apply_rope(k, rope.cos[:S], rope.sin[:S])
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    """Post-norm block: ``h = norm(h + mixer(h)); h = norm(h + swiglu(h))``."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.mlp_t_mixer = config.mlp_t
        if config.mlp_t:
            # SwiGLU across the sequence axis (width P+L).
            self.mlp_t = SwiGLU(config.total_len, config.expansion)
        else:
            self.self_attn = Attention(config.hidden_size, config.num_heads)
        self.mlp = SwiGLU(config.hidden_size, config.expansion)

    def forward(self, h: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        if self.mlp_t_mixer:
            # The first norm runs while transposed, i.e. over the sequence axis (TRM.md).
            t = h.transpose(1, 2)
            t = rms_norm(t + self.mlp_t(t), self.eps)
            h = t.transpose(1, 2)
        else:
            h = rms_norm(h + self.self_attn(h, rope), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class RecursiveNet(nn.Module):
    """The single tiny network (the authors' ``L_level``): ``net(state, injection)``."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(config.L_layers))

    def forward(self, state: torch.Tensor, injection: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        h = state + injection
        for layer in self.layers:
            h = layer(h, rope)
        return h


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


#: One supervision step from (x, carry), in place of ``TRM.deep_recursion`` (``solve``'s ``step``: an engine's).
StepFunction = Callable[[torch.Tensor, Carry], StepOutput]


@dataclass
class Solution:
    tokens: torch.Tensor  # (B, L) answer token ids
    steps: torch.Tensor  # (B,) supervision steps used
    confidence: torch.Tensor  # (B,) sigmoid(q_halt) at the step that answered


def constrained_argmax(logits: torch.Tensor, tokens: torch.Tensor,
                       answer_table: torch.Tensor | None = None) -> torch.Tensor:
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
    if (torch.device(device).type == "cpu" and tensor.device.type == "cpu" and tensor.dtype == dtype
            and tensor.is_contiguous() and tensor.numel() > 0):
        copy = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        copy.view(-1).view(torch.uint8).numpy()[...] = tensor.detach().view(-1).view(torch.uint8).numpy()
        return copy
    return tensor.to(device=device, dtype=dtype, copy=True)


class TRM(nn.Module):
    """Tiny Recursive Model: one network recursing on a reasoning state ``z`` and an answer ``y``."""

    H_init: torch.Tensor
    L_init: torch.Tensor

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed_scale = math.sqrt(D)
        self.embed_tokens = Embedding(config.vocab_size, D, init_std=1.0 / math.sqrt(D))
        if config.puzzle_emb_ndim > 0:
            # Zero-init, trained with its own learning rate; excluded from parameter counts as
            # the authors (who keep it as a buffer with a sparse optimiser) exclude it.
            self.puzzle_emb = Embedding(config.num_puzzle_identifiers, config.puzzle_emb_ndim, init_std=0.0)
        if config.pos_encodings == "learned":
            self.embed_pos = Embedding(config.total_len, D, init_std=1.0 / math.sqrt(D))
        self.rope = (
            RotaryEmbedding(config.head_dim, config.total_len, config.rope_theta)
            if config.pos_encodings == "rope" and not config.mlp_t
            else None
        )
        self.net = RecursiveNet(config)
        self.lm_head = Linear(D, config.vocab_size)
        self.q_head = Linear(D, 2, bias=True)
        if not self.q_head.weight.is_meta:
            with torch.no_grad():
                self.q_head.weight.zero_()
                self.q_head.bias.fill_(-5.0)
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), 1.0))
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), 1.0))
        # Halting at inference: stop at the first step >= halt_min_steps where q_halt > halt_threshold.
        # The paper's rule (0, 1) unless a package calibrated its own (trm_modules.train.halting).
        self.halt_threshold = 0.0
        self.halt_min_steps = 1

    @classmethod
    def from_state_dict(cls, config: TRMConfig, tensors: Mapping[str, torch.Tensor],
                        device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> "TRM":
        """The TRM of ``config`` holding copies of ``tensors`` (every persistent tensor, strictly), in eval mode.

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
        owned = {name: owned_copy(t, device, dtype if t.is_floating_point() else t.dtype)
                 for name, t in tensors.items()}
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
        return self.embed_scale * x

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        return Carry(y=self.H_init.expand(shape).clone(), z=self.L_init.expand(shape).clone())

    def reset_carry(self, carry: Carry, reset: torch.Tensor) -> Carry:
        """Put rows where ``reset`` is True back to ``H_init`` / ``L_init`` (new examples)."""
        r = reset.view(-1, 1, 1)
        return Carry(y=torch.where(r, self.H_init, carry.y), z=torch.where(r, self.L_init, carry.z))

    # -------------------------------------------------------------------------- recursion
    def latent_recursion(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One cycle: refine the reasoning state n times, then update the answer once."""
        for _ in range(self.config.L_cycles):
            z = self.net(z, y + x, self.rope)
        y = self.net(y, z, self.rope)
        return y, z

    def deep_recursion(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        """One supervision step: T-1 cycles without gradient, one with, then the heads."""
        y, z = carry.y, carry.z
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                y, z = self.latent_recursion(x, y, z)
        y, z = self.latent_recursion(x, y, z)
        P = self.config.puzzle_len
        logits = self.lm_head(y)[:, P:]
        q = self.q_head(y[:, 0]).float()
        return StepOutput(Carry(y.detach(), z.detach()), logits, q[:, 0], q[:, 1])

    def forward(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, carry: Carry) -> StepOutput:
        return self.deep_recursion(self.input_embeddings(tokens, puzzle_ids), carry)

    # -------------------------------------------------------------------------- inference
    def use_halting(self, threshold: float | None, min_steps: int = 1) -> "TRM":
        """Halt at the first step >= ``min_steps`` with q_halt > ``threshold`` (None: run every step);
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
        unless calibrated) and at least ``halt_min_steps`` steps ran, and leaves the batch, so later
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
                running = (out.q_halt <= self.halt_threshold) | (n < self.halt_min_steps)
                if not bool(running.all()):
                    if not bool(running.any()):
                        break
                    rows, x, tokens = rows[running], x[running], tokens[running]
                    carry = Carry(carry.y[running], carry.z[running])
        return Solution(tokens=answer, steps=steps, confidence=confidence)


def count_parameters(model: TRM) -> int:
    """Trainable parameters as the authors count them (puzzle-embedding table excluded)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("puzzle_emb."))
