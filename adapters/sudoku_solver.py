"""Exact Sudoku solving, solution counting and unique-puzzle generation for n×n boards.

Boards are flat lists of ``n*n`` ints in row-major order, 0 for a blank and 1..n for a digit.
Boxes are ``box_rows`` tall and ``box_cols`` wide (a 6×6 board has 2×3 boxes). The search keeps
one bitmask of used digits per row, column and box (bit ``d-1`` for digit ``d``) and always
branches on the empty cell with the fewest candidates, which makes forced cells free and keeps
backtracking small on every size up to 16×16.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

#: Box shapes used when only the board size is given.
DEFAULT_BOX_SHAPES: dict[int, tuple[int, int]] = {
    4: (2, 2),
    6: (2, 3),
    8: (2, 4),
    9: (3, 3),
    10: (2, 5),
    12: (3, 4),
    15: (3, 5),
    16: (4, 4),
}
MIN_SIZE = 4
MAX_SIZE = 16
#: Search nodes the generator spends on proving one blanking keeps the solution unique; rare
#: pathological proofs on large boards are abandoned (the cell stays a given) instead of stalling.
UNIQUENESS_PROOF_NODE_BUDGET = 20_000
#: Search nodes one randomised attempt at a full board may spend before it restarts.
FULL_GRID_NODE_BUDGET = 20_000


class SearchBudgetExceeded(Exception):
    """A search visited more nodes than its ``max_nodes``."""


def default_box_shape(size: int) -> tuple[int, int] | None:
    """The (box_rows, box_cols) of a ``size``×``size`` board: the most square factorisation, or None."""
    if size in DEFAULT_BOX_SHAPES:
        return DEFAULT_BOX_SHAPES[size]
    for rows in range(math.isqrt(size), 1, -1):
        if size % rows == 0:
            return rows, size // rows
    return None


@dataclass(frozen=True)
class SudokuGeometry:
    """Which row, column and box every cell of an n×n board belongs to."""

    size: int
    box_rows: int
    box_cols: int
    row_of: tuple[int, ...]
    col_of: tuple[int, ...]
    box_of: tuple[int, ...]
    full_mask: int
    popcount: tuple[int, ...]

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def of(size: int, box_rows: int, box_cols: int) -> SudokuGeometry:
        """The (cached) geometry of a board; the caller has checked ``size == box_rows * box_cols``."""
        cells = range(size * size)
        boxes_per_band = size // box_cols
        return SudokuGeometry(
            size=size,
            box_rows=box_rows,
            box_cols=box_cols,
            row_of=tuple(i // size for i in cells),
            col_of=tuple(i % size for i in cells),
            box_of=tuple((i // size) // box_rows * boxes_per_band + (i % size) // box_cols for i in cells),
            full_mask=(1 << size) - 1,
            popcount=tuple(bin(m).count("1") for m in range(1 << size)),
        )


def count_completions(
    geometry: SudokuGeometry,
    board: list[int],
    limit: int = 2,
    *,
    excluded: dict[int, int] | None = None,
    solution_out: list[int] | None = None,
    shuffle: random.Random | None = None,
    max_nodes: int | None = None,
) -> int:
    """Number of solutions of ``board`` (0 = blank), counting stops at ``limit``.

    ``excluded`` maps a cell to a bitmask of digits it may not take (used by the generator to ask
    "is there a solution that differs here?"). The first solution found is written into
    ``solution_out`` when given. ``shuffle`` randomises the order in which digits are tried
    (for random full grids). Conflicting givens give 0. With ``max_nodes``, a search that visits
    more nodes raises ``SearchBudgetExceeded``.
    """
    row_of, col_of, box_of = geometry.row_of, geometry.col_of, geometry.box_of
    full, popcount = geometry.full_mask, geometry.popcount
    values = list(board)
    rows = [0] * geometry.size
    cols = [0] * geometry.size
    boxes = [0] * geometry.size
    empties: list[int] = []
    for cell, value in enumerate(values):
        if value == 0:
            empties.append(cell)
            continue
        bit = 1 << (value - 1)
        r, c, b = row_of[cell], col_of[cell], box_of[cell]
        if (rows[r] | cols[c] | boxes[b]) & bit:
            return 0
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
    excluded = excluded or {}
    nodes_left = [max_nodes if max_nodes is not None else -1]

    def descend(limit: int) -> int:
        if nodes_left[0] >= 0:
            if nodes_left[0] == 0:
                raise SearchBudgetExceeded(f"search exceeded {max_nodes} nodes")
            nodes_left[0] -= 1
        if not empties:
            if solution_out is not None and not solution_out:
                solution_out.extend(values)
            return 1
        best_pos, best_mask, best_count = -1, 0, 99
        for pos, cell in enumerate(empties):
            mask = full & ~(rows[row_of[cell]] | cols[col_of[cell]] | boxes[box_of[cell]])
            if excluded:
                mask &= ~excluded.get(cell, 0)
            count = popcount[mask]
            if count < best_count:
                best_pos, best_mask, best_count = pos, mask, count
                if count <= 1:
                    break
        if best_count == 0:
            return 0
        cell = empties[best_pos]
        last = empties.pop()
        if best_pos < len(empties):
            empties[best_pos] = last
        r, c, b = row_of[cell], col_of[cell], box_of[cell]
        if shuffle is None:
            bits = []
            while best_mask:
                bit = best_mask & -best_mask
                best_mask ^= bit
                bits.append(bit)
        else:
            bits = [1 << d for d in range(geometry.size) if best_mask >> d & 1]
            shuffle.shuffle(bits)
        total = 0
        for bit in bits:
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            values[cell] = bit.bit_length()
            total += descend(limit - total)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if total >= limit:
                break
        values[cell] = 0
        empties.append(cell)
        return total

    return descend(limit)


def solve_board(geometry: SudokuGeometry, board: list[int]) -> list[int] | None:
    """One solution of ``board`` as a flat list, or None when it has none."""
    solution: list[int] = []
    if count_completions(geometry, board, limit=1, solution_out=solution) == 0:
        return None
    return solution


def random_full_grid(geometry: SudokuGeometry, rng: random.Random) -> list[int]:
    """A random complete valid board (random seeding, then a search with shuffled digit order).

    The boxes on the diagonal share no row or column, so they are seeded with independent random
    permutations, which spares the search most of its work on large boards. Such a seeding is not
    always completable, and a randomised search occasionally wanders into a huge dead subtree, so
    each try has a node budget; after a few failed tries only the first box is seeded (any filling
    of one box extends to a full board by relabelling digits).
    """
    n = geometry.size
    diagonal = min(geometry.box_cols, geometry.box_rows)  # bands = box_cols, stacks = box_rows
    for attempt in range(1000):
        board = [0] * (n * n)
        for k in range(diagonal if attempt < 3 else 1):
            digits = list(range(1, n + 1))
            rng.shuffle(digits)
            for i, digit in enumerate(digits):
                r = k * geometry.box_rows + i // geometry.box_cols
                c = k * geometry.box_cols + i % geometry.box_cols
                board[r * n + c] = digit
        solution: list[int] = []
        try:
            if count_completions(
                geometry, board, limit=1, solution_out=solution, shuffle=rng, max_nodes=FULL_GRID_NODE_BUDGET
            ):
                return solution
        except SearchBudgetExceeded:
            continue
    raise AssertionError(f"no full {n}x{n} board found in 1000 randomised searches")


def carve_unique_puzzle(
    geometry: SudokuGeometry, solution: list[int], target_givens: int, rng: random.Random
) -> list[int]:
    """Blank cells of ``solution`` in random order while the puzzle keeps a unique solution.

    Stops when ``target_givens`` givens remain; when no further cell can be blanked before that
    (the puzzle is minimal), the minimal puzzle is returned. A blanked cell keeps the puzzle unique
    exactly when no solution of the remaining givens puts another digit there, which is one
    existence search with that digit excluded — or none at all when the digit is forced.
    """
    n = geometry.size
    row_of, col_of, box_of, full = geometry.row_of, geometry.col_of, geometry.box_of, geometry.full_mask
    puzzle = list(solution)
    rows = [0] * n
    cols = [0] * n
    boxes = [0] * n
    for cell, value in enumerate(puzzle):
        bit = 1 << (value - 1)
        rows[row_of[cell]] |= bit
        cols[col_of[cell]] |= bit
        boxes[box_of[cell]] |= bit
    givens = n * n
    order = list(range(n * n))
    rng.shuffle(order)
    for cell in order:
        if givens <= target_givens:
            break
        bit = 1 << (puzzle[cell] - 1)
        r, c, b = row_of[cell], col_of[cell], box_of[cell]
        rows[r] ^= bit
        cols[c] ^= bit
        boxes[b] ^= bit
        others = full & ~(rows[r] | cols[c] | boxes[b]) & ~bit
        digit = puzzle[cell]
        puzzle[cell] = 0
        if others == 0 or _no_other_digit_fits(geometry, puzzle, cell, bit):
            givens -= 1
            continue
        puzzle[cell] = digit
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
    return puzzle


def _no_other_digit_fits(geometry: SudokuGeometry, puzzle: list[int], cell: int, bit: int) -> bool:
    """True when no solution of ``puzzle`` puts a digit other than ``bit`` in ``cell``; False also
    when the proof runs over its node budget (keeping a given is always safe)."""
    try:
        return (
            count_completions(geometry, puzzle, limit=1, excluded={cell: bit}, max_nodes=UNIQUENESS_PROOF_NODE_BUDGET)
            == 0
        )
    except SearchBudgetExceeded:
        return False
