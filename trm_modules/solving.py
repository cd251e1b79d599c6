"""The batch solving kernel: validate → encode → batched solve → decode → test-time views → choose.

The one path from JSON inputs to JSON answers that ``trm solve``, evaluation, the package builder,
package and host self-tests and the ONNX check share (the host runs the same token solve on its
device thread and the same views one request at a time). Bad documents become per-item errors;
the others are still answered.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

import jsonschema
import numpy as np
import torch
from jsonschema.exceptions import best_match

from .codec import TaskCodec
from .errors import CodecError, json_pointer
from .json_limits import check_json_depth
from .model import ReasoningModel
from .model.precision import autocast_for
from .model.trm import StepFunction
from .views import choose, decode_candidate, needs_more_views, views_of


@dataclass
class ModelAnswer:
    """The model's answer to one input: decoded output, steps used, confidence, validity (None = unknowable).
    (The host's ``trm_modules.host.Answer`` is one served request: this, attributed to a version, timed, recorded.)

    ``views`` is how many test-time views were solved for it (``trm_modules.views``); ``steps``
    counts the supervision steps of all of them.
    """

    output: dict[str, Any]
    steps: int
    confidence: float
    valid: bool | None
    views: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "steps": self.steps,
            "confidence": self.confidence,
            "valid": self.valid,
            "views": self.views,
        }


@dataclass
class ItemError:
    """Why one input got no answer (bad input, or an answer the codec cannot decode).

    ``path`` is a JSON pointer into the input (or into the would-be output when decoding failed).
    """

    message: str
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "path": self.path}}


def model_device(model: ReasoningModel) -> torch.device:
    """The device holding ``model``'s weights."""
    return next(model.parameters()).device


#: (answer tokens (N, L), steps (N,), confidence (N,)) of N solved rows.
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Something that solves (N, L) tokens with their puzzle ids: ``solve_tokens`` bound to a model, or a host's batch runner.
RowSolver = Callable[[np.ndarray, np.ndarray], Rows]


def solve_tokens(
    model: ReasoningModel,
    tokens: np.ndarray,
    puzzle_ids: np.ndarray,
    *,
    max_steps: int | None = None,
    halt: bool = True,
    batch_size: int | None = None,
    answer_table: np.ndarray | None = None,
    step: StepFunction | None = None,
    precision: str = "fp32",
) -> Rows:
    """(answer tokens, steps, confidence) of (N, L) inputs on the model's device, ``batch_size`` rows at a time
    (all at once when None), decoding within ``answer_table`` (``TaskCodec.answer_token_table``). ``step``: the
    engine's supervision step (``trm_modules.model.onnx_step.step_for_engine``; None: eager). ``precision``:
    ``fp32`` or ``bf16`` (autocast; ``trm_modules.model.precision``), already resolved."""
    device = model_device(model)
    table = None if answer_table is None else torch.from_numpy(answer_table).to(device)
    rows = batch_size or max(len(tokens), 1)
    parts = []
    engine = {"step": step} if step is not None else {}  # eager: the model's solve as it is (stand-ins too)
    with torch.inference_mode(), autocast_for(precision, device):
        for start in range(0, len(tokens), rows):
            solution = model.solve(
                torch.from_numpy(tokens[start : start + rows]).to(device),
                torch.from_numpy(puzzle_ids[start : start + rows]).to(device),
                max_steps=max_steps,
                halt=halt,
                answer_table=table,
                **engine,
            )
            parts.append(
                (solution.tokens.cpu().numpy(), solution.steps.cpu().numpy(), solution.confidence.float().cpu().numpy())
            )
    return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]


def solve_inputs(
    model: ReasoningModel | None,
    codec: TaskCodec,
    inputs: list[dict[str, Any]],
    *,
    max_steps: int | None = None,
    halt: bool = True,
    batch_size: int = 256,
    views: int = 1,
    solve: RowSolver | None = None,
    step: StepFunction | None = None,
    precision: str = "fp32",
) -> list[ModelAnswer | ItemError]:
    """Answer already-validated inputs in batches through ``model.solve``, decoding within what each
    input allows (``TaskCodec.answer_token_table``). ``solve``: solves the token rows instead of
    ``model`` (the host passes its device-thread batch runner).

    With ``views`` > 1, inputs whose answer the task's rules reject are solved again through up to
    ``views - 1`` transformed views and the answer is chosen among all (``trm_modules.views``).
    An answer whose tokens the codec cannot decode (an untrained model can emit pad or blank
    tokens) becomes an ``ItemError``. Raises ``CodecError`` if an input cannot be encoded
    (callers validate first to avoid that).
    """
    if not inputs:
        return []
    tokens = np.stack([codec.encode_input(doc) for doc in inputs]).astype(np.int64)
    puzzle_ids = np.array([codec.puzzle_id(doc) for doc in inputs], dtype=np.int64)
    if solve is None:
        if model is None:
            raise ValueError("solve_inputs needs a model or a solve function")
        solve = functools.partial(
            solve_tokens,
            model,
            max_steps=max_steps,
            halt=halt,
            batch_size=batch_size,
            answer_table=codec.answer_token_table(),
            step=step,
            precision=precision,
        )
    out, steps, confidence = solve(tokens, puzzle_ids)
    candidates = [
        [decode_candidate(codec, out[i], doc, int(steps[i]), float(confidence[i]))] for i, doc in enumerate(inputs)
    ]
    retry = [i for i, found in enumerate(candidates) if needs_more_views(found[0])]
    extra_views = views_of(codec, views)[1:] if retry else []
    if extra_views:
        viewed = np.concatenate([view.apply(tokens[retry]) for view in extra_views])
        out, steps, confidence = solve(viewed, np.tile(puzzle_ids[retry], len(extra_views)))
        for v, view in enumerate(extra_views):
            answers = view.invert(out[v * len(retry) : (v + 1) * len(retry)])
            for k, i in enumerate(retry):
                row = v * len(retry) + k
                candidates[i].append(
                    decode_candidate(codec, answers[k], inputs[i], int(steps[row]), float(confidence[row]))
                )
    results: list[ModelAnswer | ItemError] = []
    for found in candidates:
        chosen = choose(found)
        used = sum(c.steps for c in found)
        if chosen.output is None:
            message, path = chosen.problem or ("", "")
            results.append(ItemError(f"the model's answer cannot be decoded: {message}", path))
            continue
        results.append(
            ModelAnswer(
                output=chosen.output, steps=used, confidence=chosen.confidence, valid=chosen.valid, views=len(found)
            )
        )
    return results


