"""Answers never contradict the input: every solving path decodes within the codec's answer-token table."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fixtures.host import one_torch_thread
from trm_modules.cli import app
from trm_modules.host import FolderSource, Host
from trm_modules.model import TRM, TRMConfig, constrained_argmax
from trm_modules.package import build_package, open_package
from trm_modules.solving import ModelAnswer, solve_inputs
from trm_modules.plugins import build_plugin_manager, get_codec
from trm_modules.train.data import encode_pairs
from trm_modules.train.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
ENCLOSED_MAZES = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / "enclosed_mazes_9x9.jsonl").open()]
MAZE_9X9 = ROOT / "registry" / "packages" / "maze-9x9" / "maze-9x9-1.0.0.trm"


def untrained(codec, seed: int = 0) -> TRM:
    torch.manual_seed(seed)
    config = TRMConfig(
        vocab_size=codec.vocab_size,
        seq_len=codec.seq_len,
        hidden_size=32,
        num_heads=2,
        H_cycles=1,
        L_cycles=1,
        halt_max_steps=2,
        puzzle_emb_ndim=32,
        puzzle_emb_len=1,
    )
    model = TRM(config).eval()
    with torch.no_grad():  # loud, input-blind preferences: a pad or a wall everywhere unless constrained
        model.lm_head.weight.mul_(40)
    return model


def keeps_sudoku_givens(puzzle: dict, answer: dict) -> bool:
    given = np.asarray(puzzle["grid"])
    board = np.asarray(answer["grid"])
    return bool((board[given != 0] == given[given != 0]).all() and ((board >= 1) & (board <= len(board))).all())


def keeps_maze_fixed_cells(maze: dict, answer: dict) -> bool:
    for row_in, row_out in zip(maze["grid"], answer["grid"]):
        for cell_in, cell_out in zip(row_in, row_out):
            if cell_out != cell_in and not (cell_in == "." and cell_out == "o"):
                return False
    return True


def test_sudoku_table_keeps_givens_and_lets_blanks_take_any_digit():
    table = get_codec("sudoku", {"size": 4}).answer_token_table()
    assert table[1].tolist() == [False, False, True, True, True, True]  # blank → any digit
    assert table[3].tolist() == [False, False, False, True, False, False]  # given 2 stays 2
    assert table[0].tolist() == [True, False, False, False, False, False]


def test_maze_table_keeps_walls_start_and_goal_and_lets_open_cells_join_the_path():
    table = get_codec("maze", {"size": 5}).answer_token_table()
    wall, open_, start, goal, path = 1, 2, 3, 4, 5
    assert np.flatnonzero(table[open_]).tolist() == [open_, path]
    for fixed in (wall, start, goal):
        assert np.flatnonzero(table[fixed]).tolist() == [fixed]


def test_constrained_argmax_picks_the_best_allowed_token_not_the_best_token():
    table = torch.tensor([[True, False, False], [False, True, True], [False, False, True]])
    logits = torch.tensor([[[9.0, 1.0, 2.0], [9.0, 1.0, 2.0], [0.0, 5.0, 1.0]]])
    tokens = torch.tensor([[0, 1, 2]])
    assert constrained_argmax(logits, tokens, table).tolist() == [[0, 2, 2]]
    assert constrained_argmax(logits, tokens).tolist() == [[0, 0, 1]]


@pytest.mark.parametrize("size", [4, 6, 9])
def test_an_untrained_sudoku_model_still_keeps_every_given(size):
    codec = get_codec("sudoku", {"size": size})
    puzzles = [inp for inp, _ in codec.generate(np.random.default_rng(size), 24)]
    with one_torch_thread():
        answers = solve_inputs(untrained(codec), codec, puzzles, views=1)
    assert all(isinstance(a, ModelAnswer) for a in answers)  # every cell decodes to a digit
    assert all(keeps_sudoku_givens(p, a.output) for p, a in zip(puzzles, answers))


def test_an_untrained_maze_model_never_moves_a_wall_start_or_goal():
    codec = get_codec("maze", {"size": 9})
    mazes = ENCLOSED_MAZES + [inp for inp, _ in codec.generate(np.random.default_rng(1), 20)]
    with one_torch_thread():
        answers = solve_inputs(untrained(codec), codec, mazes, views=1)
    assert all(keeps_maze_fixed_cells(m, a.output) for m, a in zip(mazes, answers))


def test_the_shipped_maze_module_keeps_the_enclosing_wall_of_mazes_unlike_its_training_data():
    package = open_package(MAZE_9X9)
    with one_torch_thread():
        answers = solve_inputs(package.load_model(), package.codec(), ENCLOSED_MAZES, views=1)
    assert all(keeps_maze_fixed_cells(m, a.output) for m, a in zip(ENCLOSED_MAZES, answers))


def test_evaluation_scores_the_decoding_every_solving_path_uses():
    codec = get_codec("sudoku", {"size": 4})
    data = encode_pairs(codec, codec.generate(np.random.default_rng(2), 32, min_givens=15, max_givens=15))
    model = untrained(codec)
    # One blank each: a right answer needs only the blank's digit, which the table leaves free.
    constrained = evaluate(model, data, answer_table=codec.answer_token_table())
    unconstrained = evaluate(model, data)
    assert unconstrained.accuracy_all_steps == 0.0
    assert constrained.accuracy_all_steps > 0.0


def test_trm_solve_answers_within_the_input(tmp_path):
    inputs = tmp_path / "mazes.jsonl"
    inputs.write_text("".join(json.dumps(m) + "\n" for m in ENCLOSED_MAZES))
    result = CliRunner().invoke(app, ["solve", str(MAZE_9X9), "--input", str(inputs), "--output", "-", "--views", "1"])
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == len(ENCLOSED_MAZES)
    assert all(keeps_maze_fixed_cells(m, a["output"]) for m, a in zip(ENCLOSED_MAZES, answers))


def test_the_host_answers_within_the_input(tmp_path):
    codec = get_codec("sudoku", {"size": 4})
    puzzles = [inp for inp, _ in codec.generate(np.random.default_rng(3), 6)]
    with one_torch_thread():
        build_package(
            untrained(codec, seed=5),
            codec,
            name="sudoku-4x4",
            version="1.0.0",
            out_path=tmp_path / "sudoku-4x4-1.0.0.trm",
            examples=[(puzzles[0], None)],
            allow_failing_examples=True,
            title="4x4",
        )
    host = Host(
        [FolderSource(tmp_path)],
        plugin_manager=build_plugin_manager(paths=""),
        memory_budgets={"cpu": 1 << 30},
        cpu_threads=1,
        views=1,
    )
    with host:
        host.swap("sudoku-4x4", "1.0.0")
        answers = [host.solve("sudoku-4x4", puzzle) for puzzle in puzzles]
    assert all(keeps_sudoku_givens(p, a.output) for p, a in zip(puzzles, answers))


def test_the_onnx_export_decodes_within_the_input(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from trm_modules.package.onnx_export import export_onnx

    codec = get_codec("sudoku", {"size": 4})
    puzzles = [inp for inp, _ in codec.generate(np.random.default_rng(4), 8)]
    with one_torch_thread():
        path = build_package(
            untrained(codec, seed=6),
            codec,
            name="sudoku-4x4",
            version="1.0.0",
            out_path=tmp_path / "p.trm",
            examples=[(p, None) for p in puzzles],
            allow_failing_examples=True,
            title="4x4",
        )
        onnx_path = export_onnx(open_package(path), tmp_path / "p.onnx")
    tokens = np.stack([codec.encode_input(p) for p in puzzles]).astype(np.int64)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    answer, _ = session.run(None, {"tokens": tokens, "puzzle_ids": np.zeros(len(tokens), dtype=np.int64)})
    assert all(keeps_sudoku_givens(p, codec.decode_output(a, p)) for p, a in zip(puzzles, answer))
