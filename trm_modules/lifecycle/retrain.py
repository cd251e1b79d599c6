"""Retraining from real-world feedback: fine-tune a package's weights, compare, pack the successor.

The loop a maintainer runs: feedback export (``trm feedback export``) → ``retrain`` → the new
version is packed with lineage (parent digest, feedback window) only if it is not worse than
its parent on the same held-out sets → ``promote`` / the host's swap make it active.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import numpy as np

from ..errors import ConfigError
from ..train.data import TokenSet, encode_pairs
from ..train.evaluate import EvalReport, evaluate, valid_fraction
from ..train.recipe import Recipe
from ..train.trainer import Trainer
from .from_run import pack_run

#: A successor may lose at most this much accuracy on the original held-out set (sampling noise).
DEFAULT_TOLERANCE = 0.005


@dataclass
class RetrainResult:
    """Old vs new on the same held-out sets, and the package written when the new one is not worse."""

    parent_version: str
    version: str
    original_heldout: dict[str, float]  # {"old": acc, "new": acc}
    feedback_heldout: dict[str, float]
    feedback_examples: dict[str, int]
    accepted: bool
    reason: str
    package_path: Path | None = None
    run_dir: Path | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("package_path", "run_dir")}
        out["package_path"] = str(self.package_path) if self.package_path else None
        out["run_dir"] = str(self.run_dir) if self.run_dir else None
        return out


def recipe_of(package) -> Recipe:
    """The recipe a package was trained with: embedded TOML, else the recipe file it names."""
    provenance = package.manifest.provenance
    extra = provenance.model_extra or {} if provenance is not None else {}
    text = extra.get("recipe_toml")
    if not text and provenance is not None and provenance.recipe and Path(provenance.recipe).is_file():
        text = Path(provenance.recipe).read_text(encoding="utf-8")
    if not text:
        raise ConfigError(
            f"{package.manifest.name}@{package.manifest.version} carries no training recipe "
            "(provenance.recipe_toml) and its recipe file is not here; give one (`trm retrain --recipe FILE`, "
            "or recipe= to retrain())"
        )
    return Recipe.model_validate(tomllib.loads(text))


def bump_minor(version: str) -> str:
    major, minor, *_ = (version.split("+")[0].split("-")[0].split(".") + ["0", "0"])[:3]
    return f"{int(major)}.{int(minor) + 1}.0"


def read_feedback_set(path: Path) -> list[tuple[dict, dict]]:
    """(input, output) pairs of a ``train.jsonl`` written by ``trm feedback export``."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
                pairs.append((record["input"], record["output"]))
            except (ValueError, KeyError) as exc:
                raise ConfigError(f'{path}:{number}: expected {{"input": …, "output": …}}: {exc}') from exc
    return pairs