@dataclass
class ExampleResult:
    """One example of a self-test: passed when the answer equals the output or the codec accepts it (the
    weights answer as when packed). ``valid``: the codec's judgement by the task's rules (None = it cannot
    tell); ``breaks_rules``: the answer equals a recorded output that breaks them, which ``verify_package``
    reports, since agreement then shows only that the weights are intact."""

    name: str
    passed: bool
    exact: bool
    steps: int
    output: dict[str, Any] | None = None
    problem: ItemError | None = None  # why there is no answer at all
    valid: bool | None = None
    #: The answer equals the recorded output and that output breaks the task's rules.
    breaks_rules: bool = False


def grade_examples(
    names: list[str], examples: list[tuple[dict[str, Any], Any]], answers: list[ModelAnswer | ItemError]
) -> list[ExampleResult]:
    """How each answer compares with its example's expected output (the self-test's verdicts)."""
    results = []
    for name, (_, expected), answer in zip(names, examples, answers):
        if isinstance(answer, ItemError):
            results.append(ExampleResult(name=name, passed=False, exact=False, steps=0, problem=answer))
            continue
        exact = answer.output == expected
        passed = exact or answer.valid is True
        results.append(
            ExampleResult(
                name=name,
                passed=passed,
                exact=exact,
                steps=answer.steps,
                output=answer.output,
                valid=answer.valid,
                breaks_rules=exact and answer.valid is False,
            )
        )
    return results


def check_input(document: Any, validator: jsonschema.Draft202012Validator, codec: TaskCodec) -> ItemError | None:
    """Why ``document`` cannot be answered (schema, then codec rules), or None when it can."""
    error = best_match(validator.iter_errors(document))
    if error is not None:
        return ItemError(
            f"input does not match the package's input schema: {error.message}", json_pointer(error.absolute_path)
        )
    try:
        codec.encode_input(document)
    except CodecError as exc:
        return ItemError(exc.message, exc.path)
    return None


def answer_documents(
    model: ReasoningModel,
    codec: TaskCodec,
    validator: Any,
    documents: list[Any],
    *,
    max_steps: int | None = None,
    halt: bool = True,
    batch_size: int = 256,
    views: int = 1,
    step: StepFunction | None = None,
    precision: str = "fp32",
) -> list[ModelAnswer | ItemError]:
    """One result per document, in order: a ``ModelAnswer``, or an ``ItemError`` (bad document, undecodable answer).

    ``validator``: the input schema's validator (a package's: ``Package.input_validator``).
    """
    results: list[ModelAnswer | ItemError | None] = [check_input(doc, validator, codec) for doc in documents]
    good = [i for i, r in enumerate(results) if r is None]
    answers = solve_inputs(
        model,
        codec,
        [documents[i] for i in good],
        max_steps=max_steps,
        halt=halt,
        batch_size=batch_size,
        views=views,
        step=step,
        precision=precision,
    )
    for index, answer in zip(good, answers):
        results[index] = answer
    return results  # type: ignore[return-value]


def answer_jsonl(
    model: ReasoningModel,
    codec: TaskCodec,
    validator: Any,
    lines: list[str],
    *,
    max_steps: int | None = None,
    halt: bool = True,
    batch_size: int = 256,
    views: int = 1,
    step: StepFunction | None = None,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Answer JSONL lines: one JSON object per non-blank line, ``{"output": …}`` or ``{"error": …}``."""
    documents: list[Any] = []
    parse_errors: dict[int, ItemError] = {}
    for index, line in enumerate(lines):
        try:
            check_json_depth(line.encode("utf-8", "surrogatepass"))
            documents.append(json.loads(line))
        except ValueError as exc:
            parse_errors[index] = ItemError(f"line {index + 1} is not JSON: {exc}", "")
            documents.append(None)
    pending = [i for i in range(len(lines)) if i not in parse_errors]
    answered = answer_documents(
        model,
        codec,
        validator,
        [documents[i] for i in pending],
        max_steps=max_steps,
        halt=halt,
        batch_size=batch_size,
        views=views,
        step=step,
        precision=precision,
    )
    results: list[Any] = [None] * len(lines)
    for index, error in parse_errors.items():
        results[index] = error
    for index, result in zip(pending, answered):
        results[index] = result
    return [r.to_json() for r in results]
