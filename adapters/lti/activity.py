"""The activity an LTI launch opens: puzzles drawn from the module's task, the module asked on the
server with the launch's context (so per-course pins and canaries apply), and grading on the server
by the same rule as the SCORM and cmi5 activities (a cell the module filled earns the learner nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trm_adapters.scorm.export import ScormExportError, grid_view

from .storage import LtiError


def has_activity(package: Any) -> bool:
    """Does the module's task have a browser board (its plugin implements ``trm_board_view``)?"""
    try:
        grid_view(package.codec())
    except ScormExportError:
        return False
    return True


def draw_activity(package: Any, puzzles: int, seed: int) -> dict[str, Any]:
    """Puzzles of ``package``'s task with their solutions (kept on the server), and the board's view."""
    codec = package.codec()
    try:
        view = grid_view(codec)
    except ScormExportError as exc:
        raise LtiError(409, "no-activity", f"module {package.manifest.name!r} cannot be launched: {exc}") from exc
    items = []
    for index, (data_in, data_out) in enumerate(codec.generate(np.random.default_rng(seed), puzzles)):
        items.append(
            {
                "id": f"puzzle-{index + 1}",
                "input": data_in,
                "tokens": [int(t) for t in codec.encode_input(data_in)],
                "solution_tokens": [int(t) for t in codec.encode_output(data_out, data_in)],
                "module_cells": [],
            }
        )
    return {"view": view, "puzzles": items, "title": package.manifest.title or package.manifest.name}


@dataclass(frozen=True)
class Grade:
    """A submission graded: ``earned`` of ``blanks`` cells to fill are right and never filled by the module;
    ``extra`` marks where the solution leaves the cell blank (a maze cell off the path) each take one back."""

    blanks: int
    right: int
    earned: int
    by_module: int
    cells: list[dict[str, Any]]
    extra: int = 0

    @property
    def scaled(self) -> float:
        return max(0, self.earned - self.extra) / self.blanks if self.blanks else 1.0

    @property
    def success(self) -> bool:
        return self.earned == self.blanks and self.extra == 0


def grade(puzzle: dict[str, Any], blank_token: int, response: list[int]) -> Grade:
    """Grade ``response`` (tokens, one per cell) against the puzzle's solution and the module's cells, as the
    SCORM and cmi5 activities do (``trm_adapters/scorm/board.js``, ``grade``)."""
    if len(response) != len(puzzle["tokens"]):
        raise ValueError(f"expected {len(puzzle['tokens'])} cells, got {len(response)}")
    module_cells = set(puzzle["module_cells"])
    cells, right, earned, by_module, extra = [], 0, 0, 0, 0
    for index, token in enumerate(puzzle["tokens"]):
        if token != blank_token:
            continue
        ok = response[index] == puzzle["solution_tokens"][index]
        if puzzle["solution_tokens"][index] == blank_token:  # a cell the solution leaves as it is
            if not ok:
                extra += 1
                cells.append({"index": index, "right": False, "by_module": index in module_cells})
            continue
        mine = ok and index not in module_cells
        right += ok
        earned += mine
        by_module += index in module_cells
        cells.append({"index": index, "right": ok, "by_module": index in module_cells})
    blanks = len(cells) - extra
    return Grade(blanks=blanks, right=right, earned=earned, by_module=by_module, cells=cells, extra=extra)
