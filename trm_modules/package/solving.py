"""Answering task documents with a package's model: validate → encode → batched solve → decode.

The one path from JSON inputs to JSON answers that the self-test, ``trm solve``, the builder and
the ONNX check share. Bad documents become per-item errors; the others are still answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np
import torch
from jsonschema.exceptions import best_match

from ..codec import TaskCodec
from ..errors import CodecError
from ..json_limits import check_json_depth
from ..model import TRM
from ..views import choose, decode_candidate, needs_more_views, views_of
from .manifest import json_pointer
from .task_schema import task_validator


@dataclass
class Answer:
    """The model's answer to one input: decoded output, steps used, confidence, validity (None = unknowable).

    ``views`` is how many test-time views were solved for it (``trm_modules.views``); ``steps``
    counts the supervision steps of all of them.
    """

    output: dict[str, Any]
    steps: int
    confidence: float
    valid: bool | None
    views: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "steps": self.steps, "confidence": self.confidence, "valid": self.valid,
                "views": self.views}


@dataclass
class ItemError:
    """Why one input got no answer (bad input, or an answer the codec cannot decode).

    ``path`` is a JSON pointer into the input (or into the would-be output when decoding failed).
    """

    message: str
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "path": self.path}}


def model_device(model: TRM) -> torch.device:
    """The device holding ``model``'s weights."""
    return next(model.parameters()).device


def _solve_tokens(model: TRM, tokens: np.ndarray, puzzle_ids: np.ndarray, *, max_steps: int | None, halt: bool,
                  batch_size: int, answer_table: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(answer tokens, steps, confidence) of (N, L) inputs, solved ``batch_size`` rows at a time."""
    device = model_device(model)
    table = None if answer_table is None else torch.from_numpy(answer_table).to(device)
    parts = []
    for start in range(0, len(tokens), batch_size):
        solution = model.solve(torch.from_numpy(tokens[start : start + batch_size]).to(device),
                               torch.from_numpy(puzzle_ids[start : start + batch_size]).to(device),
                               max_steps=max_steps, halt=halt, answer_table=table)
        parts.append((solution.tokens.cpu().numpy(), solution.steps.cpu().numpy(),
                      solution.confidence.float().cpu().numpy()))
    return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]


def solve_inputs(model: TRM, codec: TaskCodec, inputs: list[dict[str, Any]], *, max_steps: int | None = None,
                 halt: bool = True, batch_size: int = 256, views: int = 1) -> list[Answer | ItemError]:
    """Answer already-validated inputs in batches through ``model.solve``, decoding within what each
    input allows (``TaskCodec.answer_token_table``).

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
    options = {"max_steps": max_steps, "halt": halt, "batch_size": batch_size,
               "answer_table": codec.answer_token_table()}
    out, steps, confidence = _solve_tokens(model, tokens, puzzle_ids, **options)
    candidates = [[decode_candidate(codec, out[i], doc, int(steps[i]), float(confidence[i]))]
                  for i, doc in enumerate(inputs)]
    retry = [i for i, found in enumerate(candidates) if needs_more_views(found[0])]
    extra_views = views_of(codec, views)[1:] if retry else []
    if extra_views:
        viewed = np.concatenate([view.apply(tokens[retry]) for view in extra_views])
        out, steps, confidence = _solve_tokens(model, viewed, np.tile(puzzle_ids[retry], len(extra_views)), **options)
        for v, view in enumerate(extra_views):
            answers = view.invert(out[v * len(retry) : (v + 1) * len(retry)])
            for k, i in enumerate(retry):
                row = v * len(retry) + k
                candidates[i].append(decode_candidate(codec, answers[k], inputs[i], int(steps[row]),
                                                      float(confidence[row])))
    results: list[Answer | ItemError] = []
    for found in candidates:
        chosen = choose(found)
        used = sum(c.steps for c in found)
        if chosen.output is None:
            message, path = chosen.problem or ("", "")
            results.append(ItemError(f"the model's answer cannot be decoded: {message}", path))
            continue
        results.append(Answer(output=chosen.output, steps=used, confidence=chosen.confidence, valid=chosen.valid,
                              views=len(found)))
    return results


def check_input(document: Any, validator: jsonschema.Draft202012Validator, codec: TaskCodec) -> ItemError | None:
    """Why ``document`` cannot be answered (schema, then codec rules), or None when it can."""
    error = best_match(validator.iter_errors(document))
    if error is not None:
        return ItemError(f"input does not match the package's input schema: {error.message}",
                          json_pointer(error.absolute_path))
    try:
        codec.encode_input(document)
    except CodecError as exc:
        return ItemError(exc.message, exc.path)
    return None


def answer_documents(model: TRM, codec: TaskCodec, input_schema: dict[str, Any], documents: list[Any], *,
                     max_steps: int | None = None, halt: bool = True,
                     batch_size: int = 256, views: int = 1) -> list[Answer | ItemError]:
    """One result per document, in order: an ``Answer``, or an ``ItemError`` (bad document, undecodable answer)."""
    validator = task_validator(input_schema)
    results: list[Answer | ItemError | None] = [check_input(doc, validator, codec) for doc in documents]
    good = [i for i, r in enumerate(results) if r is None]
    answers = solve_inputs(model, codec, [documents[i] for i in good], max_steps=max_steps, halt=halt,
                           batch_size=batch_size, views=views)
    for index, answer in zip(good, answers):
        results[index] = answer
    return results  # type: ignore[return-value]


def answer_jsonl(model: TRM, codec: TaskCodec, input_schema: dict[str, Any], lines: list[str], *,
                 max_steps: int | None = None, halt: bool = True, batch_size: int = 256,
                 views: int = 1) -> list[dict[str, Any]]:
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
    answered = answer_documents(model, codec, input_schema, [documents[i] for i in pending],
                                max_steps=max_steps, halt=halt, batch_size=batch_size, views=views)
    results: list[Any] = [None] * len(lines)
    for index, error in parse_errors.items():
        results[index] = error
    for index, result in zip(pending, answered):
        results[index] = result
    return [r.to_json() for r in results]
