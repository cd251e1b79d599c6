"""Browser boards for every task (``trm_board_view``): the Sudoku, maze and generic grid codecs describe theirs, a
task without one is refused naming the hook, the page's rule check (board.js) judges answers as the codec's
``check`` does, and a maze module becomes a SCORM activity that a learner solves by clicking, validated by ADL's
schemas and run in headless Chromium, answering every puzzle as the server does.

``TRM_SCORM_SCREENSHOTS=folder`` saves a screenshot of the maze activity there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fixtures.browser import FIXTURES, NODE, npm_tools, require_browser, require_xmllint, run_driver, serve_folder
from trm_adapters.scorm import ScormExportError, export_scorm
from trm_adapters.scorm.export import grid_view
from trm_modules.boards import BoardView, NoBoardView, board_view
from trm_modules.package import open_package
from trm_modules.plugins import build_plugin_manager, get_codec
from trm_modules.views import DEFAULT_VIEWS

REPO = Path(__file__).resolve().parents[1]
BOARD_JS = REPO / "adapters" / "scorm" / "board.js"
TRAINED_MAZE = REPO / "registry" / "packages" / "maze-7x7" / "maze-7x7-1.0.0.trm"
MAZE_PUZZLES = 6


# ------------------------------------------------------------------------------- the hook
def test_built_in_tasks_describe_their_boards():
    sudoku = board_view(get_codec("sudoku", {"size": 4}))
    assert (sudoku.rows, sudoku.cols, sudoku.box_rows, sudoku.entry) == (4, 4, 2, "type")
    assert sudoku.labels["2"] == "1" and len(sudoku.rules[0].groups) == 12  # rows, columns, boxes
    maze = board_view(get_codec("maze", {"size": 7}))
    assert (maze.rows, maze.cols, maze.entry, maze.choices) == (7, 7, "click", [2, 5])
    assert maze.rules[0].kind == "shortest-path"


def test_a_task_without_a_board_is_refused_naming_the_hook():
    without_boards = build_plugin_manager(entry_points=False, paths="")
    with pytest.raises(NoBoardView, match=r"trm_board_view\(codec\) hook"):
        board_view(get_codec("maze", {"size": 7}), without_boards)
    with pytest.raises(ScormExportError, match="trm_board_view"):
        grid_view(get_codec("maze", {"size": 7}), without_boards)


def test_a_board_that_does_not_fit_the_codec_is_refused(tmp_path):
    plugin = tmp_path / "bad_board.py"
    plugin.write_text(
        "from trm_modules import hookimpl\n\n"
        "@hookimpl\ndef trm_board_view(codec):\n"
        "    return {'rows': 3, 'cols': 3, 'blank_token': 1, 'choices': [2], 'labels': {'2': 'x'}}\n"
    )
    plugins = build_plugin_manager(entry_points=False, paths=str(plugin))
    with pytest.raises(NoBoardView, match="has 3x3 cells, but the codec's sequence has 49 tokens"):
        board_view(get_codec("maze", {"size": 7}), plugins)
    plugin.write_text(
        "from trm_modules import hookimpl\n\n"
        "@hookimpl\ndef trm_board_view(codec):\n"
        "    return {'rows': 7, 'cols': 7, 'blank_token': 1, 'choices': [2], 'labels': {}}\n"
    )
    plugins = build_plugin_manager(entry_points=False, paths=str(plugin))
    with pytest.raises(NoBoardView, match="choice token 2 has no label to type"):
        board_view(get_codec("maze", {"size": 7}), plugins)


# ------------------------------------------------------------------------------- the page's rule check
def js_rule_check(view: BoardView, cases: list[tuple[list[int], list[int]]]) -> list[bool | None]:
    """board.js's followsRules on (input tokens, answer tokens) pairs, run by node."""
    if not NODE:
        require_browser()
    script = (
        f"global.window = {{}};\n{BOARD_JS.read_text()}\n"
        f"const view = {view.model_dump_json()};\nconst cases = {json.dumps(cases)};\n"
        "console.log(JSON.stringify(cases.map(([t, a]) => window.trmBoard.followsRules(view, t, a))));\n"
    )
    run = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def maze_answers(codec, rng: np.random.Generator) -> list[tuple[dict, dict]]:
    """Right answers of generated mazes, and wrong ones: the path cut, a detour cell added, the path removed."""
    cases = []
    for data_in, data_out in codec.generate(rng, 8, placement="random", min_path_length=3):
        cases.append((data_in, data_out))
        grid = [list(row) for row in data_out["grid"]]
        path = [(r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "o"]
        cut = [row[:] for row in grid]
        cut[path[len(path) // 2][0]][path[len(path) // 2][1]] = "."
        cases.append((data_in, {"grid": ["".join(row) for row in cut]}))
        spare = [(r, c) for r, row in enumerate(grid) for c, ch in enumerate(row) if ch == "."]
        if spare:
            extra = [row[:] for row in grid]
            extra[spare[0][0]][spare[0][1]] = "o"
            cases.append((data_in, {"grid": ["".join(row) for row in extra]}))
        cases.append((data_in, data_in))
    return cases


def test_the_pages_rule_check_judges_maze_answers_as_the_codec_does():
    codec = get_codec("maze", {"size": 7})
    cases = maze_answers(codec, np.random.default_rng(3))
    expected = [codec.check(data_in, data_out) for data_in, data_out in cases]
    tokens = [(codec.encode_input(i).tolist(), codec.encode_output(o, i).tolist()) for i, o in cases]
    assert js_rule_check(board_view(codec), tokens) == expected
    assert True in expected and False in expected


def test_the_pages_rule_check_judges_sudoku_answers_as_the_codec_does():
    codec = get_codec("sudoku", {"size": 4})
    cases = []
    for data_in, data_out in codec.generate(np.random.default_rng(5), 6):
        cases.append((data_in, data_out))
        swapped = [row[:] for row in data_out["grid"]]
        swapped[0][0], swapped[0][1] = swapped[0][1], swapped[0][0]
        cases.append((data_in, {"grid": swapped}))
    expected = [codec.check(i, o) for i, o in cases]
    tokens = [(codec.encode_input(i).tolist(), codec.encode_output(o, i).tolist()) for i, o in cases]
    assert js_rule_check(board_view(codec), tokens) == expected
    assert True in expected and False in expected


def test_the_pages_rule_check_judges_grids_smaller_than_their_largest_shape_as_the_codec_does():
    """The padding around a smaller grid is no symbol: the page leaves it out of each group (``ignore``)."""
    codec = get_codec("grid", {"largest_shape": [4, 4], "symbols": "1234", "rules": ["rows", "columns"]})
    cases = []
    for data_in, data_out in codec.generate(np.random.default_rng(6), 8, rows=[2, 3], cols=[2, 4]):
        cases.append((data_in, data_out))
        twice = [row[0] * 2 + row[2:] for row in data_out["grid"]]
        cases.append((data_in, {"grid": twice}))
    expected = [codec.check(i, o) for i, o in cases]
    tokens = [(codec.encode_input(i).tolist(), codec.encode_output(o, i).tolist()) for i, o in cases]
    assert js_rule_check(board_view(codec), tokens) == expected
    assert True in expected and False in expected


# ------------------------------------------------------------------------------- a maze activity
@pytest.fixture(scope="module")
def maze_activity(tmp_path_factory) -> Path:
    """The trained maze-7x7 module exported as a SCORM zip (onnxruntime-web from npm)."""
    if not shutil.which("npm"):
        require_browser()
    return export_scorm(
        open_package(TRAINED_MAZE), tmp_path_factory.mktemp("maze-scorm") / "maze.zip", puzzles=MAZE_PUZZLES
    ).path


def test_a_maze_module_exports_as_scorm_whose_manifest_validates(maze_activity, tmp_path):
    from test_scorm import xmllint_validate

    with zipfile.ZipFile(maze_activity) as zf:
        document = json.loads(zf.read("activity.json"))
        assert "board.js" in zf.namelist()
        zf.extractall(tmp_path)
    assert document["view"]["entry"] == "click" and len(document["views"]) == DEFAULT_VIEWS
    require_xmllint()
    run = xmllint_validate(tmp_path, "imsmanifest.xml")
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def maze_run(maze_activity, tmp_path_factory):
    require_browser()
    site = tmp_path_factory.mktemp("maze-site")
    with zipfile.ZipFile(maze_activity) as zf:
        zf.extractall(site)
    shots = os.environ.get("TRM_SCORM_SCREENSHOTS", "")
    with serve_folder(site) as base:
        return run_driver(
            FIXTURES / "board_driver.cjs",
            {
                "BASE_URL": base,
                "SHOT": str(Path(shots) / "scorm-maze.png") if shots else "",
                "AXE": str(npm_tools() / "axe-core" / "axe.min.js"),
            },
        )


def test_a_learner_solves_a_maze_by_clicking_its_path(maze_run):
    alone = maze_run["alone"]
    assert alone["entry"] == "click" and alone["entered"] > 0 and "shortest path" in alone["instructions"]
    assert "Solved by you" in alone["status"], alone
    assert alone["right"] == alone["entered"] and alone["wrong"] == 0
    assert maze_run["errors"] == []


def test_the_maze_activity_has_no_serious_accessibility_violation(maze_run):
    print("axe violations:", maze_run["axe"])
    assert [v for v in maze_run["axe"] if v["impact"] in ("serious", "critical")] == []


def test_the_module_marks_a_maze_path_in_the_browser(maze_run):
    helped = maze_run["helped"]
    assert helped["state"] == "module-answered", helped
    assert helped["moduleCells"] > 0


def test_the_maze_page_answers_every_puzzle_as_the_server_does(maze_run, maze_activity, tmp_path):
    from trm_modules.host import FolderSource, Host

    with zipfile.ZipFile(maze_activity) as zf:
        document = json.loads(zf.read("activity.json"))
    (tmp_path / "modules").mkdir()
    shutil.copy(TRAINED_MAZE, tmp_path / "modules" / TRAINED_MAZE.name)
    host = Host([FolderSource(tmp_path / "modules")], views=DEFAULT_VIEWS, cpu_threads=1)
    try:
        host.swap("maze-7x7", "1.0.0")
        codec = open_package(TRAINED_MAZE).codec()
        assert len(maze_run["answers"]) == MAZE_PUZZLES
        for puzzle, page in zip(document["puzzles"], maze_run["answers"]):
            server = host.solve("maze-7x7", puzzle["input"])
            assert codec.decode_output(np.array(page["tokens"]), puzzle["input"]) == server.output
            assert (page["views"], page["steps"], page["valid"]) == (server.views, server.steps, server.valid)
    finally:
        host.close()


def test_the_lti_grade_counts_cells_to_fill_and_takes_points_back_for_wrong_marks():
    from trm_adapters.lti.activity import grade

    # A 1x5 maze row S . . . G with blank (open) token 2 and path token 5: the solution marks cells 1 and 3 only.
    puzzle = {"tokens": [3, 2, 2, 2, 4], "solution_tokens": [3, 5, 2, 5, 4], "module_cells": []}
    right = grade(puzzle, 2, [3, 5, 2, 5, 4])
    assert (right.blanks, right.earned, right.extra, right.success, right.scaled) == (2, 2, 0, True, 1.0)
    everything = grade(puzzle, 2, [3, 5, 5, 5, 4])  # marking every open cell is not solving it
    assert (everything.earned, everything.extra, everything.success, everything.scaled) == (2, 1, False, 0.5)
    helped = grade({**puzzle, "module_cells": [1, 2, 3]}, 2, [3, 5, 2, 5, 4])
    assert (helped.earned, helped.by_module, helped.success) == (0, 2, False)


def test_a_maze_module_exports_as_a_cmi5_course_with_the_same_board(tmp_path):
    from trm_adapters.cmi5.export import export_cmi5

    if not shutil.which("npm"):
        require_browser()
    report = export_cmi5(open_package(TRAINED_MAZE), tmp_path / "maze-cmi5.zip", puzzles=2)
    with zipfile.ZipFile(report.path) as zf:
        page = zf.read("index.html").decode()
        document = json.loads(zf.read("activity.json"))
        assert {"cmi5.xml", "board.js", "cmi5.js"} <= set(zf.namelist())
    assert '<script src="board.js" defer></script>' in page and "scorm.js" not in page
    assert document["view"]["entry"] == "click" and document["codec"] == "maze"
