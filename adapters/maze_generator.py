"""Shortest paths in k×k grid mazes and a generator of mazes whose shortest path is unique.

Mazes are flat lists of ``k*k`` booleans in row-major order, True for an open cell; moves go
to the four orthogonal neighbours. Two families are generated:

- **carved**: a depth-first-carved perfect maze (corridors on even or odd coordinates), then a
  fraction of the walls that separate two corridors knocked out, so alternative routes and loops exist;
- **open**: independent random walls at a given density (cave-like, many routes);
- **rooms**: a carved maze with a few rectangles cleared (wide open areas inside corridors).

Any of them can fill only a ``rows``×``cols`` corner of the k×k canvas (a smaller maze, the rest
wall) and keep an enclosing wall around its border.

S is put at one end of a double BFS sweep (far from everything) and G at the farthest cell
from S that is reached by exactly one shortest path, so every label is unambiguous.
"""

from __future__ import annotations

import functools
import random
from collections import deque


@functools.lru_cache(maxsize=None)
def neighbours_of(size: int) -> tuple[tuple[int, ...], ...]:
    """Orthogonal neighbours of every cell of a ``size``×``size`` grid (flat indices)."""
    result = []
    for cell in range(size * size):
        r, c = divmod(cell, size)
        around = []
        if r > 0:
            around.append(cell - size)
        if r < size - 1:
            around.append(cell + size)
        if c > 0:
            around.append(cell - 1)
        if c < size - 1:
            around.append(cell + 1)
        result.append(tuple(around))
    return tuple(result)


def shortest_path_counts(open_cells: list[bool], size: int, start: int) -> tuple[list[int], list[int]]:
    """BFS from ``start``: distance of every cell (-1 if unreachable) and its number of shortest
    paths from ``start``, capped at 2 (1 means unique)."""
    neighbours = neighbours_of(size)
    dist = [-1] * (size * size)
    ways = [0] * (size * size)
    dist[start] = 0
    ways[start] = 1
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        next_dist = dist[cell] + 1
        cell_ways = ways[cell]
        for other in neighbours[cell]:
            if not open_cells[other]:
                continue
            if dist[other] == -1:
                dist[other] = next_dist
                ways[other] = cell_ways
                queue.append(other)
            elif dist[other] == next_dist:
                ways[other] = min(2, ways[other] + cell_ways)
    return dist, ways


def shortest_path(open_cells: list[bool], size: int, start: int, goal: int) -> list[int] | None:
    """The cells of one shortest path from ``start`` to ``goal`` (both included), or None."""
    dist, _ = shortest_path_counts(open_cells, size, start)
    if dist[goal] < 0:
        return None
    neighbours = neighbours_of(size)
    path = [goal]
    cell = goal
    while cell != start:
        cell = next(other for other in neighbours[cell] if dist[other] == dist[cell] - 1)
        path.append(cell)
    path.reverse()
    return path


def _open_area(size: int, rows: int | None, cols: int | None, enclosed: bool) -> tuple[range, range]:
    """Rows and columns of the canvas a maze may open: its ``rows``×``cols`` corner, less the border
    when ``enclosed``."""
    rows, cols = rows or size, cols or size
    edge = 1 if enclosed else 0
    return range(edge, rows - edge), range(edge, cols - edge)


