"""The Tiny Recursive Model (arXiv 2510.04871), as the authors implement it.

Reads top to bottom: primitives (RMSNorm, RoPE, SwiGLU) → attention → block → the single
network ``net`` → ``TRM`` with ``latent_recursion`` / ``deep_recursion`` → ``solve``.
Shapes: B batch, P puzzle positions, L task tokens, D hidden size.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import TRMConfig, swiglu_intermediate
from .reasoning import (
    Carry,  # noqa: F401
    ReasoningModel,  # noqa: F401
    Solution,  # noqa: F401
    StepFunction,  # noqa: F401
    StepOutput,  # noqa: F401
    constrained_argmax,  # noqa: F401
    count_parameters,  # noqa: F401
    owned_copy,  # noqa: F401
)


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


class TRM(ReasoningModel):
    """Tiny Recursive Model: one network recursing on a reasoning state ``z`` and an answer ``y``."""

    architecture: ClassVar[str] = "trm"
    config: TRMConfig

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

    def describe(self) -> str:
        cfg = self.config
        return (
            f"TRM ({'sequence-MLP' if cfg.mlp_t else 'attention'} mixer, {cfg.L_layers} blocks), "
            f"H_cycles={cfg.H_cycles}, L_cycles={cfg.L_cycles}"
        )
