"""Building packages: from a model and codec (``build_package``; from a training run is
``trm_modules.lifecycle.pack_run``), and re-signing an existing package (``sign_package``). Output bytes are reproducible."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .side_by_side import side_by_side_row, side_by_side_table
from .. import __version__
from ..codec import TaskCodec
from ..errors import TRMError
from ..model import ReasoningModel, count_parameters
from ..model.config import swiglu_intermediate
from ..plugins import codec_distribution
from .archive import write_archive
from .errors import BuildError
from .layout import (
    CARD_NAME,
    INPUT_SCHEMA_NAME,
    MANIFEST_NAME,
    OUTPUT_SCHEMA_NAME,
    SIGNATURE_NAME,
    WEIGHTS_NAME,
    example_names,
)
from .manifest import FORMAT_VERSION, Evaluation, Provenance, canonical_json, parse_manifest
from .signing import load_private_key, sign_manifest
from ..solving import ItemError, solve_inputs
from .weights import MANIFEST_DTYPES, manifest_dtype_of, serialize_state_dict

Json = dict[str, Any]


def pretty_json(data: Any) -> bytes:
    """Readable, deterministic JSON bytes for files inside a package."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def default_module_id(name: str) -> str:
    """The module IRI used when none is given: a URN, stable across every version of ``name``."""
    return f"urn:trm-modules:module:{name}"


