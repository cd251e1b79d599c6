"""Versions of one task side by side (e.g. an HRM against a TRM): the figures a course compares them by.

``side_by_side_row`` reads what a manifest already records — architecture, parameters, CPU-minutes of
training, held-out exact accuracy, and the first and default answers on each outside generator with
the supervision steps used — so ``trm pack --compare OTHER.trm`` can put the packed version and the
others in one table (``evaluation.side_by_side``), which the model card shows.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping


def _threads(hardware: str | None) -> int:
    found = re.search(r"(\d+) threads?", hardware or "")
    return int(found.group(1)) if found else 1


def side_by_side_row(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the table from a manifest (as JSON): the figures it records, None where it records none."""
    model = manifest.get("model") or {}
    evaluation = manifest.get("evaluation") or {}
    provenance = manifest.get("provenance") or {}
    wall = provenance.get("wall_time_s")
    outside = {
        row["generator"]: {
            "first": row["first"]["valid"],
            "default": row["default"]["valid"],
            "steps": row["first"].get("mean_steps"),
        }
        for row in evaluation.get("outside") or []
        if {"generator", "first", "default"} <= row.keys()
    }
    return {
        "module": f"{manifest['name']}@{manifest['version']}",
        "architecture": model.get("architecture", "trm"),
        "parameters": model.get("parameters"),
        "cpu_minutes": None if wall is None else round(wall / 60 * _threads(provenance.get("hardware")), 1),
        "optimizer_steps": provenance.get("optimizer_steps"),
        "heldout_exact": evaluation.get("value"),
        "heldout_steps": evaluation.get("steps"),
        "heldout_halting": evaluation.get("accuracy_halting"),
        "mean_steps_halting": evaluation.get("mean_steps_halting"),
        "outside": outside,
    }


def side_by_side_table(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of the table (one row per version, one first/default column pair per outside generator)."""
    rows = list(rows)
    generators = sorted({g for row in rows for g in row.get("outside", {})})
    header = (
        "| version | architecture | parameters | CPU-minutes | held-out exact | with halting (steps) | "
        + " | ".join(f"{g}: first / default (steps)" for g in generators)
        + " |"
    )
    lines = [header, "|" + "---|" * (6 + len(generators))]

    def pct(value: Any) -> str:
        return "—" if value is None else f"{value:.1%}"

    for row in rows:
        cells = [
            row["module"],
            str(row["architecture"]).upper(),
            "—" if row.get("parameters") is None else f"{row['parameters']:,}",
            "—" if row.get("cpu_minutes") is None else f"{row['cpu_minutes']:.0f}",
            pct(row.get("heldout_exact")),
            pct(row.get("heldout_halting"))
            + ("" if row.get("mean_steps_halting") is None else f" ({row['mean_steps_halting']:.2f})"),
        ]
        for g in generators:
            o = row.get("outside", {}).get(g)
            cells.append(
                "—"
                if o is None
                else f"{pct(o['first'])} / {pct(o['default'])}"
                + ("" if o.get("steps") is None else f" ({o['steps']:.2f})")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines
