"""The Sudoku codec: wire format, tokens, rule-based checking, exact solving, generation, augmentation."""

import numpy as np
import pytest

from trm_adapters.sudoku import SudokuCodec
from trm_modules.errors import CodecError
from trm_modules.plugins import get_codec

SOLVED_4 = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]


def puzzle_4(blanks=((0, 0), (1, 1), (2, 2), (3, 3))):
    grid = [row[:] for row in SOLVED_4]
    for r, c in blanks:
        grid[r][c] = 0
    return {"grid": grid}


def rules_hold(board: np.ndarray, box_rows: int, box_cols: int) -> bool:
    n = board.shape[0]
    boxes = board.reshape(n // box_rows, box_rows, n // box_cols, box_cols).transpose(0, 2, 1, 3).reshape(n, n)
    want = np.arange(1, n + 1)
    return all((np.sort(units, axis=1) == want).all() for units in (board, board.T, boxes))


def test_plugin_manager_finds_sudoku_codec_with_derived_boxes():
    codec = get_codec("sudoku", {"size": 6})
    assert isinstance(codec, SudokuCodec)
    assert codec.params == {"size": 6, "box_rows": 2, "box_cols": 3}
    assert (codec.vocab_size, codec.seq_len) == (8, 36)


def test_box_shape_that_does_not_tile_the_board_is_refused():
    with pytest.raises(CodecError) as err:
        SudokuCodec(size=6, box_rows=3, box_cols=3)
    assert err.value.path == "/task/params/box_rows"


def test_prime_size_without_box_shape_is_refused():
    with pytest.raises(CodecError, match="prime"):
        SudokuCodec(size=7)


def test_input_with_out_of_range_digit_is_rejected_at_its_cell():
    data = puzzle_4()
    data["grid"][3][2] = 5
    with pytest.raises(CodecError) as err:
        SudokuCodec(size=4).encode_input(data)
    assert err.value.path == "/grid/3/2"


def test_input_with_short_row_is_rejected_at_that_row():
    data = puzzle_4()
    data["grid"][1] = [3, 4, 1]
    with pytest.raises(CodecError) as err:
        SudokuCodec(size=4).encode_input(data)
    assert err.value.path == "/grid/1"


def test_input_without_grid_is_rejected_at_root():
    with pytest.raises(CodecError) as err:
        SudokuCodec(size=4).encode_input({"board": []})
    assert err.value.path == ""


def test_output_schema_rejects_blank_cell():
    data = {"grid": [row[:] for row in SOLVED_4]}
    data["grid"][2][1] = 0
    with pytest.raises(CodecError) as err:
        SudokuCodec(size=4).encode_output(data)
    assert err.value.path == "/grid/2/1"


def test_tokens_are_blank_one_and_digit_plus_one():
    tokens = SudokuCodec(size=4).encode_input(puzzle_4())
    assert tokens.shape == (16,)
    assert tokens[:4].tolist() == [1, 3, 4, 5]


def test_encode_decode_round_trip_of_an_answer():
    codec = SudokuCodec(size=4)
    answer = {"grid": SOLVED_4}
    assert codec.decode_output(codec.encode_output(answer), puzzle_4()) == answer


def test_decode_rejects_non_digit_token_at_its_cell():
    codec = SudokuCodec(size=4)
    tokens = codec.encode_output({"grid": SOLVED_4})
    tokens[6] = 1  # blank token in row 1, column 2
    with pytest.raises(CodecError) as err:
        codec.decode_output(tokens, puzzle_4())
    assert err.value.path == "/grid/1/2"


def test_check_accepts_any_valid_alternative_solution():
    codec = SudokuCodec(size=4)
    empty = {"grid": [[0] * 4 for _ in range(4)]}
    other = [[2, 1, 4, 3], [4, 3, 2, 1], [1, 2, 3, 4], [3, 4, 1, 2]]
    assert codec.check(empty, {"grid": SOLVED_4})
    assert codec.check(empty, {"grid": other})


def test_check_rejects_changed_given():
    codec = SudokuCodec(size=4)
    puzzle = {"grid": [[2, 0, 0, 0]] + [[0] * 4 for _ in range(3)]}
    assert not codec.check(puzzle, {"grid": SOLVED_4})  # valid board, but the given 2 became 1


def test_check_rejects_box_violation_with_valid_rows_and_columns():
    latin_not_sudoku = [[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]]
    assert not SudokuCodec(size=4).check({"grid": [[0] * 4 for _ in range(4)]}, {"grid": latin_not_sudoku})


def test_check_rejects_malformed_answer_as_invalid():
    assert SudokuCodec(size=4).check(puzzle_4(), {"grid": [[1, 2], [3, 4]]}) is False


def test_reference_solution_solves_a_hard_9x9():
    # Arto Inkala's "hardest" puzzle.
    rows = [
        "800000000",
        "003600000",
        "070090200",
        "050007000",
        "000045700",
        "000100030",
        "001000068",
        "008500010",
        "090000400",
    ]
    puzzle = {"grid": [[int(ch) for ch in row] for row in rows]}
    codec = SudokuCodec(size=9)
    answer = codec.reference_solution(puzzle)
    assert codec.check(puzzle, answer)
    assert codec.count_solutions(puzzle["grid"]) == 1


def test_reference_solution_is_none_for_unsolvable_puzzle():
    # No given repeats, but row 1 already holds 3 and 4, which are the only digits left for box 0.
    contradictory = {"grid": [[1, 2, 0, 0], [0, 0, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0]]}
    codec = SudokuCodec(size=4)
    assert codec.reference_solution(contradictory) is None
    assert codec.count_solutions(contradictory["grid"]) == 0


def test_count_solutions_stops_at_limit_for_empty_board():
    assert SudokuCodec(size=4).count_solutions([[0] * 4 for _ in range(4)], limit=5) == 5


@pytest.mark.parametrize("size", [4, 6, 9])
def test_generated_puzzles_have_a_unique_solution_matching_the_label(size):
    codec = SudokuCodec(size=size)
    for puzzle, solution in codec.generate(np.random.default_rng(size), 8):
        assert codec.count_solutions(puzzle["grid"]) == 1
        assert codec.check(puzzle, solution)


def test_generated_givens_stay_within_requested_range_when_reachable():
    codec = SudokuCodec(size=6)
    pairs = codec.generate(np.random.default_rng(1), 20, min_givens=20, max_givens=24)
    givens = [sum(v != 0 for row in p["grid"] for v in row) for p, _ in pairs]
    assert all(20 <= g <= 24 for g in givens)
    assert len(set(givens)) > 1


def test_generation_is_reproducible_from_the_seed():
    codec = SudokuCodec(size=4)
    assert codec.generate(np.random.default_rng(7), 5) == codec.generate(np.random.default_rng(7), 5)


def test_generate_refuses_inverted_givens_range():
    with pytest.raises(CodecError):
        SudokuCodec(size=4).generate(np.random.default_rng(0), 1, min_givens=10, max_givens=5)


@pytest.mark.parametrize("size", [4, 6, 9])
def test_augmented_labels_obey_rules_and_keep_augmented_givens(size):
    codec = SudokuCodec(size=size)
    pairs = codec.generate(np.random.default_rng(0), 4)
    inputs = np.stack([codec.encode_input(p) for p, _ in pairs] * 16)
    labels = np.stack([codec.encode_output(s) for _, s in pairs] * 16)
    aug_in, aug_lab = codec.augment(np.random.default_rng(1), inputs, labels)
    assert aug_in.shape == inputs.shape and aug_in.dtype == inputs.dtype
    assert not np.array_equal(aug_lab, labels)
    for x, y in zip(aug_in, aug_lab):
        board = (y - 1).reshape(size, size)
        assert rules_hold(board, codec.box_rows, codec.box_cols)
        given = x != 1
        assert np.array_equal(x[given], y[given])


def test_augmentation_keeps_the_number_of_blanks_of_each_example():
    codec = SudokuCodec(size=6)
    pairs = codec.generate(np.random.default_rng(3), 6)
    inputs = np.stack([codec.encode_input(p) for p, _ in pairs])
    labels = np.stack([codec.encode_output(s) for _, s in pairs])
    aug_in, _ = codec.augment(np.random.default_rng(4), inputs, labels)
    assert ((aug_in == 1).sum(axis=1) == (inputs == 1).sum(axis=1)).all()


def test_rectangular_boxes_are_never_transposed():
    codec = SudokuCodec(size=6)
    _, solution = codec.generate(np.random.default_rng(5), 1)[0]
    labels = np.stack([codec.encode_output(solution)] * 200)
    _, aug = codec.augment(np.random.default_rng(6), labels.copy(), labels)
    assert all(rules_hold((y - 1).reshape(6, 6), 2, 3) for y in aug)


def test_16x16_generation_finishes_and_yields_valid_pairs():
    codec = SudokuCodec(size=16)
    for puzzle, solution in codec.generate(np.random.default_rng(0), 2):
        assert codec.check(puzzle, solution)
