"""``pack_run``: a package from a training run directory (what ``trm train`` writes, ``trm pack`` reads).

Above both layers it joins: the run is read, calibrated and judged with the training layer's tools, the
package is written with the package layer's ``build_package``."""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..codec import TaskCodec
from ..model import ReasoningModel
from ..package.build import build_package
from ..package.errors import BuildError
from ..settings import tomllib
from ..solving import ModelAnswer, solve_inputs
from ..train.continuation import RUN_TRAINING_STATE, TRAINING_STATE_NAME
from ..train.data import calibration_pairs, heldout_pairs, heldout_seed
from ..train.evaluate import rule_check_report
from ..train.halting import CALIBRATION_SEED_OFFSET, calibrate_halting
from ..train.recipe import Recipe
from ..train.run_dir import RunInvalid, load_run
from ..views import DEFAULT_VIEWS

RUN_PLOTS = ("accuracy_vs_steps.png", "halting_steps.png", "accuracy_vs_training_step.png")
#: How many examples a package built from a run carries.
DEFAULT_EXAMPLE_COUNT = 8


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read {path}: {exc}", file=str(path)) from exc


def select_examples(
    model: ReasoningModel,
    codec: TaskCodec,
    pairs: Iterable[tuple[dict, dict | None]],
    count: int = DEFAULT_EXAMPLE_COUNT,
    allow_failing: bool = False,
) -> Sequence[tuple[dict, dict | None]]:
    """Up to ``count`` examples for the self-test: pairs the model answers acceptably.

    An answer is acceptable when it equals the pair's output or the codec judges it valid by the
    task's rules (a pair without an output needs that judgement). If the model solves none, packing
    is refused (``BuildError``) unless ``allow_failing``: then the model's own answers to the first
    inputs are recorded, so installs still check the weights are intact, and ``trm verify`` reports
    that those recorded outputs break the task's rules.
    """
    pairs = list(pairs)
    answers = solve_inputs(model, codec, [inp for inp, _ in pairs]) if pairs else []
    decodable = [(pair, ans) for pair, ans in zip(pairs, answers) if isinstance(ans, ModelAnswer)]
    solved = [
        (inp, out)
        for (inp, out), ans in decodable
        if ans.valid is True or (out is not None and ans.output == out and ans.valid is not False)
    ]
    if solved:
        return solved[:count]
    if not decodable:
        raise BuildError(
            f"the model gives no decodable answer to any of the {len(pairs)} run examples; "
            "a package needs at least one example it can answer",
            file="examples.jsonl",
        )
    if not allow_failing:
        raise BuildError(
            f"the model solves none of the {len(pairs)} run examples (by their outputs and the "
            f"{codec.name!r} task's rules), so its self-test would fail; train further, or say "
            "--allow-failing-examples to pack it with a failing self-test",
            file="examples.jsonl",
        )
    warnings.warn(
        f"the model solves none of the {len(pairs)} run examples; packed with a failing self-test "
        "(--allow-failing-examples)",
        stacklevel=2,
    )
    return [(inp, None) for (inp, _), _ in decodable[:count]]


def _recipe_of(recipe_toml: str | None) -> Recipe | None:
    """The run's recipe, parsed from the TOML embedded in training.json (None when absent or unreadable)."""
    if not recipe_toml:
        return None
    try:
        return Recipe.model_validate(tomllib.loads(recipe_toml))
    except (ValueError, tomllib.TOMLDecodeError):
        return None


def _rule_check_heldout(model: ReasoningModel, codec: TaskCodec, recipe: Recipe) -> dict[str, Any] | None:
    """The rule check with test-time views on the run's held-out puzzles, regenerated from its recipe."""
    report = rule_check_report(model, codec, [inp for inp, _ in heldout_pairs(codec, recipe.data)], views=DEFAULT_VIEWS)
    return None if report is None else report.to_json()


def _bf16_evaluation(
    model: ReasoningModel, codec: TaskCodec, recipe: Recipe, outside: list[dict[str, Any]]
) -> dict[str, Any]:
    """``evaluation.precision.bf16``: fp32 against bf16 on the held-out puzzles (regenerated from the recipe) and
    the outside generators' (their ``bf16_check``, measured by ``bench/outside_puzzles.py --bf16``)."""
    import jsonschema

    from ..precision_evaluation import compare_precisions, precision_record

    validator = jsonschema.Draft202012Validator(codec.input_schema())
    heldout = compare_precisions(
        model, codec, validator, {"held-out": [inp for inp, _ in heldout_pairs(codec, recipe.data)]}
    )
    return precision_record(heldout["sets"] + [row["bf16_check"] for row in outside if "bf16_check" in row])


def _calibrate(model: ReasoningModel, codec: TaskCodec, recipe: Recipe) -> dict[str, Any]:
    """The halting policy of a run that predates calibration, chosen as ``trm train`` chooses it."""
    pairs = calibration_pairs(codec, recipe.data)
    return calibrate_halting(
        model,
        codec,
        [inp for inp, _ in pairs],
        [out for _, out in pairs],
        dataset=f"{len(pairs)} calibration puzzles (seed {heldout_seed(recipe.data)} + {CALIBRATION_SEED_OFFSET})",
    )


