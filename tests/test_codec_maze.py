"""The maze codec: wire format, tokens, shortest-path checking, BFS reference, generation, dihedral augmentation."""

import numpy as np
import pytest

from trm_adapters.maze import MazeCodec
from trm_modules.errors import CodecError
from trm_modules.plugins import get_codec

# Two shortest routes of length 6 around the central wall block.
MAZE = {"grid": ["S...", ".##.", ".##.", "...G"]}
TOP_ROUTE = {"grid": ["Sooo", ".##o", ".##o", "...G"]}
LEFT_ROUTE = {"grid": ["S...", "o##.", "o##.", "oooG"]}


def test_plugin_manager_finds_maze_codec():
    codec = get_codec("maze", {"size": 4})
    assert isinstance(codec, MazeCodec)
    assert (codec.vocab_size, codec.seq_len, codec.params) == (6, 16, {"size": 4})


def test_size_out_of_range_is_refused():
    with pytest.raises(CodecError) as err:
        MazeCodec(size=2)
    assert err.value.path == "/task/params/size"


def test_unknown_symbol_is_rejected_at_its_row():
    bad = {"grid": ["S...", ".#x.", ".##.", "...G"]}
    with pytest.raises(CodecError) as err:
        MazeCodec(size=4).encode_input(bad)
    assert err.value.path == "/grid/1"


def test_row_of_wrong_length_is_rejected_at_its_row():
    bad = {"grid": ["S...", ".##.", ".##", "...G"]}
    with pytest.raises(CodecError) as err:
        MazeCodec(size=4).encode_input(bad)
    assert err.value.path == "/grid/2"


def test_two_starts_are_rejected():
    with pytest.raises(CodecError):
        MazeCodec(size=4).encode_input({"grid": ["S...", ".##.", ".##S", "...G"]})
    with pytest.raises(CodecError):
        MazeCodec(size=4).encode_input({"grid": ["SS..", ".##.", ".##.", "...G"]})


def test_missing_goal_is_rejected():
    with pytest.raises(CodecError) as err:
        MazeCodec(size=4).encode_input({"grid": ["S...", ".##.", ".##.", "...."]})
    assert err.value.path == "/grid"


def test_path_mark_is_not_allowed_in_input():
    with pytest.raises(CodecError):
        MazeCodec(size=4).encode_input(TOP_ROUTE)


def test_tokens_are_wall_1_open_2_start_3_goal_4_path_5():
    codec = MazeCodec(size=4)
    assert codec.encode_input(MAZE)[:8].tolist() == [3, 2, 2, 2, 2, 1, 1, 2]
    assert codec.encode_output(TOP_ROUTE)[:4].tolist() == [3, 5, 5, 5]


def test_encode_decode_round_trip():
    codec = MazeCodec(size=4)
    assert codec.decode_output(codec.encode_output(TOP_ROUTE), MAZE) == TOP_ROUTE


def test_decode_rejects_pad_token_at_its_row():
    codec = MazeCodec(size=4)
    tokens = codec.encode_output(TOP_ROUTE)
    tokens[9] = 0
    with pytest.raises(CodecError) as err:
        codec.decode_output(tokens, MAZE)
    assert err.value.path == "/grid/2"


def test_check_accepts_either_shortest_route():
    codec = MazeCodec(size=4)
    assert codec.check(MAZE, TOP_ROUTE)
    assert codec.check(MAZE, LEFT_ROUTE)


def test_check_rejects_a_longer_route():
    maze = {"grid": ["S#...", ".#.#.", ".#.#.", ".....", "###.G"]}
    detour = {
        "grid": ["S#ooo", "o#o#o", "o#o#o", "ooo.o", "###.G"]
    }  # 14 steps around the right-hand pillar; the shortest has 8
    codec = MazeCodec(size=5)
    assert codec.check(maze, codec.reference_solution(maze))
    assert not codec.check(maze, detour)


def test_check_rejects_disconnected_marks_of_the_right_count():
    scattered = {"grid": ["So.o", ".##.", "o##o", "o..G"]}
    assert not MazeCodec(size=4).check(MAZE, scattered)


def test_check_rejects_changed_wall():
    changed = {"grid": ["Sooo", ".#.o", ".##o", "...G"]}
    assert not MazeCodec(size=4).check(MAZE, changed)


def test_check_rejects_malformed_answer_as_invalid():
    assert MazeCodec(size=4).check(MAZE, {"grid": ["Sooo"]}) is False


def test_reference_solution_is_none_when_goal_is_walled_off():
    walled = {"grid": ["S...", "####", "....", "...G"]}
    assert MazeCodec(size=4).reference_solution(walled) is None


def test_count_shortest_paths_sees_both_routes():
    assert MazeCodec(size=4).count_shortest_paths(MAZE) == 2


