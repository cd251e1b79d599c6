"""Training recipes: one TOML file says everything needed to reproduce a module.

A recipe names the task (codec + params), how data is generated, the model (``TRMConfig``
fields, ``architecture`` naming
which; vocabulary and sequence length come from the codec) and the optimisation settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..codec import TaskSpec
from ..errors import ConfigError


class HardSetSpec(BaseModel):
    """Hard puzzles mixed into training by a curriculum: their share of the new examples grows with the step."""

    model_config = ConfigDict(extra="forbid")

    puzzles: int = Field(..., gt=0, description="Generated hard training puzzles (augmented on the fly).")
    difficulty: dict[str, Any] = Field(default_factory=dict, description="Codec-specific generator settings.")
    share: tuple[float, float] = Field(
        (0.0, 0.5),
        description="Share of new training examples drawn from the hard set at the first and at the last "
        "step of the schedule, linear in between (a curriculum by difficulty).",
    )
    test_puzzles: int = Field(0, ge=0, description="Held-out hard puzzles evaluated at the end of a sitting (0: none).")

    @field_validator("share")
    @classmethod
    def _shares_are_fractions(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"each share must lie in [0, 1], got {list(value)}")
        return value


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train_puzzles: int = Field(20_000, gt=0, description="Generated training puzzles (augmented on the fly).")
    test_puzzles: int = Field(1_000, gt=0, description="Held-out puzzles generated with a different seed.")
    difficulty: dict[str, Any] = Field(default_factory=dict, description="Codec-specific generator settings.")
    test_difficulty: dict[str, Any] | None = Field(
        None, description="Generator settings of the held-out set (default: same)."
    )
    augment: bool = True
    seed: int = 0
    hard: HardSetSpec | None = Field(None, description="Hard puzzles mixed in by a curriculum ([data.hard]).")
    files: list[str] = Field(
        default_factory=list,
        description=(
            "Data files to train on instead of generated puzzles (paths relative to the folder `trm train` runs "
            "in): *.jsonl of {input, output}, the authors' *.csv (source,q,a,rating), ARC *_challenges.json."
        ),
    )
    heldout_files: list[str] = Field(
        default_factory=list,
        description=("Data files of the held-out set (default: a seeded heldout_fraction of `files`)."),
    )
    heldout_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description=("Share of the `files` rows held out (seeded by `seed`) when no heldout_files are given."),
    )
    calibration_fraction: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description=(
            "Share of the training rows set aside (seeded) to calibrate halting on, when training from files."
        ),
    )

    @property
    def from_files(self) -> bool:
        """Does the run train on data files (``files``) rather than generated puzzles?"""
        return bool(self.files)

    @model_validator(mode="after")
    def _heldout_files_need_files(self) -> "DataSpec":
        if self.heldout_files and not self.files:
            raise ValueError("data.heldout_files needs data.files (the training rows) too")
        if self.files and self.hard is not None:
            raise ValueError(
                "data.hard (generated hard puzzles) cannot be mixed with data.files yet; "
                "put the hard rows in a data file"
            )
        return self


class OptimSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(256, gt=0, description="Global batch size (split across DDP ranks).")
    steps: int = Field(5_000, gt=0, description="Optimiser steps; each is one supervision step of the carried batch.")
    lr: float = 1e-4
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = 2_000
    schedule: Literal["cosine", "constant"] = "constant"
    weight_decay: float = 1.0
    puzzle_emb_lr: float = 1e-4
    puzzle_emb_weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    ema: float = Field(0.999, ge=0.0, lt=1.0, description="EMA decay; the EMA weights are evaluated and shipped.")
    grad_clip: float = Field(1.0, ge=0.0, description="Max grad norm; 0 disables clipping.")
    loss: Literal["stablemax", "softmax"] = "stablemax"
    halt_loss_weight: float = 0.5
    eval_every: int = 1_000
    eval_puzzles: int = Field(512, gt=0, description="Held-out puzzles used by the periodic evaluation.")
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Compute precision of the forward and backward pass: bf16 = autocast (fp32 master "
        "weights, optimiser moments and EMA); auto = bf16 on CUDA, fp32 on the CPU (bf16 on a "
        "CPU is opt-in: only a finished run's evaluation can show it kept the accuracy).",
    )


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "1.0.0"
    title: str | None = None
    description: str | None = None
    task: TaskSpec
    data: DataSpec = Field(default_factory=DataSpec)
    model: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            '`architecture` (default "trm"; any a plugin registers) and that architecture\'s config fields '
            "except vocab_size/seq_len."
        ),
    )
    train: OptimSpec = Field(default_factory=OptimSpec)

    @property
    def architecture(self) -> str:
        """The architecture ``[model] architecture`` names (``"trm"`` when it names none)."""
        return str(self.model.get("architecture", "trm"))

    def model_config_for(self, vocab_size: int, seq_len: int) -> Any:
        """The architecture's full config: the recipe's fields plus the codec's vocabulary and length.
        ``UnknownArchitecture`` when no installed plugin provides ``[model] architecture``."""
        from ..plugins import get_architecture

        architecture = get_architecture(self.architecture)
        fields = {k: v for k, v in self.model.items() if k != "architecture"}
        try:
            return architecture.config_type(vocab_size=vocab_size, seq_len=seq_len, **fields)
        except Exception as exc:  # pydantic.ValidationError → one actionable message
            raise ConfigError(f"recipe {self.name!r}: bad [model] section: {exc}") from exc


def recipe_toml(recipe: Recipe) -> str:
    """A recipe as TOML (the subset of TOML recipes use: tables of scalars, arrays and inline tables), so the
    recipe exactly as run (every ``--set`` and ``--data`` applied) travels with a run and its package."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items() if x is not None) + " }"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    data = recipe.model_dump(exclude_none=True)
    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{json.dumps(str(k))} = {value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def load_recipe(
    path: str | Path, overrides: dict[str, Any] | None = None, data_files: list[str] | None = None
) -> Recipe:
    """Read a TOML recipe; ``overrides`` maps dotted keys (``train.steps``) to values; ``data_files``
    (``trm train --data``) are added to ``[data] files``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recipe file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if data_files:
        section = data.setdefault("data", {})
        if not isinstance(section, dict) or not isinstance(section.get("files", []), list):
            raise ConfigError(f"{path}: [data] must be a table and data.files a list to add --data files to")
        section["files"] = [*section.get("files", []), *data_files]
    try:
        return Recipe.model_validate(data)
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from exc
