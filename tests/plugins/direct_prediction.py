"""An architecture from outside the core: the paper's "direct prediction" baseline as a trm-modules plugin.

A plain (non-recursive) transformer: token and puzzle embeddings, ``layers`` post-norm attention
blocks, the answer head, in ONE supervision step (``halt_max_steps = 1``). The TRM paper reports it
at 0 % on Sudoku-Extreme against TRM's 87 %: the recursion is what solves.

Nothing here is registered by the core. A third party ships it the way this file does: one
``trm_register_architectures`` hook returning an ``Architecture`` (its pydantic config, its network
implementing ``deep_recursion``). Register it by naming this file in ``TRM_PLUGINS`` or with
``trm_modules.plugins.register_plugin_file``. It uses the project's public building blocks
(``Attention``, ``SwiGLU``, ``rms_norm``) and could as well bring its own.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from trm_modules import hookimpl
from trm_modules.model.architecture import Architecture
from trm_modules.model.reasoning import Carry, ReasoningModel, StepOutput
from trm_modules.model.trm import Attention, Embedding, Linear, SwiGLU, rms_norm

NAME = "direct"


class DirectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(gt=1)
    seq_len: int = Field(gt=0)
    num_puzzle_identifiers: int = Field(1, ge=1)
    hidden_size: int = Field(32, gt=0)
    num_heads: int = Field(2, gt=0)
    expansion: float = Field(2.0, gt=0)
    layers: int = Field(2, gt=0)
    halt_max_steps: int = Field(1, ge=1, le=1, description="One pass: nothing to recurse on.")
    halt_exploration_prob: float = 0.0
    rms_norm_eps: float = 1e-5

    # What the generic parts of the project read from a config.
    puzzle_emb_ndim: int = 0

    @property
    def puzzle_len(self) -> int:
        return 0

    @property
    def total_len(self) -> int:
        return self.seq_len


class DirectTransformer(ReasoningModel):
    """Embeddings (with learned positions) → ``layers`` blocks → ``lm_head``; ``q_head`` on position 0."""

    architecture: ClassVar[str] = NAME
    config: DirectConfig

    def __init__(self, config: DirectConfig) -> None:
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed_tokens = Embedding(config.vocab_size, D, init_std=1.0 / math.sqrt(D))
        self.embed_pos = Embedding(config.seq_len, D, init_std=1.0 / math.sqrt(D))
        self.attention = nn.ModuleList(Attention(D, config.num_heads) for _ in range(config.layers))
        self.mlp = nn.ModuleList(SwiGLU(D, config.expansion) for _ in range(config.layers))
        self.lm_head = Linear(D, config.vocab_size)
        self.q_head = Linear(D, 2, bias=True)
        self.register_buffer("H_init", torch.zeros(D))  # the dtype/device anchor of the generic code

    def input_embeddings(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens.long()) + self.embed_pos.weight
        return math.sqrt(self.config.hidden_size) * x.to(self.H_init.dtype)

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.config.seq_len, self.config.hidden_size)
        zeros = self.H_init.expand(shape).clone()
        return Carry(y=zeros, z=zeros.clone())

    def reset_carry(self, carry: Carry, reset: torch.Tensor) -> Carry:
        return self.initial_carry(carry.y.shape[0])

    def deep_recursion(self, x: torch.Tensor, carry: Carry) -> StepOutput:
        h = x
        for attention, mlp in zip(self.attention, self.mlp):
            h = rms_norm(h + attention(h, None), self.config.rms_norm_eps)
            h = rms_norm(h + mlp(h), self.config.rms_norm_eps)
        q = self.q_head(h[:, 0]).float()
        return StepOutput(Carry(h.detach(), carry.z), self.lm_head(h), q[:, 0], q[:, 1])

    def describe(self) -> str:
        return f"direct prediction transformer ({self.config.layers} blocks, no recursion)"


@hookimpl
def trm_register_architectures() -> list[Architecture]:
    return [
        Architecture(
            NAME,
            DirectConfig,
            DirectTransformer,
            presets={"tiny": DirectConfig(vocab_size=6, seq_len=16)},
            description="non-recursive transformer baseline (the TRM paper's direct prediction)",
        )
    ]
