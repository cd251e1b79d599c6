"""The Sudoku task codec (``"sudoku"``): n×n boards with box_rows×box_cols boxes.

Wire format: input ``{"grid": [[int]]}`` with 0 for a blank and 1..n for a given; output
``{"grid": [[int]]}`` with 1..n everywhere. Tokens follow the authors' Sudoku dataset:
0 = pad, 1 = blank, digit d → d + 1 (vocab n + 2, sequence n² in row-major order).
An answer is judged by the rules (rows, columns, boxes) and the givens, never by a stored label.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from trm_modules.codec import Json, TaskCodec
from trm_modules.errors import CodecError
from trm_modules import hookimpl

from .schema_validation import compile_schema, validate_document
from .sudoku_solver import (
    MAX_SIZE,
    MIN_SIZE,
    SudokuGeometry,
    carve_unique_puzzle,
    count_completions,
    default_box_shape,
    random_full_grid,
    solve_board,
)

PAD_TOKEN = 0
BLANK_TOKEN = 1
DIGIT_OFFSET = 1  # digit d is token d + 1

#: Default (min_givens, max_givens) of generated puzzles: from near-minimal to easy.
DEFAULT_GIVENS_RANGE: dict[int, tuple[int, int]] = {4: (4, 12), 6: (8, 28), 9: (22, 50), 16: (120, 200)}


def _board_size_param(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"sudoku parameter {name!r} must be an integer, got {value!r}", f"/task/params/{name}")
    return value


class SudokuCodec(TaskCodec):
    """Sudoku boards of side ``size`` (4..16) with boxes of ``box_rows`` × ``box_cols`` cells.

    The box shape is derived from the size when not given (4 → 2×2, 6 → 2×3, 9 → 3×3, 16 → 4×4).
    """

    name = "sudoku"

    def __init__(self, size: int = 9, box_rows: int | None = None, box_cols: int | None = None) -> None:
        size = _board_size_param(size, "size")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise CodecError(f"sudoku size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}", "/task/params/size")
        if box_rows is None and box_cols is None:
            shape = default_box_shape(size)
            if shape is None:
                raise CodecError(
                    f"sudoku size {size} has no box shape (it is prime); give box_rows and box_cols",
                    "/task/params/size",
                )
            box_rows, box_cols = shape
        elif box_rows is None:
            box_cols = _board_size_param(box_cols, "box_cols")
            box_rows = size // box_cols if box_cols > 0 else 0
        elif box_cols is None:
            box_rows = _board_size_param(box_rows, "box_rows")
            box_cols = size // box_rows if box_rows > 0 else 0
        box_rows = _board_size_param(box_rows, "box_rows")
        box_cols = _board_size_param(box_cols, "box_cols")
        if box_rows < 1 or box_cols < 1 or box_rows * box_cols != size:
            raise CodecError(
                f"sudoku boxes of {box_rows}x{box_cols} cells do not tile a {size}x{size} board; "
                f"size must equal box_rows * box_cols",
                "/task/params/box_rows",
            )
        self.size = size
        self.box_rows = box_rows
        self.box_cols = box_cols
        self.geometry = SudokuGeometry.of(size, box_rows, box_cols)
        self._input_validator = compile_schema(self.input_schema())
        self._output_validator = compile_schema(self.output_schema())
        self._what = f"sudoku {size}x{size}"

    # -- shape of the task -------------------------------------------------------------------

    @property
    def params(self) -> Json:
        """``{"size", "box_rows", "box_cols"}``, enough to rebuild this codec."""
        return {"size": self.size, "box_rows": self.box_rows, "box_cols": self.box_cols}

    @property
    def vocab_size(self) -> int:
        """pad, blank and the n digits."""
        return self.size + 2

    @property
    def seq_len(self) -> int:
        """One token per cell."""
        return self.size * self.size

    def _grid_schema(self, lowest: int, description: str) -> Json:
        n = self.size
        return {
            "type": "array",
            "description": description,
            "minItems": n,
            "maxItems": n,
            "items": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {"type": "integer", "minimum": lowest, "maximum": n},
            },
        }

    def input_schema(self) -> Json:
        """A ``size``×``size`` grid of integers 0..size (0 = blank)."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"Sudoku {self.size}x{self.size} puzzle ({self.box_rows}x{self.box_cols} boxes)",
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {"grid": self._grid_schema(0, "rows of the board; 0 marks a blank cell")},
        }

    def output_schema(self) -> Json:
        """A ``size``×``size`` grid of digits 1..size."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"Sudoku {self.size}x{self.size} solution ({self.box_rows}x{self.box_cols} boxes)",
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {"grid": self._grid_schema(1, "rows of the solved board")},
        }

    # -- validation and conversion -----------------------------------------------------------

    def validate_input(self, data_in: Json) -> np.ndarray:
        """The input board as an (n, n) int array; ``CodecError`` at the offending cell otherwise."""
        validate_document(self._input_validator, data_in, f"{self._what} input")
        return np.asarray(data_in["grid"], dtype=np.int64).reshape(self.size, self.size)

    def validate_output(self, data_out: Json) -> np.ndarray:
        """The answer board as an (n, n) int array; ``CodecError`` at the offending cell otherwise."""
        validate_document(self._output_validator, data_out, f"{self._what} output")
        return np.asarray(data_out["grid"], dtype=np.int64).reshape(self.size, self.size)

    def encode_input(self, data: Json) -> np.ndarray:
        """Tokens of a puzzle: blank → 1, digit d → d + 1."""
        return (self.validate_input(data) + DIGIT_OFFSET).reshape(-1)

    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Tokens of a solved board: digit d → d + 1."""
        return (self.validate_output(data) + DIGIT_OFFSET).reshape(-1)

    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json:
        """The board the model wrote; ``CodecError`` at the first cell that holds no digit token."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len:
            raise CodecError(f"{self._what} answer needs {self.seq_len} tokens, got {tokens.shape[0]}", "/grid")
        digits = tokens.astype(np.int64) - DIGIT_OFFSET
        bad = np.flatnonzero((digits < 1) | (digits > self.size))
        if bad.size:
            cell = int(bad[0])
            raise CodecError(
                f"model output token {int(tokens[cell])} is not a digit token "
                f"(expected {1 + DIGIT_OFFSET}..{self.size + DIGIT_OFFSET})",
                f"/grid/{cell // self.size}/{cell % self.size}",
            )
        return {"grid": digits.reshape(self.size, self.size).tolist()}

    def decode_input(self, tokens: np.ndarray) -> Json | None:
        """The puzzle of input tokens (blank → 0); None when a token is neither a blank nor a digit."""
        tokens = np.asarray(tokens).reshape(-1).astype(np.int64)
        if tokens.shape[0] != self.seq_len or ((tokens < BLANK_TOKEN) | (tokens > self.size + DIGIT_OFFSET)).any():
            return None
        return {"grid": (tokens - DIGIT_OFFSET).reshape(self.size, self.size).tolist()}

    def answer_token_table(self) -> np.ndarray:
        """A given keeps its digit, a blank takes any digit, a pad stays a pad."""
        table = np.zeros((self.vocab_size, self.vocab_size), dtype=bool)
        table[PAD_TOKEN, PAD_TOKEN] = True
        table[BLANK_TOKEN, 1 + DIGIT_OFFSET :] = True
        digits = np.arange(1 + DIGIT_OFFSET, self.vocab_size)
        table[digits, digits] = True
        return table

    # -- judging and solving -----------------------------------------------------------------

    def check(self, data_in: Json, data_out: Json) -> bool:
        """True when ``data_out`` fills every cell, obeys rows/columns/boxes and keeps every given.

        A malformed input raises ``CodecError``; a malformed answer is simply not valid (False).
        """
        puzzle = self.validate_input(data_in)
        try:
            board = self.validate_output(data_out)
        except CodecError:
            return False
        givens = puzzle != 0
        if not np.array_equal(board[givens], puzzle[givens]):
            return False
        n, br, bc = self.size, self.box_rows, self.box_cols
        boxes = board.reshape(n // br, br, n // bc, bc).transpose(0, 2, 1, 3).reshape(n, n)
        digits = np.arange(1, n + 1)
        return all(
            np.array_equal(np.sort(units, axis=1), np.broadcast_to(digits, (n, n))) for units in (board, board.T, boxes)
        )

    def count_solutions(self, grid: list[list[int]], limit: int = 2) -> int:
        """Number of solutions of ``grid`` (0 = blank), counting stops at ``limit``."""
        puzzle = self.validate_input({"grid": grid})
        return count_completions(self.geometry, puzzle.reshape(-1).tolist(), limit=limit)

    def reference_solution(self, data_in: Json) -> Json | None:
        """A solution by exact search, or None when the puzzle has none."""
        puzzle = self.validate_input(data_in)
        solution = solve_board(self.geometry, puzzle.reshape(-1).tolist())
        if solution is None:
            return None
        return {"grid": np.asarray(solution).reshape(self.size, self.size).tolist()}

    # -- data ----------------------------------------------------------------------------------

    def pair_from_text(self, question: str, answer: str) -> tuple[Json, Json]:
        """A pair from the authors' Sudoku-Extreme CSV row: ``q`` and ``a`` of n² characters in row-major
        order, ``.`` or ``0`` for a blank, ``1``..``n`` for a digit (boards up to 9×9)."""
        n = self.size
        if n > 9:
            raise CodecError(
                f"{self._what} boards have two-digit values; the one-character-per-cell text "
                "layout holds boards up to 9x9 (give JSONL)",
                "",
            )

        def board(text: str, what: str, blanks: bool) -> list[list[int]]:
            text = text.strip()
            if len(text) != n * n:
                raise CodecError(f"{what} has {len(text)} characters; a {n}x{n} board needs {n * n}", "")
            allowed = "123456789"[:n] + (".0" if blanks else "")
            for index, char in enumerate(text):
                if char not in allowed:
                    raise CodecError(
                        f"{what} character {index + 1} (row {index // n + 1}, column {index % n + 1}) "
                        f"is {char!r}; expected one of {allowed!r}",
                        "",
                    )
            values = [0 if char in ".0" else int(char) for char in text]
            return [values[row * n : (row + 1) * n] for row in range(n)]

        return {"grid": board(question, "the puzzle (q)", True)}, {"grid": board(answer, "the answer (a)", False)}

    def _symmetry_sources(self) -> np.ndarray:
        """Cell gathers of the board symmetries ``canonical_key`` compares: band and stack orders, and the
        rotations/reflections that keep the box shape (all eight when boxes are square)."""
        cached = getattr(self, "_symmetries", None)
        if cached is not None:
            return cached
        import itertools

        n, br, bc = self.size, self.box_rows, self.box_cols
        base = np.arange(n * n).reshape(n, n)
        band_orders = list(itertools.permutations(range(n // br)))
        stack_orders = list(itertools.permutations(range(n // bc)))
        if len(band_orders) * len(stack_orders) > 64:  # 16x16 and larger: symmetries of the board only
            band_orders, stack_orders = band_orders[:1], stack_orders[:1]
        views = []
        for bands in band_orders:
            rows = np.concatenate([np.arange(b * br, (b + 1) * br) for b in bands])
            for stacks in stack_orders:
                cols = np.concatenate([np.arange(s * bc, (s + 1) * bc) for s in stacks])
                grid = base[rows][:, cols]
                shapes = [grid, grid[::-1], grid[:, ::-1], grid[::-1, ::-1]]
                if br == bc:
                    shapes += [shape.T for shape in shapes]
                views += [shape.reshape(-1) for shape in shapes]
        self._symmetries = np.unique(np.stack(views), axis=0)
        return self._symmetries

    def canonical_key(self, input_tokens: np.ndarray) -> bytes:
        """The least, over the board symmetries of ``_symmetry_sources``, of the board with its digits
        renamed in order of first appearance: equal for puzzles that differ by a digit relabelling, a
        band or stack order, a rotation or a reflection (row shuffles within a band are not tried)."""
        n = self.size
        boards = np.asarray(input_tokens, dtype=np.int64).reshape(-1)[self._symmetry_sources()]
        digits = np.arange(DIGIT_OFFSET + 1, n + DIGIT_OFFSET + 1)
        present = boards[:, :, None] == digits
        first = np.where(present.any(axis=1), present.argmax(axis=1), n * n)
        order = np.argsort(first, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), order.shape).copy(), axis=1)
        lookup = np.concatenate(
            [np.broadcast_to([PAD_TOKEN, BLANK_TOKEN], (len(boards), 2)), rank + DIGIT_OFFSET + 1], axis=1
        )
        relabelled = np.take_along_axis(lookup, boards, axis=1)
        least = np.lexsort(relabelled.T[::-1])[0]
        return np.ascontiguousarray(relabelled[least]).tobytes()

    def default_givens_range(self) -> tuple[int, int]:
        """(min_givens, max_givens) used by ``generate`` when not given."""
        cells = self.size * self.size
        return DEFAULT_GIVENS_RANGE.get(self.size, (math.ceil(0.3 * cells), math.ceil(0.65 * cells)))

    def generate(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        min_givens: int | None = None,
        max_givens: int | None = None,
        unique_share: float = 1.0,
    ) -> list[tuple[Json, Json]]:
        """``n`` puzzles and a solution of each.

        Each puzzle draws its number of givens uniformly from ``[min_givens, max_givens]``; cells of
        a random full board are blanked in random order while the solution stays unique, stopping
        at that number (or at the minimal puzzle reached, which can have more givens). A share
        ``1 - unique_share`` of the puzzles is instead blanked at random cells without that check,
        so it may have several solutions (the board it came from is the one given): puzzles found
        in the wild are not always unique, and any valid completion is a right answer.
        """
        default_low, default_high = self.default_givens_range()
        low = default_low if min_givens is None else min_givens
        high = default_high if max_givens is None else max_givens
        cells = self.size * self.size
        if not 0 <= low <= high <= cells:
            raise CodecError(
                f"sudoku givens range must satisfy 0 <= min_givens <= max_givens <= {cells}, got [{low}, {high}]",
                "/difficulty/min_givens",
            )
        search_rng = random.Random(int(rng.integers(2**63)))
        targets = rng.integers(low, high + 1, size=n)
        pairs = []
        if not 0.0 <= unique_share <= 1.0:
            raise CodecError(f"unique_share must lie in [0, 1], got {unique_share!r}", "/difficulty/unique_share")
        for target in targets:
            solution = random_full_grid(self.geometry, search_rng)
            if search_rng.random() < unique_share:
                puzzle = carve_unique_puzzle(self.geometry, solution, int(target), search_rng)
            else:
                puzzle = list(solution)
                for cell in search_rng.sample(range(cells), cells - int(target)):
                    puzzle[cell] = 0
            pairs.append(
                (
                    {"grid": np.asarray(puzzle).reshape(self.size, self.size).tolist()},
                    {"grid": np.asarray(solution).reshape(self.size, self.size).tolist()},
                )
            )
        return pairs

    def transforms(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Random validity-preserving transforms: digit relabelling, band and stack shuffles,
        row-within-band and column-within-stack shuffles, and a transpose (only when boxes are
        square, else it would change the box shape). Pad and blank tokens keep their ids."""
        n, br, bc = self.size, self.box_rows, self.box_cols
        bands, stacks = n // br, n // bc

        digit_perm = np.argsort(rng.random((count, n)), axis=1) + DIGIT_OFFSET + 1
        lookups = np.concatenate([np.broadcast_to([PAD_TOKEN, BLANK_TOKEN], (count, 2)), digit_perm], axis=1)

        def line_order(groups: int, per_group: int) -> np.ndarray:
            group_order = np.argsort(rng.random((count, groups)), axis=1)
            within = np.argsort(rng.random((count, groups, per_group)), axis=2)
            return (group_order[:, :, None] * per_group + within).reshape(count, n)

        row_order = line_order(bands, br)
        col_order = line_order(stacks, bc)
        sources = row_order[:, :, None] * n + col_order[:, None, :]  # new (r, c) ← old cell
        if br == bc:
            flip = rng.random(count) < 0.5
            sources = np.where(flip[:, None, None], sources.transpose(0, 2, 1), sources)
        return sources.reshape(count, n * n), lookups


@hookimpl
def trm_register_codecs() -> list[type]:
    """The Sudoku codec."""
    return [SudokuCodec]


@hookimpl
def trm_board_view(codec: TaskCodec) -> Any:
    """A fill-in grid: blanks are typed digits, each row, column and box holds each digit once."""
    if not isinstance(codec, SudokuCodec):
        return None
    from trm_modules.boards import AllDifferent, BoardView, grid_groups

    n = codec.size
    return BoardView(
        rows=n,
        cols=n,
        box_rows=codec.box_rows,
        box_cols=codec.box_cols,
        blank_token=1,
        choices=list(range(2, n + 2)),
        labels={str(d + 1): str(d) for d in range(1, n + 1)},
        instructions="Fill in every empty cell: each row, column and box holds each digit once.",
        rules=[AllDifferent(groups=grid_groups(n, n, codec.box_rows, codec.box_cols))],
    )
