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
from ..model import TRM
from .manifest import json_pointer


@dataclass
class Answer:
    """The model's answer to one input: decoded output, steps used, confidence, validity (None = unknowable)."""

    output: dict[str, Any]
    steps: int
    confidence: float
    valid: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "steps": self.steps, "confidence": self.confidence, "valid": self.valid}


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


def solve_inputs(model: TRM, codec: TaskCodec, inputs: list[dict[str, Any]], *, max_steps: int | None = None,
                 halt: bool = True, batch_size: int = 256) -> list[Answer | ItemError]:
    """Answer already-validated inputs in batches through ``model.solve``.

    An answer whose tokens the codec cannot decode (an untrained model can emit pad or blank
    tokens) becomes an ``ItemError``. Raises ``CodecError`` if an input cannot be encoded
    (callers validate first to avoid that).
    """
    answers: list[Answer | ItemError] = []
    device = model_device(model)
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        tokens = torch.from_numpy(np.stack([codec.encode_input(doc) for doc in chunk]).astype(np.int64)).to(device)
        puzzle_ids = torch.tensor([codec.puzzle_id(doc) for doc in chunk], dtype=torch.long, device=device)
        solution = model.solve(tokens, puzzle_ids, max_steps=max_steps, halt=halt)
        out_tokens = solution.tokens.cpu().numpy()
        for row, doc in enumerate(chunk):
            try:
                output = codec.decode_output(out_tokens[row], doc)
            except CodecError as exc:
                answers.append(ItemError(f"the model's answer cannot be decoded: {exc.message}", exc.path))
                continue
            answers.append(Answer(output=output, steps=int(solution.steps[row]),
                                  confidence=float(solution.confidence[row]), valid=codec.check(doc, output)))
    return answers


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
                     batch_size: int = 256) -> list[Answer | ItemError]:
    """One result per document, in order: an ``Answer``, or an ``ItemError`` (bad document, undecodable answer)."""
    validator = jsonschema.Draft202012Validator(input_schema)
    results: list[Answer | ItemError | None] = [check_input(doc, validator, codec) for doc in documents]
    good = [i for i, r in enumerate(results) if r is None]
    answers = solve_inputs(model, codec, [documents[i] for i in good], max_steps=max_steps, halt=halt,
                           batch_size=batch_size)
    for index, answer in zip(good, answers):
        results[index] = answer
    return results  # type: ignore[return-value]


def answer_jsonl(model: TRM, codec: TaskCodec, input_schema: dict[str, Any], lines: list[str], *,
                 max_steps: int | None = None, halt: bool = True, batch_size: int = 256) -> list[dict[str, Any]]:
    """Answer JSONL lines: one JSON object per non-blank line, ``{"output": …}`` or ``{"error": …}``."""
    documents: list[Any] = []
    parse_errors: dict[int, ItemError] = {}
    for index, line in enumerate(lines):
        try:
            documents.append(json.loads(line))
        except ValueError as exc:
            parse_errors[index] = ItemError(f"line {index + 1} is not JSON: {exc}", "")
            documents.append(None)
    pending = [i for i in range(len(lines)) if i not in parse_errors]
    answered = answer_documents(model, codec, input_schema, [documents[i] for i in pending],
                                max_steps=max_steps, halt=halt, batch_size=batch_size)
    results: list[Any] = [None] * len(lines)
    for index, error in parse_errors.items():
        results[index] = error
    for index, result in zip(pending, answered):
        results[index] = result
    return [r.to_json() for r in results]
