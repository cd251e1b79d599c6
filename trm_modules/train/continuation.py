"""Continuing a training run from a package (``trm train RECIPE --init-from PACKAGE``).

A run longer than one sitting cannot rely on files in ``runs/`` (a build machine is wiped between
sittings), so everything needed to continue travels in the package itself:

- ``weights.safetensors`` — the EMA weights (what is shipped and evaluated); the EMA continues from them;
- ``training/state.safetensors`` (optional, written by ``trm pack --training-state``) — the live
  weights and the AdamW moments, so the optimiser continues where it stopped;
- ``provenance.optimizer_steps`` — the step count, so the learning-rate schedule continues.

A package without the training state (a release) still continues: the live weights start from
the EMA weights and the optimiser from fresh moments.
"""

from __future__ import annotations

import os
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path


import torch
from safetensors.torch import save as save_safetensors

from ..errors import ConfigError
from ..model import ReasoningModel
from ..package.archive import Limits
from ..package.errors import PackageError
from ..package.weights import read_weights_header, tensors_from_bytes

#: The package member holding the live weights and optimiser moments (``trm pack --training-state``).
TRAINING_STATE_NAME = "training/state.safetensors"
#: The same file in a run directory (``trm train`` writes it beside ``model.safetensors``).
RUN_TRAINING_STATE = "training_state.safetensors"

_MODEL = "model."
_MOMENTS = ("exp_avg", "exp_avg_sq")


class InitFromError(ConfigError):
    """A package a run cannot continue from (unreadable, another task or architecture, bad state)."""


def training_state_bytes(model: ReasoningModel, optimizer: torch.optim.Optimizer, step: int) -> bytes:
    """Safetensors bytes of the live weights (``model.<key>``) and the AdamW moments
    (``exp_avg.<param>``, ``exp_avg_sq.<param>``); the step count rides in the metadata."""
    tensors = {_MODEL + key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    names = {id(param): name for name, param in model.named_parameters()}
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for moment in _MOMENTS:
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
            raise InitFromError(f"--init-from {self.source}: the package holds a {type(self.config).__name__}, "
                                f"the recipe trains a {type(config).__name__} (another architecture)")
        if config != self.config:
            ours, theirs = config.model_dump(), self.config.model_dump()
            differing = ", ".join(f"{key} (recipe {ours[key]!r}, package {theirs[key]!r})"
                                  for key in ours if ours[key] != theirs[key])
            raise InitFromError(f"--init-from {self.source}: the recipe's model differs from the package's: {differing}")

    def restore(self, model: ReasoningModel, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """Load the live weights (or the EMA weights) into ``model`` and the moments into ``optimizer``;
        return the EMA shadow to continue from."""
        model.load_state_dict(self.live if self.live is not None else self.ema)
        if self.moments:
            params = dict(model.named_parameters())
            for name, param in params.items():
                if not all(name in self.moments.get(moment, {}) for moment in _MOMENTS):
                    raise InitFromError(f"--init-from {self.source}: {TRAINING_STATE_NAME} has no moments of {name}")
                optimizer.state[param] = {
                    "step": torch.tensor(float(self.step)),
                    **{moment: self.moments[moment][name].to(param.device, torch.float32).clone() for moment in _MOMENTS},
                }
        return {key: value.float().clone() for key, value in self.ema.items()}


def load_package_start(path: str | os.PathLike, trusted_keys: str | os.PathLike | None = None,
                       limits: Limits | None = None) -> PackageStart:
    """Open ``path`` with every check of the package format (and the trust store, when given) and read
    what a run continues from; ``InitFromError`` says what is wrong."""
    from ..package.open import open_package

    limits = limits or Limits()
    try:
        package = open_package(Path(path), trusted_keys, limits=limits)
    except PackageError as exc:
        raise InitFromError(f"--init-from {path}: {exc}") from exc
    manifest = package.manifest
    source = f"{manifest.name}@{manifest.version}"
    ema = {key: value.float().clone() for key, value in package.state_dict().items()}
    provenance = manifest.provenance
    step = (provenance.optimizer_steps if provenance else None) or 0
    live, moments = None, {}
    if TRAINING_STATE_NAME in package.archive:
        data = package.archive.read(TRAINING_STATE_NAME)
        try:
            header = read_weights_header(data, max_header_bytes=limits.max_safetensors_header_bytes,
                                         max_tensors=limits.max_tensors, file=TRAINING_STATE_NAME)
        except PackageError as exc:
            raise InitFromError(f"--init-from {source}: {exc}") from exc
        tensors = tensors_from_bytes(data, header)
        live = {key[len(_MODEL):]: value.float().clone() for key, value in tensors.items() if key.startswith(_MODEL)}
        for moment in _MOMENTS:
            prefix = moment + "."
            moments[moment] = {key[len(prefix):]: value.clone() for key, value in tensors.items()
                               if key.startswith(prefix)}
        shapes = {key: tuple(value.shape) for key, value in ema.items()}
        if {key: tuple(value.shape) for key, value in live.items()} != shapes:
            raise InitFromError(f"--init-from {source}: {TRAINING_STATE_NAME} holds live weights that do not "
                                f"match {manifest.model.weights}")
        recorded = header.metadata.get("optimizer_steps")
        if recorded is not None and recorded.isdigit() and int(recorded) != step:
            raise InitFromError(f"--init-from {source}: {TRAINING_STATE_NAME} was saved at step {recorded}, "
                                f"the manifest records optimizer_steps {step}")
    return PackageStart(
        source=source, path=str(path), digest=package.digest, config=manifest.model.config,
        task={"codec": manifest.task.codec, "params": dict(manifest.task.params)},
        ema=ema, live=live, moments=moments, step=int(step),
        wall_time_s=float((provenance.wall_time_s if provenance else None) or 0.0),
        history=_history_of(manifest, int(step)),
    )


def _history_of(manifest: Any, step: int) -> list[dict]:
    """The package's accuracy-by-training-step history; a package from before it was recorded gives the one
    point it knows: its own held-out evaluation at its step."""
    recorded = getattr(manifest.provenance, "history", None) if manifest.provenance else None
    if recorded:
        return [dict(point) for point in recorded]
    evaluation = manifest.evaluation
    value = getattr(evaluation, "value", None) if evaluation is not None else None
    if value is None or not step:
        return []
    return [{"step": step, "exact": float(value), "sitting": f"{manifest.name}@{manifest.version}"}]