@pytest.mark.parametrize("method", ["carved", "open"])
def test_generated_mazes_have_a_unique_long_enough_shortest_path(method):
    codec = MazeCodec(size=9)
    for maze, answer in codec.generate(np.random.default_rng(0), 10, method=method, min_path_length=9):
        assert codec.count_shortest_paths(maze) == 1
        assert codec.check(maze, answer)
        assert sum(row.count("o") for row in answer["grid"]) + 1 >= 9


def test_generation_is_reproducible_from_the_seed():
    codec = MazeCodec(size=6)
    assert codec.generate(np.random.default_rng(3), 4) == codec.generate(np.random.default_rng(3), 4)


def test_impossible_minimum_path_length_raises_codec_error():
    with pytest.raises(CodecError) as err:
        MazeCodec(size=4).generate(np.random.default_rng(0), 1, min_path_length=15)
    assert err.value.path == "/difficulty/min_path_length"


def test_dihedral_augmentation_keeps_answers_valid_and_uses_all_eight_transforms():
    codec = MazeCodec(size=4)
    # No rotation or reflection maps this maze onto itself, and its one shortest path is the label.
    maze, answer = {"grid": ["S..#", "#.##", "#...", "###G"]}, {"grid": ["So.#", "#o##", "#ooo", "###G"]}
    inputs = np.stack([codec.encode_input(maze)] * 64)
    labels = np.stack([codec.encode_output(answer)] * 64)
    aug_in, aug_lab = codec.augment(np.random.default_rng(0), inputs, labels)
    seen = set()
    for x, y in zip(aug_in, aug_lab):
        maze, answer = codec.decode_output(x, {}), codec.decode_output(y, {})
        assert codec.check(maze, answer)
        seen.add(tuple(x) + tuple(y))
    assert len(seen) == 8


def start_and_goal(maze):
    cells = "".join(maze["grid"])
    return cells.index("S"), cells.index("G")


@pytest.mark.parametrize("placement", ["random", "mixed"])
def test_random_placement_puts_start_and_goal_anywhere_with_paths_of_every_length(placement):
    codec = MazeCodec(size=9)
    pairs = codec.generate(np.random.default_rng(1), 60, placement=placement, min_path_length=4)
    lengths = set()
    for maze, answer in pairs:
        assert codec.count_shortest_paths(maze) == 1 and codec.check(maze, answer)
        lengths.add(sum(row.count("o") for row in answer["grid"]) + 1)
    assert min(lengths) >= 4 and len(lengths) >= 10
    far = codec.generate(np.random.default_rng(1), 60, placement="far", min_path_length=4)
    mean_length = lambda ps: np.mean([sum(r.count("o") for r in a["grid"]) for _, a in ps])  # noqa: E731
    assert mean_length(pairs) < mean_length(far)  # far placement takes the longest shortest path


def test_unknown_placement_is_refused_at_its_key():
    with pytest.raises(CodecError) as err:
        MazeCodec(size=6).generate(np.random.default_rng(0), 1, placement="centre")
    assert err.value.path == "/difficulty/placement"


def test_a_smaller_maze_is_answered_padded_with_wall():
    codec = MazeCodec(size=6)
    tokens = codec.encode_input(MAZE).reshape(6, 6)
    assert (tokens[:4, :4] == MazeCodec(size=4).encode_input(MAZE).reshape(4, 4)).all()
    assert (tokens[4:, :] == 1).all() and (tokens[:, 4:] == 1).all()  # wall around it
    answer = codec.decode_output(codec.encode_output(TOP_ROUTE), MAZE)
    assert answer == TOP_ROUTE and codec.check(MAZE, answer)


def test_a_rectangular_maze_is_accepted_and_its_answer_keeps_its_shape():
    codec = MazeCodec(size=7)
    wide = {"grid": ["S.....", "#####.", "#####.", "G....."]}
    solved = codec.reference_solution(wide)
    assert codec.shape_of(solved) == (4, 6) and codec.check(wide, solved)


def test_an_answer_of_another_shape_is_not_valid():
    codec = MazeCodec(size=6)
    padded = {"grid": [row + "#" for row in TOP_ROUTE["grid"]] + ["#####"]}
    assert not codec.check(MAZE, padded)


def test_a_maze_larger_than_the_codec_is_refused():
    with pytest.raises(CodecError):
        MazeCodec(size=4).encode_input({"grid": ["S....", ".....", ".....", ".....", "....G"]})


def test_rows_of_different_lengths_within_the_size_are_refused_at_the_row():
    with pytest.raises(CodecError) as err:
        MazeCodec(size=6).encode_input({"grid": ["S....", ".....", "....", "....G"]})
    assert err.value.path == "/grid/2"


BROAD = {
    "method": "all",
    "sizes": [4, 9],
    "enclosed": 0.5,
    "parity": "mixed",
    "placement": "mixed",
    "min_path_length": 4,
    "wall_density": [0.1, 0.4],
}


