"""Continuing a training run from a package (``trm train RECIPE --init-from PACKAGE``): the package is
opened with every check of the package format and read into the ``PackageStart`` the trainer continues
from (``trm_modules.train.continuation`` says what travels in the package and why)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..package.archive import Limits
from ..package.errors import PackageError
from ..package.open import open_package
from ..package.weights import read_weights_header, tensors_from_bytes
from ..train.continuation import MODEL_PREFIX, MOMENTS, TRAINING_STATE_NAME, InitFromError, PackageStart


def load_package_start(
    path: str | os.PathLike, trusted_keys: str | os.PathLike | None = None, limits: Limits | None = None
) -> PackageStart:
    """Open ``path`` with every check of the package format (and the trust store, when given) and read
    what a run continues from; ``InitFromError`` says what is wrong."""
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
            header = read_weights_header(
                data,
                max_header_bytes=limits.max_safetensors_header_bytes,
                max_tensors=limits.max_tensors,
                file=TRAINING_STATE_NAME,
            )
        except PackageError as exc:
            raise InitFromError(f"--init-from {source}: {exc}") from exc
        tensors = tensors_from_bytes(data, header)
        live = {
            key[len(MODEL_PREFIX) :]: value.float().clone()
            for key, value in tensors.items()
            if key.startswith(MODEL_PREFIX)
        }
        for moment in MOMENTS:
            prefix = moment + "."
            moments[moment] = {
                key[len(prefix) :]: value.clone() for key, value in tensors.items() if key.startswith(prefix)
            }
        shapes = {key: tuple(value.shape) for key, value in ema.items()}
        if {key: tuple(value.shape) for key, value in live.items()} != shapes:
            raise InitFromError(
                f"--init-from {source}: {TRAINING_STATE_NAME} holds live weights that do not "
                f"match {manifest.model.weights}"
            )
        recorded = header.metadata.get("optimizer_steps")
        if recorded is not None and recorded.isdigit() and int(recorded) != step:
            raise InitFromError(
                f"--init-from {source}: {TRAINING_STATE_NAME} was saved at step {recorded}, "
                f"the manifest records optimizer_steps {step}"
            )
    return PackageStart(
        source=source,
        path=str(path),
        digest=package.digest,
        config=manifest.model.config,
        task={"codec": manifest.task.codec, "params": dict(manifest.task.params)},
        ema=ema,
        live=live,
        moments=moments,
        step=int(step),
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