def creation_time() -> str:
    """Now in UTC (RFC 3339), or ``SOURCE_DATE_EPOCH`` when set, for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
        if epoch
        else dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )
    return moment.isoformat().replace("+00:00", "Z")


def estimate_memory_bytes(config: Any, weight_bytes: int, batch_size: int = 1) -> int:
    """Rough peak memory to hold the model and solve ``batch_size`` inputs (weights + live activations)."""
    positions = config.total_len
    width = max(config.hidden_size, 2 * swiglu_intermediate(config.hidden_size, config.expansion))
    activations = 8 * positions * width * 4  # x, y, z, block temporaries in fp32
    heads = 0 if getattr(config, "mlp_t", False) else getattr(config, "num_heads", 0)
    attention = heads * positions * positions * 4
    return weight_bytes + batch_size * (activations + attention)


def _network_kind(config: Any) -> str:
    return "Tiny Recursive Model" if hasattr(config, "mlp_t") else "reasoning model"


def model_card(
    *,
    title: str,
    description: str,
    name: str,
    version: str,
    codec: TaskCodec,
    config: Any,
    parameters: int,
    license: str,
    evaluation: Evaluation | None,
    provenance: Provenance | None,
    sections: Mapping[str, str] | None = None,
    images: Iterable[str] = (),
    architecture: str | None = None,
    architecture_name: str | None = None,
) -> str:
    """The README.md model card: intended use, training data, evaluation, limits."""
    sections = dict(sections or {})
    lines = [f"# {title}", "", f"`{name}` {version} — a {_network_kind(config)} packaged by trm-modules.", ""]
    if description:
        lines += [description, ""]
    lines += [
        "## Intended use",
        "",
        sections.pop(
            "intended_use",
            (
                f"Answers `{codec.name}` tasks (codec parameters `{json.dumps(codec.params, sort_keys=True)}`): one JSON "
                "input document in, one JSON answer out, as described by `schema/input.schema.json` and "
                "`schema/output.schema.json`. Use it where an answer can be checked or where a wrong answer is cheap; "
                "the codec's validity check tells whether an answer obeys the task's rules."
            ),
        ),
        "",
    ]
    data = provenance.data if provenance and provenance.data else "not recorded"
    lines += ["## Training data", "", sections.pop("training_data", data), ""]
    if provenance and provenance.data_files:
        lines += ["| file | role | rows | SHA-256 |", "| --- | --- | ---: | --- |"]
        lines += [
            f"| `{f.get('name')}` | {f.get('role', '')} | {f.get('rows', '')} | `{f.get('sha256', '')}` |"
            for f in provenance.data_files
        ]
        lines.append("")
    if provenance and (provenance.command or provenance.hardware):
        lines += ["## Reproduce", ""]
        if provenance.command:
            lines.append(f"- command: `{provenance.command}`")
        if provenance.hardware:
            lines.append(f"- hardware: {provenance.hardware}")
        if provenance.wall_time_s is not None:
            lines.append(
                f"- training wall time: {provenance.wall_time_s / 60:.1f} min"
                + (f" ({provenance.optimizer_steps} optimiser steps)" if provenance.optimizer_steps else "")
            )
        lines.append("")
    if architecture is None:
        architecture = (
            (
                f"TRM ({'sequence-MLP' if config.mlp_t else 'attention'} mixer), H_cycles={config.H_cycles}, "
                f"L_cycles={config.L_cycles}"
            )
            if hasattr(config, "mlp_t")
            else type(config).__name__
        )
    lines += [
        "## Model",
        "",
        f"- architecture: {architecture}, {parameters:,} parameters (puzzle-embedding table excluded)",
        f"- recursion: up to {config.halt_max_steps} supervision steps with early halting",
        "",
    ]
    lines += ["## Evaluation", ""]
    if evaluation is None:
        lines += ["No evaluation was recorded for this package.", ""]
    else:
        lines += [
            f"- dataset: {evaluation.dataset}",
            f"- {evaluation.metric}: {evaluation.value:.4f} at {evaluation.steps} steps",
        ]
        if evaluation.accuracy_halting is not None:
            lines.append(
                f"- with early halting: {evaluation.accuracy_halting:.4f}"
                + (
                    f", {evaluation.mean_steps_halting:.2f} steps on average"
                    if evaluation.mean_steps_halting is not None
                    else ""
                )
            )
        if evaluation.accuracy_1_step is not None:
            lines.append(
                f"- after one supervision step (the same net without recursion): {evaluation.accuracy_1_step:.4f}"
            )
        if evaluation.per_step_accuracy:
            lines.append(
                "- accuracy after each supervision step: "
                + ", ".join(f"{acc:.3f}" for acc in evaluation.per_step_accuracy)
            )
        ruled = (evaluation.model_extra or {}).get("rule_check")
        if isinstance(ruled, dict) and {"valid", "views", "mean_views", "mean_steps"} <= ruled.keys():
            lines.append(
                f"- valid by the task's rules as `trm solve` answers (halting, up to {ruled['views']} "
                f"test-time views): {ruled['valid']:.4f}, {ruled['mean_views']:.2f} views and "
                f"{ruled['mean_steps']:.2f} steps per puzzle on average"
            )
        halting = (evaluation.model_extra or {}).get("halting")
        if isinstance(halting, dict) and {"accuracy", "mean_steps", "default_accuracy"} <= halting.keys():
            rule = (
                "every step runs"
                if halting.get("threshold") is None
                else f"stop at the first step ≥ {halting.get('min_steps', 1)} with q_halt > {halting['threshold']:.3f}"
            )
            lines.append(
                f"- halting calibrated on {halting.get('dataset') or 'held-out puzzles'} ({rule}): first answer "
                f"valid {halting['accuracy']:.4f} in {halting['mean_steps']:.2f} steps (q_halt > 0 would give "
                f"{halting['default_accuracy']:.4f} in {halting.get('default_mean_steps', 0):.2f})"
            )
        hard = (evaluation.model_extra or {}).get("hard_heldout")
        if isinstance(hard, dict) and "accuracy_all_steps" in hard:
            hard_ruled: dict[str, Any] = hard["rule_check"] if isinstance(hard.get("rule_check"), dict) else {}
            lines.append(
                f"- hard held-out ({hard.get('dataset', 'hard puzzles')}): exact {hard['accuracy_all_steps']:.4f} "
                f"at all steps"
                + (f", valid as `trm solve` answers {hard_ruled['valid']:.4f}" if "valid" in hard_ruled else "")
            )
        outside = (evaluation.model_extra or {}).get("outside")
        if isinstance(outside, list) and outside:
            lines += [
                "",
                "On puzzles from generators written elsewhere (judged by the rules only; `bench/outside_puzzles.py`):",
                "",
                "| generator | puzzles | first answer (`--views 1`) | default `trm solve` | views | steps |",
                "|---|---|---|---|---|---|",
            ]
            for row in outside:
                try:
                    lines.append(
                        f"| {row['generator']} | {row['puzzles']} | {row['first']['valid']:.1%} | "
                        f"{row['default']['valid']:.1%} | {row['default']['mean_views']:.2f} | "
                        f"{row['first']['mean_steps']:.2f} |"
                    )
                except (KeyError, TypeError):
                    continue
        others = (evaluation.model_extra or {}).get("side_by_side")
        if isinstance(others, list) and others:
            own = side_by_side_row(
                {
                    "name": name,
                    "version": version,
                    "model": {"architecture": architecture_name or "trm", "parameters": parameters},
                    "evaluation": evaluation.model_dump(mode="json"),
                    "provenance": provenance.model_dump(mode="json") if provenance else {},
                }
            )
            lines += [
                "",
                "Side by side with other versions of this module (same task; `trm pack --compare`; "
                "CPU-minutes = training wall time × threads; outside generators judged by the rules):",
                "",
            ]
            lines += side_by_side_table([own, *others])
        bf16 = ((evaluation.model_extra or {}).get("precision") or {}).get("bf16")
        if isinstance(bf16, dict) and "no_loss" in bf16:
            lines += [
                "",
                f"bf16 (autocast) against fp32, judged by the rules: **{'no loss' if bf16['no_loss'] else 'a loss'}**"
                f" ({bf16.get('summary', '')}); `--precision auto` serves in bf16 only on a device fast at it"
                + ("" if bf16["no_loss"] else ", and never for this package")
                + ".",
            ]
        lines.append("")
    history = provenance.history if provenance is not None and provenance.history else []
    if history:
        points = sorted(history, key=lambda point: point.get("step", 0))
        lines += [
            "## Training history",
            "",
            f"Held-out exact accuracy against optimiser step over every sitting "
            f"({len(points)} evaluations; `card/accuracy_vs_training_step.png`):",
            "",
            "| step | exact | sitting |",
            "|---|---|---|",
        ]
        shown = points if len(points) <= 12 else points[:: max(1, len(points) // 10)] + [points[-1]]
        seen: set[Any] = set()
        for point in shown:
            if point.get("step") in seen:
                continue
            seen.add(point.get("step"))
            lines.append(f"| {point.get('step')} | {float(point.get('exact', 0)):.3f} | {point.get('sitting') or ''} |")
        lines.append("")
    for image in images:
        lines += [f"![{Path(image).stem}]({image})", ""]
    lines += [
        "## Limits",
        "",
        sections.pop(
            "limits",
            (
                "Accuracy outside the training distribution (other sizes, harder instances) is unknown. The model "
                "can answer confidently and wrongly; check answers with the codec (`valid` in `trm solve` output) "
                "where the task allows it. Confidence is the sigmoid of the halting logit, not a calibrated probability."
            ),
        ),
        "",
    ]
    for heading, text in sections.items():
        lines += [f"## {heading.replace('_', ' ').capitalize()}", "", text, ""]
    lines += ["## License", "", license, ""]
    return "\n".join(lines)


def build_package(
    model: ReasoningModel,
    codec: TaskCodec,
    *,
    name: str,
    version: str,
    out_path: str | os.PathLike,
    examples: Iterable[tuple[Json, Json | None]],
    title: str | None = None,
    description: str = "",
    license: str = "Apache-2.0",
    authors: Iterable[Json] = (),
    module_id: str | None = None,
    evaluation: Json | Evaluation | None = None,
    provenance: Json | Provenance | None = None,
    card: str | Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
    devices: Iterable[str] = ("cpu", "cuda"),
    extra_files: Mapping[str, bytes] | None = None,
    signing_key: Ed25519PrivateKey | str | os.PathLike | None = None,
    allow_failing_examples: bool = False,
) -> Path:
    """Write a package of ``model`` (its current weights) answering ``codec`` tasks; return its path.

    ``examples`` are (input, output) pairs that become the install self-test. An output of None
    records the model's own answer; a given output must be what the model answers (or an answer
    the codec accepts as valid), otherwise ``BuildError`` names the example. Where the codec judges
    answers by the task's rules, the recorded output must also pass them: a model's own wrong answer
    is never recorded as if it were right. ``allow_failing_examples`` (the author says so explicitly)
    packs such examples anyway, with the given output where there is one, so the self-test of
    ``trm verify`` and of every install reports the failure. ``card`` is the full
    README text, or a mapping of sections (``intended_use``, ``training_data``, ``limits``, …)
    overriding the generated model card. The manifest is validated before anything is written.
    """
    config = model.config
    if (codec.vocab_size, codec.seq_len) != (config.vocab_size, config.seq_len):
        raise BuildError(
            f"codec {codec.name} has vocab {codec.vocab_size} and length {codec.seq_len}; the model has "
            f"vocab {config.vocab_size} and length {config.seq_len}"
        )
    examples = list(examples)
    if not examples:
        raise BuildError("a package needs at least one example (its install self-test)", file="examples/")

    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        dtype_name = manifest_dtype_of(state)
    except ValueError as exc:
        raise BuildError(str(exc), file=WEIGHTS_NAME) from exc
    weights = serialize_state_dict(state)

    # The self-test runs on the weights exactly as shipped, halting by the policy the package carries.
    shipped = type(model).from_state_dict(config, state, "cpu", MANIFEST_DTYPES[dtype_name])
    evaluation_model = Evaluation.model_validate(evaluation) if isinstance(evaluation, Mapping) else evaluation
    halting = (evaluation_model.model_extra or {}).get("halting") if evaluation_model is not None else None
    if isinstance(halting, dict):
        shipped.use_halting(halting.get("threshold"), halting.get("min_steps", 1))
    try:
        answers = solve_inputs(shipped, codec, [inp for inp, _ in examples])
    except TRMError as exc:
        raise BuildError(f"an example input cannot be encoded: {exc}", file="examples/") from exc
    files: dict[str, bytes] = {
        WEIGHTS_NAME: weights,
        INPUT_SCHEMA_NAME: pretty_json(codec.input_schema()),
        OUTPUT_SCHEMA_NAME: pretty_json(codec.output_schema()),
    }
    for index, ((inp, expected), answer) in enumerate(zip(examples, answers)):
        example_id, input_name, output_name = example_names(index)
        if isinstance(answer, ItemError):
            raise BuildError(
                f"example {example_id}: {answer.message}; a package's examples must be answerable",
                file=output_name,
                path=answer.path,
            )
        recorded = expected if expected is not None else answer.output
        ruled = codec.check(inp, recorded) if codec.can_check else None
        if not allow_failing_examples:
            if expected is not None and expected != answer.output and answer.valid is not True:
                raise BuildError(
                    f"example {example_id}: the model answers {json.dumps(answer.output)[:200]}, not the "
                    "given output, and the codec does not accept that answer; give examples the model "
                    "solves (or say --allow-failing-examples to pack a failing self-test)",
                    file=output_name,
                )
            if ruled is False:
                whose = "the given output" if expected is not None else "the model's own answer"
                raise BuildError(
                    f"example {example_id}: {whose} {json.dumps(recorded)[:200]} breaks the "
                    f"{codec.name!r} task's rules; a self-test must not record a wrong answer as right "
                    "(train further, or say --allow-failing-examples to pack a failing self-test)",
                    file=output_name,
                )
        files[input_name] = pretty_json(inp)
        files[output_name] = pretty_json(recorded)

    provenance_data = dict(
        provenance.model_dump(exclude_none=True) if isinstance(provenance, Provenance) else provenance or {}
    )
    provenance_data.setdefault("created_at", creation_time())
    provenance_model = Provenance.model_validate(provenance_data)
    for extra_name, content in (extra_files or {}).items():
        if extra_name in files or extra_name in (MANIFEST_NAME, SIGNATURE_NAME, CARD_NAME):
            raise BuildError(f"extra file {extra_name!r} collides with a file the format defines", file=extra_name)
        files[extra_name] = bytes(content)
    parameters = count_parameters(model)
    title = title or f"{name} ({codec.name})"
    if isinstance(card, str):
        files[CARD_NAME] = card.encode("utf-8")
    else:
        images = sorted(n for n in (extra_files or {}) if n.endswith(".png"))
        files[CARD_NAME] = model_card(
            title=title,
            description=description,
            name=name,
            version=version,
            codec=codec,
            config=config,
            parameters=parameters,
            license=license,
            evaluation=evaluation_model,
            provenance=provenance_model,
            sections=card,
            images=images,
            architecture=model.describe(),
            architecture_name=model.architecture,
        ).encode("utf-8")

    manifest_data: Json = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "module_id": module_id or default_module_id(name),
        "title": title,
        "description": description,
        "authors": [dict(a) for a in authors],
        "license": license,
        "task": {
            "codec": codec.name,
            "params": codec.params,
            **({"provider": provider} if (provider := codec_distribution(codec)) is not None else {}),
        },
        "model": {
            "architecture": model.architecture,
            "config": config.model_dump(mode="json"),
            "parameters": parameters,
            "dtype": dtype_name,
            "weights": WEIGHTS_NAME,
        },
        "runtime": {
            "min_trm_modules": __version__,
            "devices": list(devices),
            "memory_bytes": estimate_memory_bytes(config, len(weights)),
        },
        "files": [
            {"path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for path, content in sorted(files.items())
        ],
    }
    if evaluation_model is not None:
        manifest_data["evaluation"] = evaluation_model.model_dump(mode="json", exclude_none=True)
    manifest_data["provenance"] = provenance_model.model_dump(mode="json", exclude_none=True)
    manifest_data = json.loads(canonical_json(manifest_data))  # plain JSON types only
    parse_manifest(manifest_data)
    files[MANIFEST_NAME] = pretty_json(manifest_data)
    if signing_key is not None:
        key = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_private_key(signing_key)
        files[SIGNATURE_NAME] = pretty_json(sign_manifest(manifest_data, key))
    return write_archive(files, out_path)


def sign_package(
    path: str | os.PathLike,
    signing_key: Ed25519PrivateKey | str | os.PathLike,
    out_path: str | os.PathLike | None = None,
) -> Path:
    """Rewrite the package at ``path`` (or to ``out_path``) with a ``signature.json`` by ``signing_key``.

    The package is opened (fully checked) first; an existing signature is replaced.
    """
    from .open import open_package

    package = open_package(path)
    key = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_private_key(signing_key)
    files = {name: bytes(package.archive.read(name)) for name in package.archive.names if name != SIGNATURE_NAME}
    manifest_data = json.loads(files[MANIFEST_NAME])
    files[SIGNATURE_NAME] = pretty_json(sign_manifest(manifest_data, key))
    return write_archive(files, out_path or path)
