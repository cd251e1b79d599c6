"""The generic grid codec (``"grid"``): a fill-in grid puzzle configured in the recipe, no Python.

    [task]
    codec = "grid"
    params = { shape = [5, 5], symbols = "12345", blank = ".", rules = ["rows", "columns"] }

Wire format: input ``{"grid": ["1..4.", ...]}``, one string of ``cols`` characters per row, each a symbol or
the blank; output the same rows with no blank. Tokens: 0 pad, 1 blank, the i-th symbol i + 2 (vocab
len(symbols) + 2, sequence rows × cols in row-major order). The JSON Schemas of both are generated from the
parameters.

``largest_shape = [R, C]`` instead of ``shape`` takes grids of any shape up to it: 1..R rows, all of one
length 1..C. As the maze codec pads a smaller maze, a smaller grid sits in the top-left corner of the R×C
token grid and the cells outside it hold the pad token, which the answer keeps (``answer_token_table``);
an answer is decoded to its input's shape.

``rules`` (optional) say what a right answer is, besides keeping every given and filling every blank:
``"rows"``, ``"columns"``, ``"boxes"`` — each row, column, or ``box`` = [box_rows, box_cols] block holds
each symbol exactly once (so with a fixed ``shape`` a group must have as many cells as there are symbols). A
5×5 Latin square is ``rules = ["rows", "columns"]``; a 6×6 Sudoku adds ``"boxes"`` with ``box = [2, 3]``. With
a ``largest_shape`` a group may have fewer cells than there are symbols (a short row, a box cut by the grid's
edge) and then holds no symbol twice; a full group still holds each once. From the rules come:

- the rule check (``check``): None (unknowable) for a grid without rules, whose answers only data can give;
- the answer-preserving transforms (``transforms``): any relabelling of the symbols (the rules treat them
  alike), row and column shuffles that keep every group a group (within bands and stacks of boxes, whole
  bands and stacks), and the transpose when rows and columns play the same part (with a ``largest_shape``
  only the relabelling and the transpose, which keep a smaller grid in the top-left corner);
- the generator (``generate``): full grids built from the rules and shuffled by the transforms, blanked at
  random while the solution stays unique (``blank_fraction`` [low, high] of the cells, ``unique``); with a
  ``largest_shape``, the top-left corner of such a grid, of ``rows`` [low, high] rows and ``cols``
  [low, high] columns (default: half the largest shape up to all of it), ``square`` for rows = cols;
- the browser board (``trm_board_view``): typed symbols, each rule's groups checked by the page.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_modules import hookimpl
from trm_modules.codec import Json, TaskCodec
from trm_modules.errors import CodecError

from .schema_validation import compile_schema, validate_document

PAD_TOKEN = 0
BLANK_TOKEN = 1
SYMBOL_OFFSET = 2  # the i-th symbol is token i + 2
MAX_SIDE = 30
MAX_SYMBOLS = 62
RULES = ("rows", "columns", "boxes")
#: Completions a uniqueness check explores at most before a blank is kept given (bounds generation time).
SEARCH_NODES = 20000


def _param_error(message: str, name: str) -> CodecError:
    return CodecError(f"grid codec: {message}", f"/task/params/{name}")


def _class_escape(chars: str) -> str:
    """``chars`` escaped for a regular-expression character class."""
    return "".join("\\" + ch if ch in "\\]^-[" else ch for ch in chars)


class GridCodec(TaskCodec):
    """A ``shape`` = [rows, cols] grid (or any grid up to ``largest_shape``) of ``symbols`` with ``blank`` for a
    cell to fill, and optional rules."""

    name = "grid"

    def __init__(
        self,
        shape: list[int] | None = None,
        symbols: str | list[str] = "",
        blank: str = ".",
        rules: list[str] | None = None,
        box: list[int] | None = None,
        largest_shape: list[int] | None = None,
    ) -> None:
        if (shape is None) == (largest_shape is None):
            raise _param_error(
                "give either shape = [rows, cols] (one shape) or largest_shape = [rows, cols] (any shape up to "
                f"it), not {'both' if shape is not None else 'neither'}",
                "shape",
            )
        key = "shape" if shape is not None else "largest_shape"
        shape = shape if shape is not None else largest_shape
        if (
            not isinstance(shape, (list, tuple))
            or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in shape)
        ):
            raise _param_error(f"{key} must be [rows, cols] of integers 1..{MAX_SIDE}, got {shape!r}", key)
        #: Grids of any shape up to (rows, cols), padded, rather than exactly rows × cols.
        self.variable = largest_shape is not None
        chars = list(symbols) if isinstance(symbols, str) else symbols
        if (
            not isinstance(chars, list)
            or not all(isinstance(s, str) and len(s) == 1 for s in chars)
            or not 1 <= len(chars) <= MAX_SYMBOLS
        ):
            raise _param_error(
                f'symbols must be 1..{MAX_SYMBOLS} single characters (a string like "12345"), got {symbols!r}',
                "symbols",
            )
        if len(set(chars)) != len(chars):
            raise _param_error(f"symbols must differ from one another, got {symbols!r}", "symbols")
        if not isinstance(blank, str) or len(blank) != 1 or blank in chars:
            raise _param_error(f"blank must be one character that is not a symbol, got {blank!r}", "blank")
        rules = list(rules or [])
        unknown = [r for r in rules if r not in RULES]
        if unknown or len(set(rules)) != len(rules):
            raise _param_error(f"rules are some of {list(RULES)}, each once; got {rules!r}", "rules")
        self.rows, self.cols = int(shape[0]), int(shape[1])
        self.symbols = "".join(chars)
        self.blank = blank
        self.rules = [r for r in RULES if r in rules]
        self.box: tuple[int, int] | None = None
        n = len(chars)
        if "boxes" in self.rules:
            if (
                not isinstance(box, (list, tuple))
                or len(box) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in box)
            ):
                raise _param_error(f"the 'boxes' rule needs box = [box_rows, box_cols], got {box!r}", "box")
            if self.rows % box[0] or self.cols % box[1] or box[0] * box[1] != n:
                raise _param_error(
                    f"boxes of {box[0]}x{box[1]} must tile the {'largest ' if self.variable else ''}"
                    f"{self.rows}x{self.cols} grid and "
                    f"hold the {n} symbols once each",
                    "box",
                )
            self.box = (int(box[0]), int(box[1]))
        elif box is not None:
            raise _param_error("box is only used with the 'boxes' rule", "box")
        if self.variable:
            if "rows" in self.rules and self.cols > n:
                raise _param_error(
                    f"the 'rows' rule needs rows of at most {n} cells (no symbol twice), the largest shape has "
                    f"{self.cols}",
                    "rules",
                )
            if "columns" in self.rules and self.rows > n:
                raise _param_error(
                    f"the 'columns' rule needs columns of at most {n} cells (no symbol twice), the largest shape "
                    f"has {self.rows}",
                    "rules",
                )
        else:
            if "rows" in self.rules and self.cols != n:
                raise _param_error(
                    f"the 'rows' rule needs rows of {n} cells (one per symbol), the shape has {self.cols}", "rules"
                )
            if "columns" in self.rules and self.rows != n:
                raise _param_error(
                    f"the 'columns' rule needs columns of {n} cells (one per symbol), the shape has {self.rows}",
                    "rules",
                )
        self._input_validator = compile_schema(self.input_schema())
        self._output_validator = compile_schema(self.output_schema())
        self._what = f"grid {'up to ' if self.variable else ''}{self.rows}x{self.cols}"

    # -- the contract ---------------------------------------------------------------------------

    @property
    def params(self) -> Json:
        """``{"shape" or "largest_shape", "symbols", "blank", "rules"}`` (and ``"box"`` with the boxes rule)."""
        params: Json = {
            "largest_shape" if self.variable else "shape": [self.rows, self.cols],
            "symbols": self.symbols,
            "blank": self.blank,
            "rules": list(self.rules),
        }
        if self.box:
            params["box"] = list(self.box)
        return params

    @property
    def vocab_size(self) -> int:
        """pad, blank, then one token per symbol."""
        return len(self.symbols) + SYMBOL_OFFSET

    @property
    def seq_len(self) -> int:
        """One token per cell."""
        return self.rows * self.cols

    def _schema(self, chars: str, title: str, what: str) -> Json:
        if self.variable:
            shape = f"1 to {self.rows} rows, all of one length of 1 to {self.cols} characters"
            row_pattern = f"^[{_class_escape(chars)}]{{1,{self.cols}}}$"
        else:
            shape = f"{self.rows} rows of {self.cols} characters"
            row_pattern = f"^[{_class_escape(chars)}]{{{self.cols}}}$"
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {
                "grid": {
                    "type": "array",
                    "minItems": 1 if self.variable else self.rows,
                    "maxItems": self.rows,
                    "description": f"{shape}: {what}",
                    "items": {"type": "string", "pattern": row_pattern},
                }
            },
        }

    def input_schema(self) -> Json:
        """``rows`` strings of ``cols`` symbols or blanks (with a largest shape: up to that many)."""
        return self._schema(
            self.symbols + self.blank,
            f"Grid puzzle {'up to ' if self.variable else ''}{self.rows}x{self.cols}",
            f"one of {self.symbols!r} for a given, {self.blank!r} for a cell to fill",
        )

    def output_schema(self) -> Json:
        """``rows`` strings of ``cols`` symbols (with a largest shape: up to that many)."""
        return self._schema(
            self.symbols,
            f"Grid puzzle {'up to ' if self.variable else ''}{self.rows}x{self.cols} filled",
            f"one of {self.symbols!r}",
        )

    @staticmethod
    def shape_of(data: Json) -> tuple[int, int]:
        """(rows, cells per row) of a grid document."""
        return len(data["grid"]), len(data["grid"][0])

    def _tokens(self, data: Json, validator: Any, what: str) -> np.ndarray:
        """The rows × cols tokens of a grid document; a smaller one (largest shape) top-left, pad around it."""
        validate_document(validator, data, f"{self._what} {what}")
        rows = data["grid"]
        width = len(rows[0])
        for index, row in enumerate(rows):
            if len(row) != width:
                raise CodecError(
                    f"{self._what} {what} rows must all have one length: row {index} has {len(row)} cells, "
                    f"row 0 has {width}",
                    f"/grid/{index}",
                )
        lookup = {self.blank: BLANK_TOKEN, **{s: i + SYMBOL_OFFSET for i, s in enumerate(self.symbols)}}
        canvas = np.full((self.rows, self.cols), PAD_TOKEN, dtype=np.int64)
        canvas[: len(rows), :width] = np.array([[lookup[ch] for ch in row] for row in rows], dtype=np.int64)
        return canvas.reshape(-1)

    def _extent(self, tokens: np.ndarray) -> tuple[int, int] | None:
        """(rows, cols) of the grid in ``tokens``: the top-left rectangle of non-pad cells, with only pad outside
        it; None when the tokens hold no such grid."""
        if not self.variable:
            return self.rows, self.cols
        grid = np.asarray(tokens).reshape(self.rows, self.cols)
        rows = int(np.argmin(np.append(grid[:, 0] != PAD_TOKEN, False)))
        cols = int(np.argmin(np.append(grid[0, :] != PAD_TOKEN, False)))
        if rows == 0 or cols == 0:
            return None
        inside = np.zeros(grid.shape, dtype=bool)
        inside[:rows, :cols] = True
        if (grid[inside] == PAD_TOKEN).any() or (grid[~inside] != PAD_TOKEN).any():
            return None
        return rows, cols

    def encode_input(self, data: Json) -> np.ndarray:
        """Tokens of a puzzle: blank → 1, symbol i → i + 2."""
        return self._tokens(data, self._input_validator, "input")

    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Tokens of a filled grid: symbol i → i + 2."""
        return self._tokens(data, self._output_validator, "output")

    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json:
        """The grid the model wrote (with a largest shape: cut to the input's shape, the whole largest grid when
        ``data_in`` has none); ``CodecError`` at the first row holding a token that is no symbol."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len:
            raise CodecError(f"{self._what} answer needs {self.seq_len} tokens, got {tokens.shape[0]}", "/grid")
        rows, cols = self.shape_of(data_in) if self.variable and data_in.get("grid") else (self.rows, self.cols)
        grid = tokens.reshape(self.rows, self.cols)[:rows, :cols]
        bad = np.argwhere((grid < SYMBOL_OFFSET) | (grid >= self.vocab_size))
        if bad.size:
            row, col = (int(v) for v in bad[0])
            raise CodecError(
                f"model output token {int(grid[row, col])} is not a symbol token (expected "
                f"{SYMBOL_OFFSET}..{self.vocab_size - 1})",
                f"/grid/{row}",
            )
        chars = np.array(list(self.symbols))[grid.astype(np.intp) - SYMBOL_OFFSET]
        return {"grid": ["".join(row) for row in chars]}

    def decode_input(self, tokens: np.ndarray) -> Json | None:
        """The puzzle of input tokens (blank → the blank character); None when a token is no blank or symbol
        (or, with a largest shape, the non-pad cells are no top-left rectangle)."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len or (tokens >= self.vocab_size).any():
            return None
        extent = self._extent(tokens)
        if extent is None or (tokens.reshape(self.rows, self.cols)[: extent[0], : extent[1]] < BLANK_TOKEN).any():
            return None
        return self._document(tokens)

    def answer_token_table(self) -> np.ndarray:
        """A given keeps its symbol, a blank takes any symbol, a pad stays a pad."""
        table = np.zeros((self.vocab_size, self.vocab_size), dtype=bool)
        table[PAD_TOKEN, PAD_TOKEN] = True
        table[BLANK_TOKEN, SYMBOL_OFFSET:] = True
        symbols = np.arange(SYMBOL_OFFSET, self.vocab_size)
        table[symbols, symbols] = True
        return table

    # -- the rules --------------------------------------------------------------------------------

    def groups(self, shape: tuple[int, int] | None = None) -> list[list[int]]:
        """Cell indices (in the token sequence) of every group the rules say holds no symbol twice (rows,
        columns, boxes) of a grid of ``shape`` (default: the whole, or largest, shape); a box cut by a smaller
        grid's edge keeps the cells inside it."""
        rows, cols = shape or (self.rows, self.cols)
        stride = self.cols
        found: list[list[int]] = []
        if "rows" in self.rules:
            found += [[r * stride + c for c in range(cols)] for r in range(rows)]
        if "columns" in self.rules:
            found += [[r * stride + c for r in range(rows)] for c in range(cols)]
        if self.box:
            br, bc = self.box
            found += [
                [
                    (top + r) * stride + left + c
                    for r in range(br)
                    for c in range(bc)
                    if top + r < rows and left + c < cols
                ]
                for top in range(0, rows, br)
                for left in range(0, cols, bc)
            ]
        return found

    def check(self, data_in: Json, data_out: Json) -> bool | None:
        """True when ``data_out`` has the input's shape, keeps every given and no rule's group holds a symbol
        twice (a full group: each symbol once); None for a grid without rules. A malformed input raises
        ``CodecError``; a malformed answer is False."""
        puzzle = self.encode_input(data_in)
        if not self.rules:
            return None
        try:
            answer = self.encode_output(data_out)
        except CodecError:
            return False
        if self.shape_of(data_out) != self.shape_of(data_in):
            return False
        givens = puzzle != BLANK_TOKEN
        if not np.array_equal(answer[givens], puzzle[givens]):
            return False
        return all(len(set(answer[group].tolist())) == len(group) for group in self.groups(self.shape_of(data_in)))

    def reference_solution(self, data_in: Json) -> Json | None:
        """A solution by exact search when the grid has rules (None when it has none, or no solution)."""
        if not self.rules:
            return None
        solutions = self._solve(self.encode_input(data_in), limit=1)
        return self.decode_output(solutions[0], data_in) if solutions else None

    def _solve(self, tokens: np.ndarray, limit: int, budget: int = SEARCH_NODES) -> list[np.ndarray]:
        """Up to ``limit`` completions of ``tokens`` under the rules (depth-first, fewest candidates first);
        raises ``TimeoutError`` past ``budget`` search nodes."""
        cells = tokens.copy()
        groups_of: list[list[int]] = [[] for _ in range(self.seq_len)]
        groups = self.groups(self._extent(cells))
        for g, group in enumerate(groups):
            for cell in group:
                groups_of[cell].append(g)
        full = set(range(SYMBOL_OFFSET, self.vocab_size))
        used = [set(int(cells[c]) for c in group if cells[c] != BLANK_TOKEN) for group in groups]
        found: list[np.ndarray] = []
        nodes = 0

        def search() -> None:
            nonlocal nodes
            nodes += 1
            if nodes > budget:
                raise TimeoutError
            blanks = np.flatnonzero(cells == BLANK_TOKEN)
            if blanks.size == 0:
                found.append(cells.copy())
                return
            best, options = -1, None
            for cell in blanks.tolist():
                allowed = full.difference(*(used[g] for g in groups_of[cell]))
                if options is None or len(allowed) < len(options):
                    best, options = cell, allowed
                    if len(allowed) <= 1:
                        break
            for token in sorted(options or ()):
                cells[best] = token
                for g in groups_of[best]:
                    used[g].add(token)
                search()
                for g in groups_of[best]:
                    used[g].discard(token)
                cells[best] = BLANK_TOKEN
                if len(found) >= limit:
                    return

        search()
        return found

    # -- transforms and data ------------------------------------------------------------------------

    def transforms(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Random answer-preserving transforms under the rules (see the module doc); None without rules."""
        return self._transforms(rng, count, shuffle_lines=not self.variable)

    def _transforms(
        self, rng: np.random.Generator, count: int, shuffle_lines: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Relabellings, row and column shuffles (``shuffle_lines``: of a grid filling the whole shape) and
        transposes under the rules; None without rules."""
        if not self.rules:
            return None
        n = len(self.symbols)
        lookups = np.tile(np.arange(self.vocab_size), (count, 1))
        lookups[:, SYMBOL_OFFSET:] = SYMBOL_OFFSET + np.argsort(rng.random((count, n)), axis=1)
        band, stack = self.box if self.box else (1, 1)

        def line_order(lines: int, per_group: int) -> np.ndarray:
            if not shuffle_lines:
                return np.tile(np.arange(lines), (count, 1))
            groups = lines // per_group
            group_order = np.argsort(rng.random((count, groups)), axis=1)
            within = np.argsort(rng.random((count, groups, per_group)), axis=2)
            return (group_order[:, :, None] * per_group + within).reshape(count, lines)

        row_order = line_order(self.rows, band)
        col_order = line_order(self.cols, stack)
        sources = row_order[:, :, None] * self.cols + col_order[:, None, :]
        symmetric = ("rows" in self.rules) == ("columns" in self.rules)
        if self.rows == self.cols and symmetric and band == stack:
            flip = rng.random(count) < 0.5
            sources = np.where(flip[:, None, None], sources.transpose(0, 2, 1), sources)
        return sources.reshape(count, self.seq_len), lookups

    def _full_grid(self, rng: np.random.Generator) -> np.ndarray:
        """One grid of the whole (largest) shape that follows the rules, as tokens."""
        n = len(self.symbols)
        r = np.arange(self.rows)[:, None]
        c = np.arange(self.cols)[None, :]
        if self.box:
            br, bc = self.box
            values = (bc * (r % br) + r // br + c) % n
        elif "rows" in self.rules and "columns" in self.rules:
            values = (r + c) % n
        elif "rows" in self.rules:
            values = np.argsort(rng.random((self.rows, n)), axis=1)[:, : self.cols]
        else:
            values = np.argsort(rng.random((self.cols, n)), axis=1).T[: self.rows]
        tokens = (values + SYMBOL_OFFSET).reshape(1, -1)
        sources, lookups = self._transforms(rng, 1, shuffle_lines=True) or (
            np.arange(self.seq_len)[None],
            np.arange(self.vocab_size)[None],
        )
        return lookups[0][tokens[0][sources[0]]]

    def generate(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        blank_fraction: Any = (0.3, 0.6),
        unique: bool = True,
        rows: Any = None,
        cols: Any = None,
        square: bool = False,
    ) -> list[tuple[Json, Json]]:
        """``n`` puzzles with a solution each: a full grid that follows the rules, blanked at random cells up to
        a fraction drawn from ``blank_fraction`` (a number or [low, high]); with ``unique`` a cell is blanked
        only while the solution stays the only one (so some puzzles keep more givens). A grid without rules
        has nothing to generate from: train it from data files.

        With a ``largest_shape``, each puzzle is the top-left corner of such a grid, its number of rows drawn
        from ``rows`` [low, high] (default: half the largest up to all of it) and of columns from ``cols``
        (alike), or equal to its rows with ``square``."""
        if not self.rules:
            raise CodecError(
                "a grid without rules cannot generate puzzles (nothing says what a right answer is): "
                "give the training data as files, or add rules",
                "/task/params/rules",
            )
        low, high = (blank_fraction, blank_fraction) if isinstance(blank_fraction, (int, float)) else blank_fraction
        if not 0.0 <= low <= high <= 1.0:
            raise CodecError(
                f"blank_fraction must be a fraction or a range [low, high] within [0, 1], got {blank_fraction!r}",
                "/difficulty/blank_fraction",
            )
        row_range = self._side_range(rows, self.rows, "rows")
        col_range = self._side_range(cols, self.cols, "cols")
        if square and self.variable and self.rows != self.cols:
            raise CodecError(
                f"square puzzles need a square largest shape, this one is {self.rows}x{self.cols}",
                "/difficulty/square",
            )
        pairs = []
        for _ in range(n):
            solution = self._full_grid(rng)
            height, width = self.rows, self.cols
            if self.variable:
                height = int(rng.integers(row_range[0], row_range[1] + 1))
                width = height if square else int(rng.integers(col_range[0], col_range[1] + 1))
                grid = solution.reshape(self.rows, self.cols).copy()
                grid[height:, :] = PAD_TOKEN
                grid[:, width:] = PAD_TOKEN
                solution = grid.reshape(-1)
            inside = np.flatnonzero(solution != PAD_TOKEN)
            puzzle = solution.copy()
            target = int(round(rng.uniform(low, high) * inside.size))
            blanked = 0
            for cell in rng.permutation(inside).tolist():
                if blanked >= target:
                    break
                puzzle[cell] = BLANK_TOKEN
                if unique:
                    try:
                        still_unique = len(self._solve(puzzle, limit=2)) == 1
                    except TimeoutError:
                        still_unique = False
                    if not still_unique:
                        puzzle[cell] = solution[cell]
                        continue
                blanked += 1
            pairs.append((self._document(puzzle), self._document(solution)))
        return pairs

    def _side_range(self, value: Any, largest: int, name: str) -> tuple[int, int]:
        """[low, high] sides of generated grids (a number or a range within 1..largest)."""
        if value is None:
            return (max(1, (largest + 1) // 2), largest)
        low, high = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
        if not self.variable and (low, high) != (largest, largest):
            raise CodecError(
                f"{name} can be drawn only for a grid with a largest_shape; this one is always {largest}",
                f"/difficulty/{name}",
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or not (
            1 <= low <= high <= largest
        ):
            raise CodecError(
                f"{name} must be a number or a range [low, high] within [1, {largest}], got {value!r}",
                f"/difficulty/{name}",
            )
        return int(low), int(high)

    def _document(self, tokens: np.ndarray) -> Json:
        """The grid document of (whole-shape) tokens: the grid they hold, pad cut off."""
        rows, cols = self._extent(tokens) or (self.rows, self.cols)
        grid = np.asarray(tokens).reshape(self.rows, self.cols)[:rows, :cols]
        chars = np.array([self.blank, self.blank, *self.symbols])[grid.astype(np.intp)]
        return {"grid": ["".join(row) for row in chars]}


@hookimpl
def trm_register_codecs() -> list[type]:
    """The generic grid codec."""
    return [GridCodec]


@hookimpl
def trm_board_view(codec: TaskCodec) -> Any:
    """A fill-in grid: the learner types symbols into the blanks; each rule's groups are checked by the page."""
    if not isinstance(codec, GridCodec):
        return None
    from trm_modules.boards import AllDifferent, BoardView

    rules = {"rows": "row", "columns": "column", "boxes": "box"}
    named = [rules[r] for r in codec.rules]
    groups = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else (named[0] if named else "")
    if not named:
        holds = ""
    elif codec.variable:
        holds = f"no {groups} holds a symbol twice (symbols: {' '.join(codec.symbols)})."
    else:
        holds = f"each {groups} holds each of {' '.join(codec.symbols)} once."
    box_rows, box_cols = codec.box or (None, None)
    return BoardView(
        rows=codec.rows,
        cols=codec.cols,
        box_rows=box_rows,
        box_cols=box_cols,
        blank_token=BLANK_TOKEN,
        choices=list(range(SYMBOL_OFFSET, codec.vocab_size)),
        labels={str(i + SYMBOL_OFFSET): s for i, s in enumerate(codec.symbols)},
        # a smaller grid's padding: shown as an empty cell outside the puzzle, never compared by the rules
        classes={str(PAD_TOKEN): "outside"} if codec.variable else {},
        instructions=f"Fill in every empty cell{': ' + holds if holds else '.'}",
        rules=[AllDifferent(groups=codec.groups(), ignore=[PAD_TOKEN] if codec.variable else [])]
        if codec.rules
        else [],
    )
