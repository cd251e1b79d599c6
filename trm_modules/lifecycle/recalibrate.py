"""``recalibrate_package``: a new version of a package whose only change is its calibrated halting.

The weights, examples, card images and lineage are carried over; the halting policy is chosen on the
package's held-out distribution (its embedded recipe, at the calibration seed) as ``trm train`` chooses
it, the rule check is judged again with it, and the new version names the old one as its parent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..package.build import build_package
from ..package.open import open_package
from ..package.signing import TrustedKeys
from ..settings import tomllib
from ..train.data import calibration_pairs, heldout_pairs, heldout_seed
from ..train.evaluate import rule_check_report
from ..train.halting import CALIBRATION_SEED_OFFSET, calibrate_halting
from ..train.recipe import Recipe
from ..views import DEFAULT_VIEWS


def recalibrate_package(
    path: str | os.PathLike,
    *,
    version: str,
    out_path: str | os.PathLike,
    changes: str | None = None,
    trusted_keys: TrustedKeys | None = None,
    outside: list[dict[str, Any]] | None = None,
    **metadata: Any,
) -> Path:
    """Write ``out_path``: the package at ``path`` as ``version``, with ``evaluation.halting`` calibrated.

    Extra keyword arguments (``signing_key``, …) go to ``build_package``. Raises ``ConfigError`` when the
    package carries no recipe to regenerate its held-out distribution from.
    """
    package = open_package(path, trusted_keys)
    manifest = package.manifest
    provenance = manifest.provenance.model_dump(exclude_none=True) if manifest.provenance else {}
    recipe_toml = provenance.get("recipe_toml")
    if not recipe_toml:
        raise ConfigError(
            f"{path}: the package embeds no recipe (provenance.recipe_toml), so its held-out "
            "distribution cannot be regenerated to calibrate halting on"
        )
    recipe = Recipe.model_validate(tomllib.loads(recipe_toml))
    model, codec = package.load_model(), package.codec()
    pairs = calibration_pairs(codec, recipe.data)
    halting = calibrate_halting(
        model,
        codec,
        [inp for inp, _ in pairs],
        [out for _, out in pairs],
        dataset=f"{len(pairs)} calibration puzzles (seed {heldout_seed(recipe.data)} + {CALIBRATION_SEED_OFFSET})",
    )
    model.use_halting(halting["threshold"], halting["min_steps"])
    evaluation = manifest.evaluation.model_dump(exclude_none=True) if manifest.evaluation else None
    if evaluation is not None:
        evaluation["halting"] = halting
        ruled = rule_check_report(
            model, codec, [inp for inp, _ in heldout_pairs(codec, recipe.data)], views=DEFAULT_VIEWS
        )
        if ruled is not None:
            evaluation["rule_check"] = ruled.to_json()
        if outside:
            evaluation["outside"] = [
                row for row in outside if row.get("module", "").split("@")[0] in ("", manifest.name)
            ]
    provenance.pop("created_at", None)
    provenance.update(parent_digest=package.digest, changes=changes or "halting calibrated; weights unchanged")
    images = {name: package.read_file(name) for name in package.archive.names if name.startswith("card/")}
    authors = [author.model_dump(exclude_none=True) for author in manifest.authors]
    return build_package(
        model,
        codec,
        name=manifest.name,
        version=version,
        out_path=out_path,
        examples=package.examples,
        title=manifest.title,
        description=manifest.description,
        license=manifest.license,
        authors=authors,
        module_id=manifest.module_id,
        evaluation=evaluation,
        provenance=provenance,
        extra_files=images,
        dtype=None,
        **metadata,
    )