def carved_maze(
    size: int,
    loop_fraction: float,
    rng: random.Random,
    *,
    rows: int | None = None,
    cols: int | None = None,
    enclosed: bool = False,
    parity: int = 0,
) -> list[bool]:
    """A depth-first-carved perfect maze with ``loop_fraction`` of its inner walls removed.

    Corridor cells lie on coordinates of the given ``parity`` (0: even, 1: odd) within the open area
    (``_open_area``); by default the whole canvas, corridors on even coordinates.
    """
    open_cells = [False] * (size * size)
    area_rows, area_cols = _open_area(size, rows, cols, enclosed)
    room_rows = [r for r in area_rows if r % 2 == parity] or list(area_rows)
    room_cols = [c for c in area_cols if c % 2 == parity] or list(area_cols)
    start = (rng.choice(room_rows), rng.choice(room_cols))
    open_cells[start[0] * size + start[1]] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ((2, 0), (-2, 0), (0, 2), (0, -2))
            if r + dr in area_rows and c + dc in area_cols and not open_cells[(r + dr) * size + c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = rng.choice(options)
        open_cells[((r + nr) // 2) * size + (c + nc) // 2] = True
        open_cells[nr * size + nc] = True
        stack.append((nr, nc))
    # Walls between two corridor cells (open on opposite sides) are the ones whose removal makes loops.
    separators = []
    for cell in range(size * size):
        if open_cells[cell]:
            continue
        r, c = divmod(cell, size)
        if r not in area_rows or c not in area_cols:
            continue
        if (0 < r < size - 1 and open_cells[cell - size] and open_cells[cell + size]) or (
            0 < c < size - 1 and open_cells[cell - 1] and open_cells[cell + 1]
        ):
            separators.append(cell)
    for cell in rng.sample(separators, round(loop_fraction * len(separators))):
        open_cells[cell] = True
    return open_cells


def open_maze(
    size: int,
    wall_density: float,
    rng: random.Random,
    *,
    rows: int | None = None,
    cols: int | None = None,
    enclosed: bool = False,
) -> list[bool]:
    """Independent random walls, each cell of the open area a wall with probability ``wall_density``."""
    cells = [rng.random() >= wall_density for _ in range(size * size)]
    area_rows, area_cols = _open_area(size, rows, cols, enclosed)
    return [
        is_open and divmod(cell, size)[0] in area_rows and divmod(cell, size)[1] in area_cols
        for cell, is_open in enumerate(cells)
    ]


def clear_rooms(
    open_cells: list[bool],
    size: int,
    rng: random.Random,
    count: int,
    *,
    rows: int | None = None,
    cols: int | None = None,
    enclosed: bool = False,
) -> None:
    """Clear ``count`` random rectangles (2 to 4 cells a side) of the open area, in place."""
    area_rows, area_cols = _open_area(size, rows, cols, enclosed)
    for _ in range(count):
        height, width = rng.randint(2, 4), rng.randint(2, 4)
        if height > len(area_rows) or width > len(area_cols):
            continue
        top = rng.randint(area_rows.start, area_rows.stop - height)
        left = rng.randint(area_cols.start, area_cols.stop - width)
        for r in range(top, top + height):
            for c in range(left, left + width):
                open_cells[r * size + c] = True


def place_start_and_goal(
    open_cells: list[bool], size: int, rng: random.Random, min_distance: int = 1
) -> tuple[int, int, int] | None:
    """(start, goal, distance) of two far-apart open cells: start is the far end of a BFS sweep
    from a random open cell, goal the farthest cell from start. None without two connected open cells."""
    candidates = [cell for cell, is_open in enumerate(open_cells) if is_open]
    if len(candidates) < 2:
        return None
    dist, _ = shortest_path_counts(open_cells, size, rng.choice(candidates))
    farthest = max(dist)
    start = rng.choice([cell for cell, d in enumerate(dist) if d == farthest])
    dist, _ = shortest_path_counts(open_cells, size, start)
    farthest = max(dist)
    if farthest <= 0:
        return None
    goal = rng.choice([cell for cell, d in enumerate(dist) if d == farthest])
    return start, goal, farthest


def place_start_and_goal_at_random(
    open_cells: list[bool], size: int, rng: random.Random, min_distance: int = 1
) -> tuple[int, int, int] | None:
    """(start, goal, distance): a random open cell and a random cell reachable from it at least
    ``min_distance`` steps away. None when the start drawn has no such cell."""
    candidates = [cell for cell, is_open in enumerate(open_cells) if is_open]
    if len(candidates) < 2:
        return None
    start = rng.choice(candidates)
    dist, _ = shortest_path_counts(open_cells, size, start)
    goals = [cell for cell, d in enumerate(dist) if d >= max(1, min_distance)]
    if not goals:
        return None
    goal = rng.choice(goals)
    return start, goal, dist[goal]


def make_shortest_path_unique(open_cells: list[bool], size: int, start: int, goal: int, rng: random.Random) -> None:
    """Wall random cells (in place) until exactly one shortest path leads from start to goal.

    Only cells of a BFS layer (cells at equal distance from start on some shortest path) that holds
    two or more such cells are walled: every shortest path crosses each layer once, so another
    cell of the layer still carries one and the distance never changes; each wall removes at
    least one shortest path, so the loop ends.
    """
    while True:
        from_start, ways = shortest_path_counts(open_cells, size, start)
        if ways[goal] <= 1:
            return
        from_goal, _ = shortest_path_counts(open_cells, size, goal)
        length = from_start[goal]
        layers: dict[int, list[int]] = {}
        for cell, (a, b) in enumerate(zip(from_start, from_goal)):
            if a >= 0 and b >= 0 and a + b == length:
                layers.setdefault(a, []).append(cell)
        ambiguous = [cells for cells in layers.values() if len(cells) > 1]
        open_cells[rng.choice(rng.choice(ambiguous))] = False