def test_broad_generation_gives_every_size_and_valid_unique_labels():
    codec = MazeCodec(size=9)
    pairs = codec.generate(np.random.default_rng(3), 200, **BROAD)
    assert {codec.shape_of(inp)[0] for inp, _ in pairs} == set(range(4, 10))
    assert any(codec.shape_of(inp)[0] != codec.shape_of(inp)[1] for inp, _ in pairs)
    assert all(codec.check(inp, out) and codec.count_shortest_paths(inp) == 1 for inp, out in pairs)


def enclosed(grid: list[str]) -> bool:
    return set(grid[0] + grid[-1] + "".join(row[0] + row[-1] for row in grid)) == {"#"}


def test_broad_generation_puts_a_wall_around_the_share_of_mazes_asked_for():
    codec = MazeCodec(size=9)
    pairs = codec.generate(np.random.default_rng(4), 200, **{**BROAD, "method": "carved", "parity": "even"})
    share = sum(enclosed(inp["grid"]) for inp, _ in pairs) / len(pairs)
    assert 0.35 < share < 0.65  # even corridors reach the edge unless a wall is put around them


def test_odd_parity_draws_mazes_the_classic_way():
    codec = MazeCodec(size=9)
    settings = {**BROAD, "method": "carved", "parity": "odd", "sizes": [9, 9], "placement": "far", "loop_fraction": 0.0}
    grids = [inp["grid"] for inp, _ in codec.generate(np.random.default_rng(6), 60, **settings)]
    square = [grid for grid in grids if len(grid[0]) == 9]
    # A wall all around, corridors on odd coordinates: every cell at two even coordinates is wall.
    assert square and all(enclosed(grid) for grid in square)
    assert all(grid[r][c] == "#" for grid in square for r in range(0, 9, 2) for c in range(0, 9, 2))


def test_default_generation_is_unchanged_by_the_shape_options():
    codec = MazeCodec(size=9)
    settings = {"method": "mixed", "placement": "mixed", "min_path_length": 4}
    plain = codec.generate(np.random.default_rng(5), 20, **settings)
    explicit = codec.generate(
        np.random.default_rng(5), 20, **settings, sizes=None, enclosed=0.0, parity="even", ties=0.0
    )
    assert plain == explicit and all(codec.shape_of(inp) == (9, 9) for inp, _ in plain)


LOOPY = {**BROAD, "method": "carved", "loop_fraction": [0.2, 0.35], "parity": "odd", "enclosed": 1.0, "sizes": [9, 9]}


def test_mazes_keep_their_ties_in_the_share_asked_for_and_are_labelled_canonically():
    codec = MazeCodec(size=9)
    pairs = codec.generate(np.random.default_rng(8), 60, **LOOPY, ties=1.0)
    tied = [(maze, answer) for maze, answer in pairs if codec.count_shortest_paths(maze) > 1]
    assert len(tied) > 20
    assert all(codec.check(maze, answer) for maze, answer in pairs)
    inputs = np.stack([codec.encode_input(maze) for maze, _ in pairs])
    labels = np.stack([codec.encode_output(answer, maze) for maze, answer in pairs])
    assert np.array_equal(codec.canonical_labels(inputs, labels), labels)
    unique = codec.generate(np.random.default_rng(8), 60, **LOOPY, ties=0.0)
    assert all(codec.count_shortest_paths(maze) == 1 for maze, _ in unique)


def test_the_canonical_path_is_traced_back_from_g_preferring_up_down_left_right():
    codec = MazeCodec(size=4)
    left_labelled = codec.canonical_labels(
        np.stack([codec.encode_input(MAZE)]), np.stack([codec.encode_output(LEFT_ROUTE)])
    )
    # From G at the bottom-right corner both neighbours are one step nearer S; up comes first.
    assert codec.decode_output(left_labelled[0], MAZE) == TOP_ROUTE


def test_augmentation_relabels_ties_in_each_new_frame_so_the_label_is_a_function_of_the_input():
    codec = MazeCodec(size=9)
    pairs = codec.generate(np.random.default_rng(9), 16, **LOOPY, ties=1.0)
    inputs = np.stack([codec.encode_input(maze) for maze, _ in pairs] * 16)
    labels = np.stack([codec.encode_output(answer, maze) for maze, answer in pairs] * 16)
    aug_in, aug_lab = codec.augment(np.random.default_rng(0), inputs, labels)
    label_of: dict[bytes, bytes] = {}
    for x, y in zip(aug_in, aug_lab):
        assert codec.check(codec.decode_output(x, {}), codec.decode_output(y, {}))
        assert label_of.setdefault(x.tobytes(), y.tobytes()) == y.tobytes()
    assert len(label_of) > 16  # several frames of each maze were drawn