def split_holdout(pairs: list[tuple[dict, dict]], fraction: float) -> tuple[list, list]:
    """Deterministic split by a hash of the input, so re-running sees the same hold-out."""
    train: list[tuple[dict, dict]] = []
    held: list[tuple[dict, dict]] = []
    for pair in pairs:
        h = int(hashlib.sha256(json.dumps(pair[0], sort_keys=True).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held if h < fraction else train).append(pair)
    return train, held


def _accuracy(report: EvalReport | None) -> float:
    return float("nan") if report is None else report.accuracy_halting


def retrain(
    package,
    feedback_dir: str | Path | None,
    out_dir: str | Path,
    *,
    steps: int = 500,
    version: str | None = None,
    holdout_fraction: float = 0.2,
    feedback_share: float = 0.5,
    recipe: Recipe | None = None,
    device: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    lr: float | None = None,
    on_progress=None,
    allow_failing_examples: bool = False,
) -> RetrainResult:
    """Fine-tune ``package`` on exported feedback mixed with its recipe's data; pack the result if not worse.

    ``feedback_share`` is the fraction of training draws that come from feedback examples.
    ``allow_failing_examples`` goes to ``pack_run``: pack the successor even when it solves none of its run's
    examples (its self-test then records answers that break the task's rules).
    """
    out_dir = Path(out_dir)
    codec = package.codec()
    recipe = recipe or recipe_of(package)
    manifest = package.manifest
    version = version or bump_minor(manifest.version)
    updates: dict[str, float] = {
        "train.steps": steps,
        "train.warmup_steps": max(1, min(100, steps // 10)),
        "train.eval_every": max(steps, 1),
        "data.train_puzzles": min(recipe.data.train_puzzles, 5000),
    }
    if lr is not None:
        updates["train.lr"] = lr
    data = recipe.model_dump()
    for dotted, value in updates.items():
        section, key = dotted.split(".")
        data[section][key] = value
    recipe = Recipe.model_validate(data)

    feedback_train: list[tuple[dict, dict]] = []
    feedback_held: list[tuple[dict, dict]] = []
    card: dict[str, Any] = {}
    if feedback_dir is not None:
        feedback_dir = Path(feedback_dir)
        pairs = read_feedback_set(feedback_dir / "train.jsonl")
        feedback_train, feedback_held = split_holdout(pairs, holdout_fraction)
        card_path = feedback_dir / "data_card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}

    extra = None
    if feedback_train:
        fb = encode_pairs(codec, feedback_train)
        repeats = max(1, round(feedback_share / (1 - feedback_share) * recipe.data.train_puzzles / len(fb)))
        extra = TokenSet(
            np.repeat(fb.inputs, repeats, 0), np.repeat(fb.labels, repeats, 0), np.repeat(fb.puzzle_ids, repeats, 0)
        )

    parent = package.load_model(device="cpu")
    trainer = Trainer(
        recipe,
        out_dir,
        device=device,
        codec=codec,
        init_weights={k: v.float() for k, v in parent.state_dict().items()},
        extra_train=extra,
    )
    window = card.get("window") or {}
    trainer.extra_provenance = {
        "parent_digest": package.digest,
        "feedback_window": (
            {
                "start": window["first_solve"],
                "end": window["last_solve"],
                "events": int(card.get("counts", {}).get("total", 0)),
            }
            if window.get("first_solve") and window.get("last_solve")
            else None
        ),
        "feedback_data": {"examples": len(feedback_train), "held_out": len(feedback_held), "data_card": card or None},
        "recipe_toml": _dump_recipe(recipe),
    }
    trainer.run(on_progress=on_progress)
    new_model = trainer.ema.averaged(trainer.model).cpu()
    parent = parent.cpu()

    test = trainer.test_set
    table = codec.answer_token_table()
    original = {
        "old": _accuracy(evaluate(parent, test, answer_table=table)),
        "new": _accuracy(evaluate(new_model, test, answer_table=table)),
    }
    held = {"old": float("nan"), "new": float("nan")}
    if feedback_held:
        # Judged by the task's rules where it has them (several answers can be right), else exactly.
        inputs = [inp for inp, _ in feedback_held]
        old_valid, new_valid = valid_fraction(parent, codec, inputs), valid_fraction(new_model, codec, inputs)
        if old_valid is not None and new_valid is not None:
            held = {"old": old_valid, "new": new_valid}
        else:
            held_set = encode_pairs(codec, feedback_held)
            held = {
                "old": _accuracy(evaluate(parent, held_set, answer_table=table)),
                "new": _accuracy(evaluate(new_model, held_set, answer_table=table)),
            }

    reasons = []
    if original["new"] < original["old"] - tolerance:
        reasons.append(f"held-out accuracy fell from {original['old']:.2%} to {original['new']:.2%}")
    if feedback_held and held["new"] < held["old"]:
        reasons.append(f"feedback hold-out accuracy fell from {held['old']:.2%} to {held['new']:.2%}")
    accepted = not reasons
    result = RetrainResult(
        parent_version=manifest.version,
        version=version,
        original_heldout=original,
        feedback_heldout=held,
        feedback_examples={"train": len(feedback_train), "held_out": len(feedback_held)},
        accepted=accepted,
        reason="; ".join(reasons) or "not worse on either held-out set",
        run_dir=out_dir,
    )
    if accepted:
        result.package_path = pack_run(
            out_dir,
            name=manifest.name,
            version=version,
            out_path=out_dir / f"{manifest.name}-{version}.trm",
            parent_digest=package.digest,
            title=manifest.title,
            description=manifest.description,
            license=manifest.license,
            module_id=manifest.module_id,
            allow_failing_examples=allow_failing_examples,
        )
    (out_dir / "retrain.json").write_text(json.dumps(result.to_json(), indent=2))
    return result


def _dump_recipe(recipe: Recipe) -> str:
    """A recipe as TOML (the subset of TOML recipes use: tables of scalars, arrays and inline tables)."""

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
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    data = recipe.model_dump(exclude_none=True)
    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"
