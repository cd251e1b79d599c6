"""Puzzles from generators written elsewhere (PyPI packages), for measurement only.

Nothing here imports the project's generators, and no training recipe uses these: they measure how
the modules hold up on puzzles the project never generated. Each function returns task input
documents in the codecs' wire format; answers are judged by the task's rules only.

Sudoku: ``py-sudoku`` (random blanking of a solved board, several solutions allowed), ``sudoku-py``
(blanking while its solver finds one solution), ``dokusan`` (9×9 only: unique puzzles graded by
solving technique); minimal 9×9 puzzles reduced with ``py-sudoku``'s and ``dokusan``'s own uniqueness
checks. Mazes, drawn as many people draw them (a wall all around, corridors on odd
coordinates): ``mazelib`` (ten classic algorithms; S and G at the two ends of the longest path) and
``mazes`` (recursive backtracker; S and G in the package's own start and end cells, opposite corners),
``mazelib`` perfect mazes with a few walls knocked out (loops) and ``mazelib``'s recursive division.

Install them with ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable

import numpy as np

#: Box shape (rows, columns) of the Sudoku sizes the modules answer.
BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


# ----------------------------------------------------------------------------- Sudoku
def py_sudoku(size: int, n: int, seed: int, blanks: tuple[float, float]) -> list[dict]:
    """``py-sudoku``: a solved board with a random share of cells (drawn in ``blanks``) erased."""
    from sudoku import Sudoku

    rows, cols = BOXES[size]
    rng = random.Random(seed)
    puzzles = []
    while len(puzzles) < n:
        board = Sudoku(cols, rows, seed=rng.randrange(2**31)).difficulty(rng.uniform(*blanks)).board
        puzzles.append({"grid": [[cell or 0 for cell in row] for row in board]})
    return puzzles


def sudoku_py(size: int, n: int, seed: int, blanks: tuple[float, float]) -> list[dict]:
    """``sudoku-py``'s SudokuGenerator: cells erased in random order while its solver still finds a solution."""
    from sudoku_py import SudokuGenerator

    rows, cols = BOXES[size]
    random.seed(seed)  # the package draws from the global generator
    puzzles = []
    for _ in range(n):
        generator = SudokuGenerator(board_size=size, block_width=cols, block_height=rows)
        generator.generate(cells_to_remove=round(random.uniform(*blanks) * size * size))
        digit = {token: i + 1 for i, token in enumerate(generator.board_tokens)}
        puzzles.append({"grid": [[digit.get(cell, 0) for cell in row] for row in generator.board]})
    return puzzles


def dokusan(size: int, n: int, seed: int, blanks: tuple[float, float]) -> list[dict]:
    """``dokusan``: unique 9×9 puzzles; ``avg_rank`` drawn so the givens cover the range asked for."""
    if size != 9:
        raise ValueError("dokusan generates 9x9 puzzles only (its 4x4 and 6x6 seeding never ends)")
    from dokusan import generators

    random.seed(seed)
    puzzles = []
    for _ in range(n):
        board = generators.random_sudoku(avg_rank=random.randint(20, 300))
        puzzles.append({"grid": [[cell.value or 0 for cell in row] for row in board.rows()]})
    return puzzles


def py_sudoku_minimal(size: int, n: int, seed: int, blanks: tuple[float, float] | None = None) -> list[dict]:
    """Minimal puzzles (no given can be removed without losing uniqueness) by ``py-sudoku``: its solved board,
    givens removed in a random order while its own ``has_multiple_solutions()`` says the solution stays unique.
    One pass suffices: a given whose removal broke uniqueness still breaks it once fewer givens remain."""
    from sudoku import Sudoku

    rows, cols = BOXES[size]
    rng = random.Random(seed)
    puzzles = []
    while len(puzzles) < n:
        board = Sudoku(cols, rows, seed=rng.randrange(2**31)).difficulty(0.01).board
        grid = [row[:] for row in Sudoku(cols, rows, board=board).solve().board]
        cells = [(r, c) for r in range(size) for c in range(size)]
        rng.shuffle(cells)
        for r, c in cells:
            value, grid[r][c] = grid[r][c], None
            if Sudoku(cols, rows, board=grid).has_multiple_solutions():
                grid[r][c] = value
        puzzles.append({"grid": [[cell or 0 for cell in row] for row in grid]})
    return puzzles