def _created_at(run_dir: Path) -> str:
    """SOURCE_DATE_EPOCH when set, else when the run's weights were written (stable for one run)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch else int((run_dir / "model.safetensors").stat().st_mtime)
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def pack_run(
    run_dir: str | os.PathLike,
    *,
    name: str,
    version: str,
    out_path: str | os.PathLike | None = None,
    task: Mapping[str, Any] | None = None,
    parent_digest: str | None = None,
    example_count: int = DEFAULT_EXAMPLE_COUNT,
    changes: str | None = None,
    training_state: bool = False,
    outside: list[dict[str, Any]] | None = None,
    compare: Sequence[Mapping[str, Any]] | None = None,
    allow_failing_examples: bool = False,
    **metadata: Any,
) -> Path:
    """Build a package from the training run in ``run_dir``; ``task`` overrides the run's task.json.

    Evaluation, provenance (recipe, command, data, hardware, wall time, the package a continued run
    started from) and plots come from the run's files; ``changes`` says what changed from the parent.
    ``outside`` (rows of ``bench/outside_puzzles.py --json``) records this module's results on
    puzzles from outside generators. ``compare`` (manifests of other versions, e.g. another architecture on the
    same task) puts them beside this one in ``evaluation.side_by_side`` and the card. ``training_state`` adds the run's live weights and optimiser moments (``training/state.safetensors``)
    so ``trm train --init-from`` continues it exactly. Extra keyword arguments (title, description,
    license, authors, module_id, card, signing_key, …) go to ``build_package``. Returns the package
    path (default ``NAME-VERSION.trm`` in the current folder).
    """
    run_dir = Path(run_dir)
    try:
        model, codec = load_run(run_dir, task=task)
    except RunInvalid as exc:
        raise BuildError(exc.message, file=exc.file) from exc

    pairs = []
    examples_path = run_dir / "examples.jsonl"
    if examples_path.is_file():
        for line in examples_path.read_text("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                pairs.append((record["input"], record.get("output")))
    if not pairs:
        rng = np.random.default_rng(0)
        pairs = codec.generate(rng, example_count)

    evaluation = _read_json(run_dir / "evaluation.json") if (run_dir / "evaluation.json").is_file() else None
    training = _read_json(run_dir / "training.json") if (run_dir / "training.json").is_file() else {}
    recipe = _recipe_of(training.get("recipe_toml"))
    if recipe is not None and recipe.data.from_files:
        recipe = None  # its held-out rows are in files: nothing to regenerate (trm train judged them)
    if evaluation is not None and "halting" not in evaluation and recipe is not None:
        # A run from before halting was calibrated: calibrate now, and judge it as it will answer.
        evaluation["halting"] = _calibrate(model, codec, recipe)
        evaluation.pop("rule_check", None)
    if evaluation is not None and evaluation.get("halting"):
        model.use_halting(evaluation["halting"]["threshold"], evaluation["halting"]["min_steps"])
    if evaluation is not None and "rule_check" not in evaluation and recipe is not None:
        ruled = _rule_check_heldout(model, codec, recipe)
        if ruled is not None:
            evaluation["rule_check"] = ruled
    if evaluation is not None and outside:
        evaluation["outside"] = [row for row in outside if row.get("module", "").split("@")[0] in ("", name)]
        if recipe is not None and any("bf16_check" in row for row in evaluation["outside"]):
            evaluation["precision"] = {"bf16": _bf16_evaluation(model, codec, recipe, evaluation["outside"])}
    if evaluation is not None and compare:
        from ..package.side_by_side import side_by_side_row

        evaluation["side_by_side"] = [side_by_side_row(manifest) for manifest in compare]
    examples = select_examples(
        model,
        codec,
        pairs,
        example_count,  # answered as the package will answer
        allow_failing=allow_failing_examples,
    )
    provenance: dict[str, Any] = {
        "created_at": _created_at(run_dir),
        "parent_digest": parent_digest or training.get("parent_digest"),
        "recipe": training.get("recipe"),
        "command": training.get("command"),
        "data": training.get("data"),
        "hardware": training.get("hardware"),
        "wall_time_s": training.get("wall_time_s"),
        "optimizer_steps": training.get("optimizer_steps"),
        "feedback_window": training.get("feedback_window"),
        "recipe_toml": training.get("recipe_toml"),
        "feedback_data": training.get("feedback_data"),
        "data_files": training.get("data_files"),
        "continued_from": training.get("continued_from"),
        "continued_at_step": training.get("continued_at_step"),
        "history": [
            {**point, "sitting": point.get("sitting") or f"{name}@{version}"} for point in training.get("history") or []
        ]
        or None,
        "changes": changes,
    }
    extra_files = {f"card/{plot}": (run_dir / plot).read_bytes() for plot in RUN_PLOTS if (run_dir / plot).is_file()}
    if training_state:
        state_path = run_dir / RUN_TRAINING_STATE
        if not state_path.is_file():
            raise BuildError(
                f"{run_dir} has no {RUN_TRAINING_STATE} (written by trm train since --init-from "
                "exists); train or resume the run to write it",
                file=str(state_path),
            )
        extra_files[TRAINING_STATE_NAME] = state_path.read_bytes()
    out_path = Path(out_path) if out_path is not None else Path(f"{name}-{version}.trm")
    return build_package(
        model,
        codec,
        name=name,
        version=version,
        out_path=out_path,
        examples=examples,
        evaluation=evaluation,
        provenance={k: v for k, v in provenance.items() if v is not None},
        extra_files=extra_files,
        allow_failing_examples=allow_failing_examples,
        **metadata,
    )
