"""Test-time views: answers sought again through answer-preserving transforms when the rules reject one.

A stand-in "model" answers through the classical Sudoku solver, but only for grids it has not
been shown before: it gets every original puzzle wrong and every transformed one right. Which
answer comes back therefore shows exactly which views were solved and which answer was chosen.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trm_modules.host import Host, ServableVersion
from trm_modules.solving import ModelAnswer, ItemError, solve_inputs
from trm_modules.plugins import get_codec
from trm_modules.views import Candidate, TokenView, choose, views_of


def sudoku(size: int = 4):
    return get_codec("sudoku", {"size": size})


def maze(size: int = 7):
    return get_codec("maze", {"size": size})


def grid_of(codec, tokens: np.ndarray) -> dict:
    """The Sudoku input document of token row ``tokens`` (blank 1 → 0, digit d + 1 → d)."""
    n = codec.size
    return {"grid": [[max(int(t) - 1, 0) for t in tokens[r * n : (r + 1) * n]] for r in range(n)]}


class BlindToOriginals(torch.nn.Module):
    """Answers wrongly (the puzzle as given, blanks filled with 1) any grid in ``originals``, and
    with the solver's solution any other grid; 3 steps for every answer."""

    def __init__(self, codec, originals: list[np.ndarray]) -> None:
        super().__init__()
        self.codec = codec
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.originals = {bytes(np.asarray(t, dtype=np.int64).tobytes()) for t in originals}
        self.calls: list[int] = []

    def solve(
        self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None, max_steps=None, halt=True, answer_table=None
    ):
        rows = []
        for row in tokens.cpu().numpy().astype(np.int64):
            if row.tobytes() in self.originals:
                rows.append(np.where(row == 1, 2, row))
            else:
                solution = self.codec.reference_solution(grid_of(self.codec, row))
                rows.append(self.codec.encode_output(solution))
        self.calls.append(len(rows))
        count = len(rows)
        return SimpleNamespace(
            tokens=torch.from_numpy(np.stack(rows)), steps=torch.full((count,), 3), confidence=torch.full((count,), 0.5)
        )


@pytest.mark.parametrize("codec", [sudoku(4), sudoku(6), maze(7)], ids=["sudoku-4x4", "sudoku-6x6", "maze-7x7"])
def test_every_view_maps_a_right_answer_to_a_right_answer_and_back(codec):
    pairs = codec.generate(np.random.default_rng(0), 20)
    views = views_of(codec, 8)
    assert len(views) == 8
    for puzzle, solution in pairs:
        tokens_in, tokens_out = codec.encode_input(puzzle), codec.encode_output(solution, puzzle)
        for view in views:
            viewed_in, viewed_out = view.apply(tokens_in), view.apply(tokens_out)
            viewed_puzzle = codec.decode_output(viewed_in, {}) if codec.name == "maze" else grid_of(codec, viewed_in)
            assert codec.check(viewed_puzzle, codec.decode_output(viewed_out, viewed_puzzle)) is True
            assert np.array_equal(view.invert(viewed_out), tokens_out)


def test_views_start_with_the_identity_and_never_repeat():
    views = views_of(maze(7), 8)  # a square maze has exactly 8 symmetries
    assert np.array_equal(views[0].source, np.arange(49)) and np.array_equal(views[0].lookup, np.arange(6))
    assert len({v.source.tobytes() for v in views}) == 8
    assert len(views_of(maze(7), 20)) == 8


def test_a_task_that_cannot_check_answers_gets_only_the_identity_view():
    from fixtures.host import GridCodec  # a codec without a rule check

    assert len(views_of(GridCodec(), 8)) == 1


def candidate(tokens, valid, output=True) -> Candidate:
    return Candidate(np.array(tokens), 1, 0.5, {"t": tokens} if output else None, valid)


def test_choose_prefers_the_first_answer_the_rules_accept_then_the_vote_then_the_first():
    assert choose([candidate([1], False), candidate([2], True), candidate([3], True)]).tokens.tolist() == [2]
    assert choose([candidate([1], False), candidate([2], False), candidate([2], False)]).tokens.tolist() == [2]
    assert choose([candidate([1], None), candidate([2], None)]).tokens.tolist() == [1]
    assert choose([candidate([1], False, output=False), candidate([2], False)]).tokens.tolist() == [2]
    assert choose([candidate([1], False, output=False)]).tokens.tolist() == [1]


def test_rejected_answers_are_sought_in_more_views_and_the_valid_one_is_returned():
    codec = sudoku(4)
    puzzles = [p for p, _ in codec.generate(np.random.default_rng(1), 5)]
    model = BlindToOriginals(codec, [codec.encode_input(p) for p in puzzles])

    alone = solve_inputs(model, codec, puzzles, views=1)
    assert all(isinstance(a, ModelAnswer) and a.valid is False and a.views == 1 for a in alone)

    answers = solve_inputs(model, codec, puzzles, views=4)
    assert all(isinstance(a, ModelAnswer) and a.valid is True for a in answers)
    assert all(codec.check(p, a.output) for p, a in zip(puzzles, answers))
    assert [(a.views, a.steps) for a in answers] == [(4, 12)] * 5  # 4 views solved, 3 steps each


def test_accepted_answers_cost_one_pass():
    codec = sudoku(4)
    puzzles = [p for p, _ in codec.generate(np.random.default_rng(2), 6)]
    model = BlindToOriginals(codec, [codec.encode_input(puzzles[0])])  # only the first is answered wrongly
    answers = solve_inputs(model, codec, puzzles, views=8)
    assert [a.views for a in answers] == [8, 1, 1, 1, 1, 1]
    assert all(a.valid for a in answers)
    assert model.calls == [6, 7]  # one pass for all, then the 7 other views of the rejected one together


def test_an_answer_no_view_can_decode_is_an_item_error():
    codec = maze(7)
    puzzle, _ = codec.generate(np.random.default_rng(3), 1)[0]

    class PadsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def solve(self, tokens, puzzle_ids=None, max_steps=None, halt=True, answer_table=None):
            count = len(tokens)
            return SimpleNamespace(
                tokens=torch.zeros_like(tokens),
                steps=torch.ones(count, dtype=torch.long),
                confidence=torch.zeros(count),
            )

    [result] = solve_inputs(PadsOnly(), codec, [puzzle], views=8)
    assert isinstance(result, ItemError) and "cannot be decoded" in result.message


def test_the_host_answers_with_views_and_says_how_many_it_solved():
    codec = sudoku(4)
    puzzles = [p for p, _ in codec.generate(np.random.default_rng(4), 3)]
    model = BlindToOriginals(codec, [codec.encode_input(puzzles[0])])
    spec = ServableVersion.from_model("blind", "1.0.0", model, codec)
    for views, expected in ((1, [False, True, True]), (8, [True, True, True])):
        host = Host(views=views, batch_window_ms=0)
        host.swap("blind", spec)
        try:
            answers = host.solve_many("blind", puzzles)
            assert [a.valid for a in answers] == expected
            assert [a.views for a in answers] == ([1, 1, 1] if views == 1 else [8, 1, 1])
            assert answers[0].steps == 3 * answers[0].views
        finally:
            host.close()


def test_views_of_a_token_view_round_trip():
    view = TokenView(np.array([2, 0, 1]), np.array([0, 2, 1]))
    tokens = np.array([[1, 2, 1], [2, 2, 1]])
    assert np.array_equal(view.invert(view.apply(tokens)), tokens)