def dokusan_minimal(size: int, n: int, seed: int, blanks: tuple[float, float] | None = None) -> list[dict]:
    """Minimal 9×9 puzzles by ``dokusan``: its hardest random puzzle (``avg_rank=300``), then every remaining
    given removed in a random order unless its own ranking solver reports several solutions."""
    if size != 9:
        raise ValueError("dokusan generates 9x9 puzzles only")
    from dokusan import exceptions, generators, stats
    from dokusan.boards import Cell

    random.seed(seed)  # the package draws from the global generator
    puzzles = []
    for _ in range(n):
        board = generators.random_sudoku(avg_rank=300)
        givens = [cell for cell in board.cells() if cell.value]
        random.shuffle(givens)
        for cell in givens:
            board.update([Cell(position=cell.position)])
            try:
                stats.rank(board)
            except exceptions.MultipleSolutions:
                board.update([cell])
        puzzles.append({"grid": [[cell.value or 0 for cell in row] for row in board.rows()]})
    return puzzles


# ----------------------------------------------------------------------------- mazes
def _render(walls: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> dict:
    rows = [["#" if wall else "." for wall in row] for row in walls]
    rows[start[0]][start[1]] = "S"
    rows[goal[0]][goal[1]] = "G"
    return {"grid": ["".join(row) for row in rows]}


def _farthest(walls: np.ndarray, origin: tuple[int, int]) -> tuple[int, int]:
    """The open cell farthest from ``origin`` by breadth-first search (the earliest found on ties)."""
    seen = {origin}
    queue = deque([origin])
    last = origin
    while queue:
        last = r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < walls.shape[0] and 0 <= nc < walls.shape[1] and not walls[nr, nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc))
    return last


MAZELIB_ALGORITHMS = (
    "AldousBroder",
    "BacktrackingGenerator",
    "BinaryTree",
    "Ellers",
    "GrowingTree",
    "HuntAndKill",
    "Kruskal",
    "Prims",
    "Sidewinder",
    "Wilsons",
)


def mazelib(size: int, n: int, seed: int) -> list[dict]:
    """``mazelib``: a (size-1)/2 × (size-1)/2-cell perfect maze by one of ten algorithms; S and G at the
    two ends of its longest path (found by two breadth-first searches)."""
    import importlib

    from mazelib import Maze

    cells = (size - 1) // 2
    rng = random.Random(seed)
    mazes = []
    for i in range(n):
        algorithm = MAZELIB_ALGORITHMS[i % len(MAZELIB_ALGORITHMS)]
        maze = Maze(rng.randrange(2**31))
        maze.generator = getattr(importlib.import_module(f"mazelib.generate.{algorithm}"), algorithm)(cells, cells)
        maze.generate()
        walls = np.asarray(maze.grid, dtype=bool)
        start = _farthest(walls, (1, 1))
        mazes.append(_render(walls, start, _farthest(walls, start)))
    return mazes


def _knock_out_walls(walls: np.ndarray, count: int, rng: random.Random) -> np.ndarray:
    """Open ``count`` interior walls that separate two corridor cells (odd coordinates): loops appear, so a
    maze has several shortest paths. The enclosing wall stays."""
    walls = walls.copy()
    height, width = walls.shape
    between = [
        (r, c)
        for r in range(1, height - 1)
        for c in range(1, width - 1)
        if walls[r, c]
        and (
            (r % 2 == 1 and c % 2 == 0 and not walls[r, c - 1] and not walls[r, c + 1])
            or (r % 2 == 0 and c % 2 == 1 and not walls[r - 1, c] and not walls[r + 1, c])
        )
    ]
    for r, c in rng.sample(between, min(count, len(between))):
        walls[r, c] = False
    return walls


