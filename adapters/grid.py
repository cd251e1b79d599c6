"""The generic grid codec (``"grid"``): a fixed-shape fill-in grid puzzle configured in the recipe, no Python.

    [task]
    codec = "grid"
    params = { shape = [5, 5], symbols = "12345", blank = ".", rules = ["rows", "columns"] }

Wire format: input ``{"grid": ["1..4.", ...]}``, one string of ``cols`` characters per row, each a symbol or
the blank; output the same rows with no blank. Tokens: 0 pad, 1 blank, the i-th symbol i + 2 (vocab
len(symbols) + 2, sequence rows × cols in row-major order). The JSON Schemas of both are generated from the
parameters.

``rules`` (optional) say what a right answer is, besides keeping every given and filling every blank:
``"rows"``, ``"columns"``, ``"boxes"`` — each row, column, or ``box`` = [box_rows, box_cols] block holds
each symbol exactly once (so a group must have as many cells as there are symbols). A 5×5 Latin square is
``rules = ["rows", "columns"]``; a 6×6 Sudoku adds ``"boxes"`` with ``box = [2, 3]``. From the rules come:

- the rule check (``check``): None (unknowable) for a grid without rules, whose answers only data can give;
- the answer-preserving transforms (``transforms``): any relabelling of the symbols (the rules treat them
  alike), row and column shuffles that keep every group a group (within bands and stacks of boxes, whole
  bands and stacks), and the transpose when rows and columns play the same part;
- the generator (``generate``): full grids built from the rules and shuffled by the transforms, blanked at
  random while the solution stays unique (``blank_fraction`` [low, high] of the cells, ``unique``);
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
    """A ``shape`` = [rows, cols] grid of ``symbols`` with ``blank`` for a cell to fill, and optional rules."""

    name = "grid"

    def __init__(
        self,
        shape: list[int],
        symbols: str | list[str],
        blank: str = ".",
        rules: list[str] | None = None,
        box: list[int] | None = None,
    ) -> None:
        if (
            not isinstance(shape, (list, tuple))
            or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in shape)
        ):
            raise _param_error(f"shape must be [rows, cols] of integers 1..{MAX_SIDE}, got {shape!r}", "shape")
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
                    f"boxes of {box[0]}x{box[1]} must tile the {self.rows}x{self.cols} grid and "
                    f"hold the {n} symbols once each",
                    "box",
                )
            self.box = (int(box[0]), int(box[1]))
        elif box is not None:
            raise _param_error("box is only used with the 'boxes' rule", "box")
        if "rows" in self.rules and self.cols != n:
            raise _param_error(
                f"the 'rows' rule needs rows of {n} cells (one per symbol), the shape has {self.cols}", "rules"
            )
        if "columns" in self.rules and self.rows != n:
            raise _param_error(
                f"the 'columns' rule needs columns of {n} cells (one per symbol), the shape has {self.rows}", "rules"
            )
        self._input_validator = compile_schema(self.input_schema())
        self._output_validator = compile_schema(self.output_schema())
        self._what = f"grid {self.rows}x{self.cols}"

    # -- the contract ---------------------------------------------------------------------------

    @property
    def params(self) -> Json:
        """``{"shape", "symbols", "blank", "rules"}`` (and ``"box"`` with the boxes rule)."""
        params: Json = {
            "shape": [self.rows, self.cols],
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
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {
                "grid": {
                    "type": "array",
                    "minItems": self.rows,
                    "maxItems": self.rows,
                    "description": f"{self.rows} rows of {self.cols} characters: {what}",
                    "items": {"type": "string", "pattern": f"^[{_class_escape(chars)}]{{{self.cols}}}$"},
                }
            },
        }

    def input_schema(self) -> Json:
        """``rows`` strings of ``cols`` symbols or blanks."""
        return self._schema(
            self.symbols + self.blank,
            f"Grid puzzle {self.rows}x{self.cols}",
            f"one of {self.symbols!r} for a given, {self.blank!r} for a cell to fill",
        )

    def output_schema(self) -> Json:
        """``rows`` strings of ``cols`` symbols."""
        return self._schema(self.symbols, f"Grid puzzle {self.rows}x{self.cols} filled", f"one of {self.symbols!r}")

    def _tokens(self, data: Json, validator: Any, what: str) -> np.ndarray:
        validate_document(validator, data, f"{self._what} {what}")
        lookup = {self.blank: BLANK_TOKEN, **{s: i + SYMBOL_OFFSET for i, s in enumerate(self.symbols)}}
        return np.array([lookup[ch] for row in data["grid"] for ch in row], dtype=np.int64)

    def encode_input(self, data: Json) -> np.ndarray:
        """Tokens of a puzzle: blank → 1, symbol i → i + 2."""
        return self._tokens(data, self._input_validator, "input")

    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Tokens of a filled grid: symbol i → i + 2."""
        return self._tokens(data, self._output_validator, "output")

    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json:
        """The grid the model wrote; ``CodecError`` at the first row holding a token that is no symbol."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len:
            raise CodecError(f"{self._what} answer needs {self.seq_len} tokens, got {tokens.shape[0]}", "/grid")
        bad = np.flatnonzero((tokens < SYMBOL_OFFSET) | (tokens >= self.vocab_size))
        if bad.size:
            cell = int(bad[0])
            raise CodecError(
                f"model output token {int(tokens[cell])} is not a symbol token (expected "
                f"{SYMBOL_OFFSET}..{self.vocab_size - 1})",
                f"/grid/{cell // self.cols}",
            )
        chars = np.array(list(self.symbols))[tokens.astype(np.intp) - SYMBOL_OFFSET].reshape(self.rows, self.cols)
        return {"grid": ["".join(row) for row in chars]}

    def decode_input(self, tokens: np.ndarray) -> Json | None:
        """The puzzle of input tokens (blank → the blank character); None when a token is no blank or symbol."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len or ((tokens < BLANK_TOKEN) | (tokens >= self.vocab_size)).any():
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

    def groups(self) -> list[list[int]]:
        """Cell indices of every group the rules say holds each symbol once (rows, columns, boxes)."""
        rows, cols = self.rows, self.cols
        found: list[list[int]] = []
        if "rows" in self.rules:
            found += [[r * cols + c for c in range(cols)] for r in range(rows)]
        if "columns" in self.rules:
            found += [[r * cols + c for r in range(rows)] for c in range(cols)]
        if self.box:
            br, bc = self.box
            found += [
                [(top + r) * cols + left + c for r in range(br) for c in range(bc)]
                for top in range(0, rows, br)
                for left in range(0, cols, bc)
            ]
        return found

    def check(self, data_in: Json, data_out: Json) -> bool | None:
        """True when ``data_out`` keeps every given and every rule's groups hold each symbol once; None for a
        grid without rules. A malformed input raises ``CodecError``; a malformed answer is False."""
        puzzle = self.encode_input(data_in)
        if not self.rules:
            return None
        try:
            answer = self.encode_output(data_out)
        except CodecError:
            return False
        givens = puzzle != BLANK_TOKEN
        if not np.array_equal(answer[givens], puzzle[givens]):
            return False
        n = len(self.symbols)
        return all(len(set(answer[group].tolist())) == n for group in self.groups())

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
        groups = self.groups()
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
        if not self.rules:
            return None
        n = len(self.symbols)
        lookups = np.tile(np.arange(self.vocab_size), (count, 1))
        lookups[:, SYMBOL_OFFSET:] = SYMBOL_OFFSET + np.argsort(rng.random((count, n)), axis=1)
        band, stack = self.box if self.box else (1, 1)

        def line_order(lines: int, per_group: int) -> np.ndarray:
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
        """One grid that follows the rules, as tokens."""
        n = len(self.symbols)
        r = np.arange(self.rows)[:, None]
        c = np.arange(self.cols)[None, :]
        if self.box:
            br, bc = self.box
            values = (bc * (r % br) + r // br + c) % n
        elif "rows" in self.rules and "columns" in self.rules:
            values = (r + c) % n
        elif "rows" in self.rules:
            values = np.argsort(rng.random((self.rows, n)), axis=1)
        else:
            values = np.argsort(rng.random((self.cols, n)), axis=1).T
        tokens = (values + SYMBOL_OFFSET).reshape(1, -1)
        sources, lookups = self.transforms(rng, 1) or (np.arange(self.seq_len)[None], np.arange(self.vocab_size)[None])
        return lookups[0][tokens[0][sources[0]]]

    def generate(
        self, rng: np.random.Generator, n: int, *, blank_fraction: Any = (0.3, 0.6), unique: bool = True
    ) -> list[tuple[Json, Json]]:
        """``n`` puzzles with a solution each: a full grid that follows the rules, blanked at random cells up to
        a fraction drawn from ``blank_fraction`` (a number or [low, high]); with ``unique`` a cell is blanked
        only while the solution stays the only one (so some puzzles keep more givens). A grid without rules
        has nothing to generate from: train it from data files."""
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
        pairs = []
        for _ in range(n):
            solution = self._full_grid(rng)
            puzzle = solution.copy()
            target = int(round(rng.uniform(low, high) * self.seq_len))
            blanked = 0
            for cell in rng.permutation(self.seq_len).tolist():
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

    def _document(self, tokens: np.ndarray) -> Json:
        chars = np.array([self.blank, self.blank, *self.symbols])[tokens.astype(np.intp)].reshape(self.rows, self.cols)
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
    holds = (
        f"each {', '.join(named[:-1]) + ' and ' + named[-1] if len(named) > 1 else named[0]} holds each of "
        f"{' '.join(codec.symbols)} once."
        if named
        else ""
    )
    box_rows, box_cols = codec.box or (None, None)
    return BoardView(
        rows=codec.rows,
        cols=codec.cols,
        box_rows=box_rows,
        box_cols=box_cols,
        blank_token=BLANK_TOKEN,
        choices=list(range(SYMBOL_OFFSET, codec.vocab_size)),
        labels={str(i + SYMBOL_OFFSET): s for i, s in enumerate(codec.symbols)},
        instructions=f"Fill in every empty cell{': ' + holds if holds else '.'}",
        rules=[AllDifferent(groups=codec.groups())] if codec.rules else [],
    )
