"""TRMConfig: the architecture and recursion settings of a Tiny Recursive Model.

Field names follow the authors' config (``H_cycles``, ``L_cycles``, ``mlp_t`` …) so that an
``all_config.yaml`` of theirs maps onto it one to one. The config is serialised into every
package manifest; it must be enough to rebuild the network and check tensor shapes.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TRMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Task shape
    vocab_size: int = Field(gt=1, description="Number of token ids, including pad (0).")
    seq_len: int = Field(gt=0, description="Number of answer/input tokens L (e.g. 81 for 9x9 Sudoku).")
    num_puzzle_identifiers: int = Field(1, ge=1, description="Rows of the puzzle-embedding table.")
    puzzle_emb_ndim: int = Field(0, ge=0, description="Width of a puzzle vector; 0 disables it.")
    puzzle_emb_len: int = Field(
        0, ge=0, description="P, positions the puzzle vector occupies; 0 = ceil(ndim / hidden)."
    )

    # Network
    hidden_size: int = Field(512, gt=0)
    num_heads: int = Field(8, gt=0)
    expansion: float = Field(4.0, gt=0)
    L_layers: int = Field(2, gt=0, description="Blocks in the single network `net`.")
    mlp_t: bool = Field(False, description="Sequence-axis MLP mixer instead of self-attention.")
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    # Recursion
    H_cycles: int = Field(3, ge=1, description="T: latent recursions per supervision step.")
    L_cycles: int = Field(6, ge=1, description="n: z updates per latent recursion.")

    # Adaptive computation time
    halt_max_steps: int = Field(16, ge=1, description="Maximum supervision steps N_sup.")
    halt_exploration_prob: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> "TRMConfig":
        if not self.mlp_t and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.pos_encodings == "rope" and not self.mlp_t and (self.hidden_size // self.num_heads) % 2:
            raise ValueError("RoPE needs an even head dimension")
        return self

    @property
    def puzzle_len(self) -> int:
        """P: prepended positions holding the puzzle vector (0 when there is none)."""
        if self.puzzle_emb_ndim == 0:
            return 0
        if self.puzzle_emb_len:
            return self.puzzle_emb_len
        return math.ceil(self.puzzle_emb_ndim / self.hidden_size)

    @property
    def total_len(self) -> int:
        """P + L: positions the network sees."""
        return self.puzzle_len + self.seq_len

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def swiglu_intermediate(width: int, expansion: float) -> int:
    """I = expansion * width * 2/3 rounded up to a multiple of 256, as the authors do."""
    inter = round(expansion * width * 2 / 3)
    return -(inter // -256) * 256


PRESETS: dict[str, TRMConfig] = {
    # The paper's Sudoku-Extreme configurations (TRM.md, "Sizes and costs").
    "paper-sudoku-attn": TRMConfig(
        vocab_size=11,
        seq_len=81,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=512,
        puzzle_emb_len=16,
        hidden_size=512,
        num_heads=8,
        L_layers=2,
        mlp_t=False,
        pos_encodings="rope",
        H_cycles=3,
        L_cycles=6,
        halt_max_steps=16,
    ),
    "paper-sudoku-mlp": TRMConfig(
        vocab_size=11,
        seq_len=81,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=512,
        puzzle_emb_len=16,
        hidden_size=512,
        num_heads=8,
        L_layers=2,
        mlp_t=True,
        pos_encodings="none",
        H_cycles=3,
        L_cycles=6,
        halt_max_steps=16,
    ),
    "paper-maze-attn": TRMConfig(
        vocab_size=6,
        seq_len=900,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=512,
        puzzle_emb_len=16,
        hidden_size=512,
        num_heads=8,
        L_layers=2,
        mlp_t=False,
        pos_encodings="rope",
        H_cycles=3,
        L_cycles=4,
        halt_max_steps=16,
    ),
}
