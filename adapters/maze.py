"""The maze task codec (``"maze"``): shortest S→G path in a k×k grid maze.

Wire format: input ``{"grid": ["#.S..", ...]}`` with ``#`` wall, ``.`` open, ``S`` start and
``G`` goal (exactly one each); output the same rows with ``o`` on the path cells between S and G.
A codec of size k answers every maze of 4..k rows of 4..k cells each (all rows equal); a smaller
maze sits in the top-left corner of the k×k token grid and the rest is wall, which no path crosses,
so the padding changes no answer. Tokens follow the authors' Maze dataset: pad 0, wall 1, open 2,
S 3, G 4, path 5 (vocab 6, sequence k² in row-major order). An answer is valid when its path is a
shortest S→G path through open cells and nothing else changed; it need not be the one a solver
would print.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from trm_modules.codec import Json, TaskCodec
from trm_modules.errors import CodecError
from trm_modules import hookimpl

from .maze_generator import (
    carved_maze,
    clear_rooms,
    make_shortest_path_unique,
    open_maze,
    place_start_and_goal,
    place_start_and_goal_at_random,
    shortest_path,
    shortest_path_counts,
)
from .schema_validation import compile_schema, validate_document

MIN_SIZE = 4
MAX_SIZE = 64
SYMBOLS = "\0#.SGo"  # token id → character (0 is padding and never appears in a document)
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
_TOKEN_OF_BYTE = np.zeros(256, dtype=np.int64)
for _token, _symbol in enumerate(SYMBOLS[1:], start=1):
    _TOKEN_OF_BYTE[ord(_symbol)] = _token
_SYMBOL_OF_TOKEN = np.frombuffer(SYMBOLS.encode(), dtype=np.uint8)
GENERATION_ATTEMPTS_PER_MAZE = 200


def _dihedral_indices(size: int) -> np.ndarray:
    """(8, size²) gather indices of the 8 symmetries of a square grid (rotations × transpose)."""
    base = np.arange(size * size).reshape(size, size)
    views = [np.rot90(base, k) for k in range(4)]
    views += [view.T for view in views]
    return np.stack([view.reshape(-1) for view in views])


def _range(value: float | tuple[float, float] | list[float], name: str) -> tuple[float, float]:
    low, high = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if not 0.0 <= low <= high <= 1.0:
        raise CodecError(
            f"maze {name} must be a fraction or a range [low, high] within [0, 1], got {value!r}", f"/difficulty/{name}"
        )
    return float(low), float(high)


class MazeCodec(TaskCodec):
    """Mazes of up to ``size``×``size`` cells (4..64); smaller ones are padded with wall."""

    name = "maze"

    def __init__(self, size: int = 30) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise CodecError(
                f"maze size must be an integer between {MIN_SIZE} and {MAX_SIZE}, got {size!r}", "/task/params/size"
            )
        self.size = size
        self._input_validator = compile_schema(self.input_schema())
        self._output_validator = compile_schema(self.output_schema())
        self._dihedral = _dihedral_indices(size)
        self._what = f"maze {size}x{size}"

    @property
    def params(self) -> Json:
        """``{"size": k}``."""
        return {"size": self.size}

    @property
    def vocab_size(self) -> int:
        """pad, wall, open, S, G, path."""
        return len(SYMBOLS)

    @property
    def seq_len(self) -> int:
        """One token per cell."""
        return self.size * self.size

    def _schema(self, symbols: str, title: str) -> Json:
        k = self.size
        one_of = {symbol: {"contains": {"pattern": symbol}, "minContains": 1, "maxContains": 1} for symbol in "SG"}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "type": "object",
            "required": ["grid"],
            "additionalProperties": False,
            "properties": {
                "grid": {
                    "type": "array",
                    "description": f"rows of the maze ({MIN_SIZE} to {k}, all of one length, {MIN_SIZE} to {k} "
                    "cells), one character per cell; exactly one S and one G",
                    "minItems": MIN_SIZE,
                    "maxItems": k,
                    "items": {
                        "type": "string",
                        "allOf": [
                            {"pattern": f"^[{symbols}]{{{MIN_SIZE},{k}}}$"},
                            {"pattern": "^[^S]*S?[^S]*$"},
                            {"pattern": "^[^G]*G?[^G]*$"},
                        ],
                    },
                    "allOf": [one_of["S"], one_of["G"]],
                }
            },
        }

    def input_schema(self) -> Json:
        """4..k strings of 4..k characters from ``#.SG``, with exactly one S and one G."""
        return self._schema(r"#.SG", f"Maze {self.size}x{self.size}")

    def output_schema(self) -> Json:
        """The input rows with ``o`` marking the path cells."""
        return self._schema(r"#.SGo", f"Maze {self.size}x{self.size} with its path")

    def _tokens(self, data: Json, what: str) -> np.ndarray:
        """The k² tokens of a (possibly smaller) grid: its cells top-left, wall everywhere else."""
        rows = data["grid"]
        width = len(rows[0])
        for index, row in enumerate(rows):
            if len(row) != width:
                raise CodecError(
                    f"{what} rows must all have one length: row {index} has {len(row)} cells, row 0 has {width}",
                    f"/grid/{index}",
                )
        canvas = np.full((self.size, self.size), WALL, dtype=np.int64)
        raw = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
        canvas[: len(rows), :width] = _TOKEN_OF_BYTE[raw].reshape(len(rows), width)
        return canvas.reshape(-1)

    @staticmethod
    def shape_of(data: Json) -> tuple[int, int]:
        """(rows, cells per row) of a grid document."""
        return len(data["grid"]), len(data["grid"][0])

    def validate_input(self, data_in: Json) -> np.ndarray:
        """The maze as k² tokens; ``CodecError`` at the offending row otherwise."""
        validate_document(self._input_validator, data_in, f"{self._what} input")
        return self._tokens(data_in, f"{self._what} input")

    def validate_output(self, data_out: Json) -> np.ndarray:
        """The answer as k² tokens; ``CodecError`` at the offending row otherwise."""
        validate_document(self._output_validator, data_out, f"{self._what} output")
        return self._tokens(data_out, f"{self._what} output")

    def encode_input(self, data: Json) -> np.ndarray:
        """Tokens of a maze: # → 1, . → 2, S → 3, G → 4."""
        return self.validate_input(data)

    def encode_output(self, data: Json, data_in: Json | None = None) -> np.ndarray:
        """Tokens of a maze with its path: o → 5, the rest as in the input."""
        return self.validate_output(data)

    def decode_output(self, tokens: np.ndarray, data_in: Json) -> Json:
        """The grid the model wrote, cut to the input's shape (the whole k×k grid when ``data_in`` has
        none); ``CodecError`` at the first cell holding the pad token."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len:
            raise CodecError(f"{self._what} answer needs {self.seq_len} tokens, got {tokens.shape[0]}", "/grid")
        rows, cols = self.shape_of(data_in) if data_in.get("grid") else (self.size, self.size)
        grid = tokens.reshape(self.size, self.size)[:rows, :cols]
        bad = np.argwhere((grid < 1) | (grid >= len(SYMBOLS)))
        if bad.size:
            row, col = (int(v) for v in bad[0])
            raise CodecError(
                f"model output token {int(grid[row, col])} is not a maze symbol (expected 1..5)", f"/grid/{row}"
            )
        return self._document(tokens, rows, cols)

    def decode_input(self, tokens: np.ndarray) -> Json | None:
        """The whole k×k maze of input tokens (a smaller maze keeps its wall padding); None when a token is no
        maze symbol of an input."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.shape[0] != self.seq_len or ((tokens < WALL) | (tokens > GOAL)).any():
            return None
        return self._document(tokens, self.size, self.size)

    def answer_token_table(self) -> np.ndarray:
        """Walls, S, G (and padding) stay as they are; an open cell stays open or joins the path."""
        table = np.eye(self.vocab_size, dtype=bool)
        table[OPEN, PATH] = True
        return table

    def check(self, data_in: Json, data_out: Json) -> bool:
        """True when the ``o`` cells plus S and G form a shortest S→G path over open cells and no
        other cell changed. A malformed input raises ``CodecError``; a malformed answer is False."""
        maze = self.validate_input(data_in)
        try:
            answer = self.validate_output(data_out)
        except CodecError:
            return False
        if self.shape_of(data_out) != self.shape_of(data_in):
            return False
        marked = answer == PATH
        if not np.array_equal(np.where(marked, OPEN, answer), maze):
            return False  # a wall, S or G moved, or a path mark sits on a non-open cell
        start, goal = int(np.flatnonzero(maze == START)[0]), int(np.flatnonzero(maze == GOAL)[0])
        dist, _ = shortest_path_counts((maze != WALL).tolist(), self.size, start)
        if dist[goal] < 0:
            return False
        on_path = marked.copy()
        on_path[[start, goal]] = True
        if int(on_path.sum()) != dist[goal] + 1:
            return False
        # A connected set of d+1 cells holding S and G, d their distance, is exactly a shortest path.
        reached, _ = shortest_path_counts(on_path.tolist(), self.size, start)
        return reached[goal] >= 0 and all(reached[cell] >= 0 for cell in np.flatnonzero(on_path).tolist())

    def reference_solution(self, data_in: Json) -> Json | None:
        """A shortest path found by BFS, or None when G cannot be reached from S."""
        maze = self.validate_input(data_in)
        start, goal = int(np.flatnonzero(maze == START)[0]), int(np.flatnonzero(maze == GOAL)[0])
        path = shortest_path((maze != WALL).tolist(), self.size, start, goal)
        if path is None:
            return None
        answer = maze.copy()
        answer[path[1:-1]] = PATH
        return self.decode_output(answer, data_in)

    def count_shortest_paths(self, data_in: Json) -> int:
        """Number of shortest S→G paths of a maze, capped at 2 (0 when G is unreachable)."""
        maze = self.validate_input(data_in)
        start, goal = int(np.flatnonzero(maze == START)[0]), int(np.flatnonzero(maze == GOAL)[0])
        _, ways = shortest_path_counts((maze != WALL).tolist(), self.size, start)
        return ways[goal]

    def generate(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        method: str = "mixed",
        loop_fraction: Any = (0.0, 0.3),
        wall_density: Any = (0.2, 0.4),
        min_path_length: int | None = None,
        placement: str = "far",
        sizes: Any = None,
        enclosed: float = 0.0,
        parity: str = "even",
        ties: float = 0.0,
    ) -> list[tuple[Json, Json]]:
        """``n`` mazes with a shortest path of at least ``min_path_length`` steps.

        ``method``: ``"carved"`` (corridor maze with ``loop_fraction`` of its separating walls
        removed), ``"open"`` (random walls at ``wall_density``), ``"rooms"`` (carved, then one to
        three rectangles cleared: wide open areas), ``"mixed"`` (carved or open, half each) or
        ``"all"`` (carved, open or rooms, a third each). Fractions are a number or a [low, high]
        range drawn uniformly per maze. Default minimum path length: the side length k.
        ``placement``: ``"far"`` puts S and G at the two ends of the maze's longest shortest path
        (hardest), ``"random"`` at two random open cells at least ``min_path_length`` apart (paths
        of every length, S and G anywhere), ``"mixed"`` either one, half the mazes each.

        The shape of the mazes users bring: ``sizes`` [low, high] draws each maze's side from that
        range (half of them at its top, the module's own size; a quarter rectangular), padded to k×k
        with wall (default: k×k only);
        ``enclosed`` is the share of mazes with a wall all around; ``parity`` puts the corridors of
        carved mazes on ``"even"`` coordinates (touching the edge of an open grid), ``"odd"`` ones
        (the way mazes are usually drawn) or either (``"mixed"``). For mazes whose shape is drawn,
        the minimum path length shrinks to what a small maze can hold (rows + cols - 6).

        ``ties`` is the share of mazes that keep every shortest path their loops make (the mazes users
        bring); their label is the canonical one (``canonical_labels``), which ``augment`` recomputes
        in each rotated or reflected frame. The other mazes get walls until one shortest path is left.
        """
        if method not in ("carved", "open", "rooms", "mixed", "all"):
            raise CodecError(
                f"maze generation method must be 'carved', 'open', 'rooms', 'mixed' or 'all', got {method!r}",
                "/difficulty/method",
            )
        if placement not in ("far", "random", "mixed"):
            raise CodecError(
                f"maze placement must be 'far', 'random' or 'mixed', got {placement!r}", "/difficulty/placement"
            )
        if parity not in ("even", "odd", "mixed"):
            raise CodecError(f"maze parity must be 'even', 'odd' or 'mixed', got {parity!r}", "/difficulty/parity")
        loops = _range(loop_fraction, "loop_fraction")
        density = _range(wall_density, "wall_density")
        enclosed_share = _range(enclosed, "enclosed")[0]
        tie_share = _range(ties, "ties")[0]
        k = self.size
        side_low, side_high = (k, k) if sizes is None else tuple(sizes)
        if not MIN_SIZE <= side_low <= side_high <= k:
            raise CodecError(
                f"maze sizes must be a range [low, high] within [{MIN_SIZE}, {k}], got {sizes!r}", "/difficulty/sizes"
            )
        min_length = self.size if min_path_length is None else min_path_length
        if isinstance(min_length, bool) or not isinstance(min_length, int) or not 1 <= min_length < self.size**2:
            raise CodecError(
                f"maze min_path_length must be an integer in [1, {self.size**2 - 1}], got {min_path_length!r}",
                "/difficulty/min_path_length",
            )
        shaped = sizes is not None or enclosed_share > 0 or parity != "even"
        search_rng = random.Random(int(rng.integers(2**63)))
        pairs = []
        for _ in range(n):
            for _attempt in range(GENERATION_ATTEMPTS_PER_MAZE):
                rows = cols = k
                shape: dict[str, Any] = {}
                needed = min_length
                if shaped:
                    rows = side_high if search_rng.random() < 0.5 else search_rng.randint(side_low, side_high)
                    cols = rows if search_rng.random() < 0.75 else search_rng.randint(side_low, side_high)
                    shape = {"rows": rows, "cols": cols, "enclosed": search_rng.random() < enclosed_share}
                    needed = min(min_length, max(1, rows + cols - 6))
                    corridor_parity = {"even": 0, "odd": 1}.get(parity, search_rng.randrange(2))
                kind = method
                if method == "mixed":
                    kind = "carved" if search_rng.random() < 0.5 else "open"
                elif method == "all":
                    kind = search_rng.choice(("carved", "open", "rooms"))
                if kind == "open":
                    open_cells = open_maze(k, search_rng.uniform(*density), search_rng, **shape)
                else:
                    carving = {**shape, "parity": corridor_parity} if shaped else {}
                    open_cells = carved_maze(k, search_rng.uniform(*loops), search_rng, **carving)
                    if kind == "rooms":
                        clear_rooms(open_cells, k, search_rng, search_rng.randint(1, 3), **shape)
                far = placement == "far" or (placement == "mixed" and search_rng.random() < 0.5)
                place = place_start_and_goal if far else place_start_and_goal_at_random
                placed = place(open_cells, k, search_rng, needed)
                if placed is not None and placed[2] >= needed:
                    break
            else:
                raise CodecError(
                    f"no {k}x{k} maze with a shortest path of at least {min_length} steps "
                    f"in {GENERATION_ATTEMPTS_PER_MAZE} attempts; lower min_path_length",
                    "/difficulty/min_path_length",
                )
            start, goal, _ = placed
            if tie_share == 0 or search_rng.random() >= tie_share:
                make_shortest_path_unique(open_cells, k, start, goal, search_rng)
            tokens = np.where(np.asarray(open_cells), OPEN, WALL)
            tokens[start], tokens[goal] = START, GOAL
            path = shortest_path(open_cells, k, start, goal)
            label = tokens.copy()
            label[path[1:-1]] = PATH
            pairs.append((self._document(tokens, rows, cols), self._document(label, rows, cols)))
        return pairs

    def _document(self, tokens: np.ndarray, rows: int, cols: int) -> Json:
        """The ``rows``×``cols`` top-left corner of k² tokens as a grid document."""
        grid = np.asarray(tokens).reshape(self.size, self.size)[:rows, :cols]
        return {"grid": [_SYMBOL_OF_TOKEN[row.astype(np.intp)].tobytes().decode("ascii") for row in grid]}

    def pair_from_text(self, question: str, answer: str) -> tuple[Json, Json]:
        """A pair from the authors' Maze-Hard CSV row: ``q`` and ``a`` of s² characters (an s×s maze, row-major),
        ``#`` wall, space open, ``S`` start, ``G`` goal, and ``o`` on the answer's path."""

        def rows(text: str, what: str, symbols: str) -> list[str]:
            side = int(round(len(text) ** 0.5))
            if side * side != len(text) or not MIN_SIZE <= side <= self.size:
                raise CodecError(
                    f"{what} has {len(text)} characters; a square maze of {MIN_SIZE} to {self.size} "
                    f"cells a side needs a square number of them ({MIN_SIZE**2} to {self.size**2})",
                    "",
                )
            for index, char in enumerate(text):
                if char not in symbols:
                    raise CodecError(
                        f"{what} character {index + 1} (row {index // side + 1}, column "
                        f"{index % side + 1}) is {char!r}; expected one of {symbols!r}",
                        "",
                    )
            text = text.replace(" ", ".")
            return [text[row * side : (row + 1) * side] for row in range(side)]

        return {"grid": rows(question, "the maze (q)", "# SG")}, {"grid": rows(answer, "the answer (a)", "# SGo")}

    def canonical_key(self, input_tokens: np.ndarray) -> bytes:
        """The least of the 8 rotations/reflections of the token grid: equal for mazes that one maps onto the other."""
        views = np.asarray(input_tokens, dtype=np.int64).reshape(-1)[self._dihedral]
        return np.ascontiguousarray(views[np.lexsort(views.T[::-1])[0]]).tobytes()

    def transforms(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Random ones of the 8 rotations/reflections of the grid; tokens keep their ids."""
        sources = self._dihedral[rng.integers(0, 8, size=count)]
        return sources, np.broadcast_to(np.arange(self.vocab_size), (count, self.vocab_size))

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A random rotation/reflection per row, then the canonical label of every maze with several
        shortest paths, recomputed in its new frame (``canonical_labels``)."""
        inputs, labels = super().augment(rng, inputs, labels)
        return inputs, self.canonical_labels(inputs, labels)

    def canonical_labels(self, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``labels`` with the row of every maze that has several shortest paths replaced by the canonical
        one: traced back from G, each step to the first neighbour one step nearer S in the order up,
        down, left, right (``maze_generator.shortest_path``).

        Any shortest path is a right answer, but a fixed label only teaches when it follows a rule the
        model can see: a tie broken in one frame and then rotated breaks it a different way in the frame
        the model is shown, so the label is recomputed in that frame. Mazes with one shortest path keep
        their label (a data file's included)."""
        inputs = np.asarray(inputs)
        relabelled = None
        for row, tokens in enumerate(inputs):
            starts, goals = np.flatnonzero(tokens == START), np.flatnonzero(tokens == GOAL)
            if len(starts) != 1 or len(goals) != 1:
                continue
            open_cells = np.isin(tokens, (OPEN, START, GOAL)).tolist()
            start, goal = int(starts[0]), int(goals[0])
            _, ways = shortest_path_counts(open_cells, self.size, start)
            if ways[goal] < 2:
                continue
            path = shortest_path(open_cells, self.size, start, goal)
            if relabelled is None:
                relabelled = np.array(labels, copy=True)
            label = tokens.astype(relabelled.dtype, copy=True)
            label[path[1:-1]] = PATH
            relabelled[row] = label
        return labels if relabelled is None else relabelled


@hookimpl
def trm_register_codecs() -> list[type]:
    """The maze codec."""
    return [MazeCodec]


@hookimpl
def trm_board_view(codec: TaskCodec) -> Any:
    """A maze: the learner clicks open cells to mark the shortest path from S to G."""
    if not isinstance(codec, MazeCodec):
        return None
    from trm_modules.boards import BoardView, ShortestPath

    return BoardView(
        rows=codec.size,
        cols=codec.size,
        blank_token=OPEN,
        choices=[OPEN, PATH],
        entry="click",
        labels={str(WALL): "", str(OPEN): "", str(START): "S", str(GOAL): "G", str(PATH): "•"},
        classes={str(WALL): "wall", str(OPEN): "open", str(START): "start", str(GOAL): "goal", str(PATH): "path"},
        instructions="Mark the shortest path from S to G: click the open cells it passes through "
        "(click again to unmark).",
        rules=[ShortestPath(start=START, goal=GOAL, path=PATH, passable=[OPEN])],
    )
