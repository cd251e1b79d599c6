"""What a training run continues from (``trm train RECIPE --init-from PACKAGE``), and the state it saves for that.

A run longer than one sitting cannot rely on files in ``runs/`` (a build machine is wiped between
sittings), so everything needed to continue travels in the package itself:

- ``weights.safetensors`` — the EMA weights (what is shipped and evaluated); the EMA continues from them;
- ``training/state.safetensors`` (optional, written by ``trm pack --training-state``) — the live
  weights and the AdamW moments, so the optimiser continues where it stopped;
- ``provenance.optimizer_steps`` — the step count, so the learning-rate schedule continues.

A package without the training state (a release) still continues: the live weights start from
the EMA weights and the optimiser from fresh moments. Reading a package into a ``PackageStart`` is
``trm_modules.lifecycle.continuation.load_package_start`` (the lifecycle layer, above both training and
the package format); this module knows only tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import save as save_safetensors

from ..errors import ConfigError
from ..model import ReasoningModel

#: The package member holding the live weights and optimiser moments (``trm pack --training-state``).
TRAINING_STATE_NAME = "training/state.safetensors"
#: The same file in a run directory (``trm train`` writes it beside ``model.safetensors``).
RUN_TRAINING_STATE = "training_state.safetensors"

#: Key prefix of the live weights in the training state; the moments' prefixes are their names.
MODEL_PREFIX = "model."
MOMENTS = ("exp_avg", "exp_avg_sq")


class InitFromError(ConfigError):
    """A package a run cannot continue from (unreadable, another task or architecture, bad state)."""


def training_state_bytes(model: ReasoningModel, optimizer: torch.optim.Optimizer, step: int) -> bytes:
    """Safetensors bytes of the live weights (``model.<key>``) and the AdamW moments
    (``exp_avg.<param>``, ``exp_avg_sq.<param>``); the step count rides in the metadata."""
    tensors = {MODEL_PREFIX + key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    names = {id(param): name for name, param in model.named_parameters()}
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for moment in MOMENTS:
                if moment in state:
                    tensors[f"{moment}.{names[id(param)]}"] = state[moment].detach().float().cpu().contiguous()
    return save_safetensors(tensors, metadata={"optimizer_steps": str(step)})


@dataclass
class PackageStart:
    """What a run continues from: the package's EMA weights, optional live weights and moments, its step."""

    source: str  # "name@version"
    path: str
    digest: str
    config: Any  # the architecture's config model
    task: dict
    ema: dict[str, torch.Tensor]
    live: dict[str, torch.Tensor] | None
    moments: dict[str, dict[str, torch.Tensor]]  # moment name → parameter name → tensor
    step: int
    wall_time_s: float
    #: Held-out accuracy against training step over the sittings before (``provenance.history``).
    history: list[dict] = field(default_factory=list)

    def check_fits(self, config: Any, task: dict) -> None:
        """Refuse a recipe whose task or architecture differs from the package's (the weights would not fit)."""
        if task != self.task:
            raise InitFromError(f"--init-from {self.source}: the package answers {self.task}, the recipe trains {task}")
        if type(config) is not type(self.config):
            raise InitFromError(
                f"--init-from {self.source}: the package holds a {type(self.config).__name__}, "
                f"the recipe trains a {type(config).__name__} (another architecture)"
            )
        if config != self.config:
            ours, theirs = config.model_dump(), self.config.model_dump()
            differing = ", ".join(
                f"{key} (recipe {ours[key]!r}, package {theirs[key]!r})" for key in ours if ours[key] != theirs[key]
            )
            raise InitFromError(
                f"--init-from {self.source}: the recipe's model differs from the package's: {differing}"
            )

    def restore(self, model: ReasoningModel, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """Load the live weights (or the EMA weights) into ``model`` and the moments into ``optimizer``;
        return the EMA shadow to continue from."""
        model.load_state_dict(self.live if self.live is not None else self.ema)
        if self.moments:
            params = dict(model.named_parameters())
            for name, param in params.items():
                if not all(name in self.moments.get(moment, {}) for moment in MOMENTS):
                    raise InitFromError(f"--init-from {self.source}: {TRAINING_STATE_NAME} has no moments of {name}")
                optimizer.state[param] = {
                    "step": torch.tensor(float(self.step)),
                    **{
                        moment: self.moments[moment][name].to(param.device, torch.float32).clone() for moment in MOMENTS
                    },
                }
        return {key: value.float().clone() for key, value in self.ema.items()}