def mazelib_loops(size: int, n: int, seed: int) -> list[dict]:
    """``mazelib`` perfect mazes (ten algorithms) with 1 to 3 walls between corridors knocked out (loops,
    several shortest paths), the enclosing wall kept; S and G at the two ends of the longest path."""
    import importlib

    from mazelib import Maze

    cells = (size - 1) // 2
    rng = random.Random(seed + 7)  # other mazes than ``mazelib`` draws at the same seed
    mazes = []
    for i in range(n):
        algorithm = MAZELIB_ALGORITHMS[i % len(MAZELIB_ALGORITHMS)]
        maze = Maze(rng.randrange(2**31))
        maze.generator = getattr(importlib.import_module(f"mazelib.generate.{algorithm}"), algorithm)(cells, cells)
        maze.generate()
        walls = _knock_out_walls(np.asarray(maze.grid, dtype=bool), rng.randint(1, 3), rng)
        start = _farthest(walls, (1, 1))
        mazes.append(_render(walls, start, _farthest(walls, start)))
    return mazes


def mazelib_division(size: int, n: int, seed: int) -> list[dict]:
    """``mazelib``'s recursive-division mazes; S and G at the two ends of the longest path."""
    from mazelib import Maze
    from mazelib.generate.Division import Division

    cells = (size - 1) // 2
    rng = random.Random(seed)
    mazes = []
    for _ in range(n):
        maze = Maze(rng.randrange(2**31))
        maze.generator = Division(cells, cells)
        maze.generate()
        walls = np.asarray(maze.grid, dtype=bool)
        start = _farthest(walls, (1, 1))
        mazes.append(_render(walls, start, _farthest(walls, start)))
    return mazes


def mazes_package(size: int, n: int, seed: int) -> list[dict]:
    """``mazes`` (recursive backtracker on cells with walls between them), drawn as blocks; S and G in the
    start (bottom-left) and end (top-right) cells the package carves from, the border left closed."""
    from mazes.maze import Generator, Maze

    cells = (size - 1) // 2
    random.seed(seed)  # the package draws from the global generator
    mazes = []
    for _ in range(n):
        maze = Maze(cells, cells)
        generator = Generator(maze)
        generator.step()
        walls = np.ones((size, size), dtype=bool)
        for y in range(cells):
            for x in range(cells):
                walls[2 * y + 1, 2 * x + 1] = False
                if x + 1 < cells and not maze.point(x + 1, y).is_connected(maze.point(x + 1, y + 1)):
                    walls[2 * y + 1, 2 * x + 2] = False
                if y + 1 < cells and not maze.point(x, y + 1).is_connected(maze.point(x + 1, y + 1)):
                    walls[2 * y + 2, 2 * x + 1] = False
        start, goal = generator.start, generator.end
        mazes.append(_render(walls, (2 * start.y + 1, 2 * start.x + 1), (2 * goal.y + 1, 2 * goal.x + 1)))
    return mazes


SUDOKU_GENERATORS: dict[str, Callable[..., list[dict]]] = {
    "py-sudoku": py_sudoku,
    "sudoku-py": sudoku_py,
    "dokusan": dokusan,
}
#: Minimal puzzles (9×9: 22–27 givens), far harder than the 25–57 givens of SUDOKU_GENERATORS.
MINIMAL_SUDOKU_GENERATORS: dict[str, Callable[..., list[dict]]] = {
    "py-sudoku-minimal": py_sudoku_minimal,
    "dokusan-minimal": dokusan_minimal,
}
MAZE_GENERATORS: dict[str, Callable[..., list[dict]]] = {
    "mazelib": mazelib,
    "mazes": mazes_package,
    "mazelib-loops": mazelib_loops,
    "mazelib-division": mazelib_division,
}
