"""Does a package keep its answers in bf16? fp32 against bf16 autocast on named sets of puzzles.

``compare_precisions`` answers each set twice per precision — the first answer (one view) and the
default answer (``trm solve``'s test-time views) — and judges every answer by the task's rules, as
``bench/outside_puzzles.py`` does. Its result is what a package records as ``evaluation.precision.bf16``
and what ``precision auto`` reads (``trm_modules.model.precision.package_bf16_verdict``): ``no_loss``
only when, on every set, bf16 is right at least as often as fp32 for both answers.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from .codec import TaskCodec
from .model import ReasoningModel
from .model.precision import measure_gemm_speed
from .solving import ModelAnswer, answer_documents
from .views import DEFAULT_VIEWS


def _judged(results: Sequence[Any]) -> tuple[float, list[Any]]:
    """(share valid by the rules, each answer's output or None)."""
    outputs = [r.output if isinstance(r, ModelAnswer) else None for r in results]
    valid = sum(isinstance(r, ModelAnswer) and r.valid is True for r in results)
    return (valid / len(results) if results else 0.0), outputs


def compare_precisions(
    model: ReasoningModel,
    codec: TaskCodec,
    validator: Any,
    sets: Mapping[str, Sequence[Any]],
    *,
    views: int = DEFAULT_VIEWS,
    batch_size: int = 256,
) -> dict[str, Any]:
    """fp32 against bf16 (autocast) on each named set of input documents.

    Returns ``{"no_loss", "summary", "sets": [{"set", "puzzles", "fp32": {"first", "default"}, "bf16": {…},
    "differing_first", "differing_default", "seconds": {"fp32", "bf16"}}], "device"}`` where first/default
    are the shares valid by the task's rules and ``differing_*`` count the answers that differ.
    """
    rows = []
    for name, documents in sets.items():
        documents = list(documents)
        row: dict[str, Any] = {"set": name, "puzzles": len(documents), "seconds": {}}
        outputs: dict[str, dict[str, list[Any]]] = {}
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            first, first_out = _judged(
                answer_documents(
                    model, codec, validator, documents, views=1, batch_size=batch_size, precision=precision
                )
            )
            default, default_out = _judged(
                answer_documents(
                    model, codec, validator, documents, views=views, batch_size=batch_size, precision=precision
                )
            )
            row["seconds"][precision] = round(time.perf_counter() - start, 3)
            row[precision] = {"first": first, "default": default}
            outputs[precision] = {"first": first_out, "default": default_out}
        for answer in ("first", "default"):
            row[f"differing_{answer}"] = sum(a != b for a, b in zip(outputs["fp32"][answer], outputs["bf16"][answer]))
        rows.append(row)
    return precision_record(rows)


def precision_record(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``evaluation.precision.bf16`` from the rows of one or several ``compare_precisions`` calls (e.g. held-out
    puzzles here, outside generators' from ``bench/outside_puzzles.py --bf16``)."""
    rows = [dict(r) for r in rows]
    no_loss = bool(rows) and all(
        r["bf16"]["first"] >= r["fp32"]["first"] and r["bf16"]["default"] >= r["fp32"]["default"] for r in rows
    )
    summary = "; ".join(
        f"{r['set']} ({r['puzzles']}): first answer {r['bf16']['first']:.1%} in bf16 vs "
        f"{r['fp32']['first']:.1%} in fp32, default {r['bf16']['default']:.1%} vs {r['fp32']['default']:.1%}"
        for r in rows
    )
    speed = measure_gemm_speed("cpu")
    return {"no_loss": no_loss, "summary": summary or "no puzzles", "sets": rows, "device": f"cpu, {speed.describe()}"}
