"""The training set for a module's next version, built from what the store learned in use.

Three sources, in order of authority (an input appearing in several keeps the first):
``correction``: inputs with the latest effective corrected output (refused if the codec's rules reject it);
``confirmed``: inputs whose latest effective verdict is ``correct``, with the module's output;
``solver``: inputs the module got wrong (verdict ``incorrect`` without a correction, or no verdict
and an output the codec found invalid) with the codec's ``reference_solution``; left out with
``solver_labels=False`` (a training set labelled by people only: such failures are then counted in
the data card as ``excluded.failure_without_correction``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..errors import ModuleNotFound, TRMError
from .models import Solve
from .queries import VERDICT_KINDS, latest_effective
from .storage import Store

if TYPE_CHECKING:
    from ..codec import TaskCodec

SOURCES = ("correction", "confirmed", "solver")


@dataclass
class ExportSummary:
    """What ``export_feedback_dataset`` wrote: paths, examples per source, and what it left out and why."""

    train_path: Path
    data_card_path: Path
    counts: dict[str, int]
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def export_feedback_dataset(
    store: Store,
    module: str,
    out_dir: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    codec: TaskCodec | None = None,
    solver_labels: bool = True,
) -> ExportSummary:
    """Write ``out_dir/train.jsonl`` and ``out_dir/data_card.json`` for ``module`` from solves in [since, until).

    ``codec`` checks corrections and solves failed inputs; by default it is the codec recorded
    with the module's most recently installed package (``Store.record_installed_package``).
    Without any, corrections and confirmations are still exported and failed inputs are counted
    in the data card as ``excluded.no_codec``. ``solver_labels=False`` takes labels only from
    corrections and confirmations: no failure is labelled by the codec's solver.
    """
    since, until = _utc(since), _utc(until)
    codec, codec_note = _codec_for(store, module, codec)
    correction = latest_effective(("correction",))
    verdict = latest_effective(VERDICT_KINDS)
    query = (
        select(
            Solve.id,
            Solve.version,
            Solve.digest,
            Solve.input,
            Solve.output,
            Solve.valid,
            Solve.created_at,
            correction.c.corrected_output,
            verdict.c.kind,
        )
        .outerjoin(correction, correction.c.solve_id == Solve.id)
        .outerjoin(verdict, verdict.c.solve_id == Solve.id)
        .where(Solve.module == module)
        .order_by(Solve.created_at.desc(), Solve.id.desc())
    )  # newest answer first for a repeated input
    if since is not None:
        query = query.where(Solve.created_at >= since)
    if until is not None:
        query = query.where(Solve.created_at < until)
    with store.session() as session:
        rows = session.execute(query).all()
        if not rows and session.scalar(select(Solve.id).where(Solve.module == module).limit(1)) is None:
            raise ModuleNotFound(f"no solves of module {module!r} are recorded in {store!r}")

    candidates: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {source: [] for source in SOURCES}
    excluded: Counter[str] = Counter()
    versions: Counter[tuple[str, str]] = Counter()
    for solve_id, version, digest, data_in, data_out, valid, _created, corrected, verdict_kind in rows:
        versions[(version, digest)] += 1
        if corrected is not None:
            if codec is not None and codec.check(data_in, corrected) is False:
                excluded["correction_rejected_by_codec"] += 1
            else:
                candidates["correction"].append((solve_id, data_in, corrected))
                continue
        if verdict_kind == "correct" and data_out is not None:
            candidates["confirmed"].append((solve_id, data_in, data_out))
        elif verdict_kind in ("incorrect", "correction") or (verdict_kind is None and valid is False):
            if not solver_labels:
                excluded["failure_without_correction"] += 1
                continue
            if codec is None:
                excluded["no_codec"] += 1
                continue
            solution = _reference_solution(codec, data_in, excluded)
            if solution is not None:
                candidates["solver"].append((solve_id, data_in, solution))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts = {source: 0 for source in SOURCES}
    train_path = out / "train.jsonl"
    with open(train_path, "w", encoding="utf-8") as train:
        for source in SOURCES:
            for _solve_id, data_in, data_out in candidates[source]:
                key = json.dumps(data_in, sort_keys=True, separators=(",", ":"))
                if key in seen:
                    excluded["duplicate_input"] += 1
                    continue
                seen.add(key)
                train.write(json.dumps({"input": data_in, "output": data_out, "source": source}) + "\n")
                counts[source] += 1

    created = [row[6] for row in rows]
    card = {
        "module": module,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "window": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "first_solve": min(created).isoformat() if created else None,
            "last_solve": max(created).isoformat() if created else None,
        },
        "counts": {**counts, "total": sum(counts.values())},
        "excluded": dict(sorted(excluded.items())),
        "solves_considered": len(rows),
        "versions_seen": [{"version": v, "digest": d, "solves": n} for (v, d), n in sorted(versions.items())],
        "codec": {"name": codec.name, "params": codec.params} if codec is not None else None,
        "codec_note": codec_note,
        "solver_labels": solver_labels,
        "sources": {
            "correction": "latest effective corrected output given as feedback",
            "confirmed": "module output whose latest effective verdict is 'correct'",
            "solver": "codec reference solution for an input the module got wrong",
        },
    }
    data_card_path = out / "data_card.json"
    data_card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return ExportSummary(train_path=train_path, data_card_path=data_card_path, counts=counts, excluded=dict(excluded))


def _codec_for(store: Store, module: str, codec: TaskCodec | None) -> tuple[TaskCodec | None, str]:
    if codec is not None:
        return codec, "passed in"
    package = store.installed_package(module)
    if package is None:
        return None, f"no installed package named {module!r} is recorded, and no codec was passed"
    from ..plugins import get_codec

    try:
        return get_codec(package.codec, package.codec_params), f"from installed package {package.version}"
    except TRMError as exc:
        return None, f"codec {package.codec!r} of the installed package is unavailable: {exc}"


def _reference_solution(codec: TaskCodec, data_in: dict[str, Any], excluded: Counter[str]) -> dict[str, Any] | None:
    try:
        solution = codec.reference_solution(data_in)
    except TRMError:
        excluded["solver_rejected_input"] += 1
        return None
    if solution is None:
        excluded["solver_found_no_solution"] += 1
    return solution


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
