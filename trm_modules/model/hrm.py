"""The Hierarchical Reasoning Model (HRM; Wang et al., arXiv 2506.21734), as its authors implement it.

Written from the authors' ``models/hrm/hrm_act_v1.py`` (sapientinc/HRM), in this project's terms:
two recurrent modules of post-norm transformer blocks, **L** (fast, ``L_layers`` blocks) and **H**
(slow, ``H_layers`` blocks). One supervision step runs ``H_cycles × L_cycles`` L-updates
``z_L ← L(z_L, z_H + x)``, with an H-update ``z_H ← H(z_H, z_L)`` after every ``L_cycles`` of them;
all but the last L-update and the last H-update run without gradient (the one-step approximation of
the fixed-point gradient). The answer is ``lm_head(z_H)`` over the task positions; ``q_head`` on the
first position gives the halt and continue logits (Q-learning halting: stop where
``q_halt > q_continue``). Training adds the bootstrapped continue target (``supervision_loss``).

The tensor names follow the authors' (``H_level.layers.{i}.self_attn.qkv_proj.weight`` …), so their
checkpoints import by dropping prefixes (``load_authors_hrm_checkpoint``). Shapes: B batch, P puzzle
positions, L task tokens, D hidden size. The carry's ``y`` is their ``z_H`` and ``z`` their ``z_L``.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from .reasoning import Carry, ReasoningModel, StepOutput
from .trm import Attention, Embedding, Linear, RotaryEmbedding, SwiGLU, rms_norm, trunc_normal_


class HRMConfig(BaseModel):
    """The authors' ``HierarchicalReasoningModel_ACTV1Config`` less its run settings (batch size, dtype)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Task shape
    vocab_size: int = Field(gt=1, description="Number of token ids, including pad (0).")
    seq_len: int = Field(gt=0, description="Number of answer/input tokens L.")
    num_puzzle_identifiers: int = Field(1, ge=1, description="Rows of the puzzle-embedding table.")
    puzzle_emb_ndim: int = Field(0, ge=0, description="Width of a puzzle vector; 0 disables it.")
    puzzle_emb_len: int = Field(
        0, ge=0, description="P, positions the puzzle vector occupies; 0 = ceil(ndim / hidden)."
    )

    # Network: two modules of attention blocks
    hidden_size: int = Field(512, gt=0)
    num_heads: int = Field(8, gt=0)
    expansion: float = Field(4.0, gt=0)
    H_layers: int = Field(4, gt=0, description="Blocks of the slow module H.")
    L_layers: int = Field(4, gt=0, description="Blocks of the fast module L.")
    pos_encodings: Literal["rope", "learned"] = "rope"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    # Recursion
    H_cycles: int = Field(2, ge=1, description="H-updates per supervision step.")
    L_cycles: int = Field(2, ge=1, description="L-updates per H-update.")

    # Adaptive computation time (Q-learning halting)
    halt_max_steps: int = Field(16, ge=1, description="Maximum supervision steps.")
    halt_exploration_prob: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> "HRMConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.pos_encodings == "rope" and (self.hidden_size // self.num_heads) % 2:
            raise ValueError("RoPE needs an even head dimension")
        return self

    @property
    def puzzle_len(self) -> int:
        if self.puzzle_emb_ndim == 0:
            return 0
        return self.puzzle_emb_len or math.ceil(self.puzzle_emb_ndim / self.hidden_size)

    @property
    def total_len(self) -> int:
        return self.puzzle_len + self.seq_len

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


HRM_PRESETS: dict[str, HRMConfig] = {
    # config/arch/hrm_v1.yaml of the authors, on Sudoku (vocab 11, 81 cells, one puzzle id).
    "paper-hrm-sudoku": HRMConfig(
        vocab_size=11,
        seq_len=81,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=512,
        hidden_size=512,
        num_heads=8,
        expansion=4,
        H_layers=4,
        L_layers=4,
        pos_encodings="rope",
        H_cycles=2,
        L_cycles=2,
        halt_max_steps=16,
        halt_exploration_prob=0.1,
    ),
}


class HRMBlock(nn.Module):
    """Post-norm block: ``h = norm(h + attention(h)); h = norm(h + swiglu(h))``."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.self_attn = Attention(config.hidden_size, config.num_heads)
        self.mlp = SwiGLU(config.hidden_size, config.expansion)

    def forward(self, h: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        h = rms_norm(h + self.self_attn(h, rope), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """One of the two recurrent modules: ``module(state, injection)`` = blocks over ``state + injection``."""

    def __init__(self, config: HRMConfig, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(HRMBlock(config) for _ in range(layers))

    def forward(self, state: torch.Tensor, injection: torch.Tensor, rope: RotaryEmbedding | None) -> torch.Tensor:
        h = state + injection
        for layer in self.layers:
            h = layer(h, rope)
        return h


class HRM(ReasoningModel):
    """Hierarchical Reasoning Model: a slow module H and a fast module L, Q-learning halting."""

    architecture: ClassVar[str] = "hrm"
    config: HRMConfig

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed_tokens = Embedding(config.vocab_size, D, init_std=1.0 / math.sqrt(D))
        if config.puzzle_emb_ndim > 0:
            # Zero-init; the authors keep it as a buffer with a sparse SignSGD optimiser, so counts exclude it.
            self.puzzle_emb = Embedding(config.num_puzzle_identifiers, config.puzzle_emb_ndim, init_std=0.0)
        if config.pos_encodings == "learned":
            self.embed_pos = Embedding(config.total_len, D, init_std=1.0 / math.sqrt(D))
        self.rope = (
            RotaryEmbedding(config.head_dim, config.total_len, config.rope_theta)
            if config.pos_encodings == "rope"
            else None
        )
        self.H_level = ReasoningModule(config, config.H_layers)
        self.L_level = ReasoningModule(config, config.L_layers)
        self.lm_head = Linear(D, config.vocab_size)
        self.q_head = Linear(D, 2, bias=True)
        if not self.q_head.weight.is_meta:
            with torch.no_grad():  # Q starts near "never halt": faster learning while bootstrapping
                self.q_head.weight.zero_()
                self.q_head.bias.fill_(-5.0)
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), 1.0))
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), 1.0))

    def deep_recursion(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        """One supervision step: H_cycles × L_cycles L-updates and H_cycles H-updates, the last of each
        with gradient (one-step gradient), then the heads on ``z_H``."""
        cfg, rope = self.config, self.rope
        z_H, z_L = carry.y, carry.z
        with torch.no_grad():
            for h_step in range(cfg.H_cycles):
                for l_step in range(cfg.L_cycles):
                    if not (h_step == cfg.H_cycles - 1 and l_step == cfg.L_cycles - 1):
                        z_L = self.L_level(z_L, z_H + x, rope)
                if h_step != cfg.H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, rope)
        z_L = self.L_level(z_L, z_H + x, rope)
        z_H = self.H_level(z_H, z_L, rope)
        logits = self.lm_head(z_H)[:, cfg.puzzle_len :]
        q = self.q_head(z_H[:, 0]).float()
        return StepOutput(Carry(z_H.detach(), z_L.detach()), logits, q[:, 0], q[:, 1])

    def halting_logit(self, out: StepOutput) -> torch.Tensor:
        """HRM halts where ``q_halt > q_continue``: the logit is their difference."""
        return out.q_halt - out.q_continue

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
        """``lm + halt_weight · (BCE(q_halt, answer right) + BCE(q_continue, target))``; the continue target
        is bootstrapped from the next step's Q values on the new carry (no replay buffer, no target
        network): sigmoid(q_halt') at the last allowed step, else sigmoid(max(q_halt', q_continue')).
        Means over the batch, where the authors sum (the project's TRM loss is a mean too)."""
        from .losses import deep_supervision_loss

        loss, metrics = deep_supervision_loss(out.logits, labels, out.q_halt, kind, halt_weight)
        with torch.no_grad():
            following = self.deep_recursion(self.input_embeddings(tokens, puzzle_ids), out.carry)
            target = torch.sigmoid(
                torch.where(is_last, following.q_halt, torch.maximum(following.q_halt, following.q_continue))
            )
        q_continue = F.binary_cross_entropy_with_logits(out.q_continue, target)
        metrics["q_continue_loss"] = q_continue.detach()
        return loss + halt_weight * q_continue, metrics

    def describe(self) -> str:
        cfg = self.config
        return (
            f"HRM (H module {cfg.H_layers} blocks, L module {cfg.L_layers} blocks, attention, "
            f"{cfg.pos_encodings} positions), H_cycles={cfg.H_cycles} × L_cycles={cfg.L_cycles}"
        )
