"""Every ``trm`` command the README shows, run as written, in README order, in one scratch folder (a
newcomer following the README top to bottom).

Commands that train, serve until interrupted or need a network are parsed against the CLI instead
of run (each with its reason below); everything else must exit 0.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from trm_modules.cli import app
from trm_modules.errors import TRMError
from trm_modules.host import Host
from trm_modules.package import DirectoryRegistry, locate_package
from trm_modules.plugins import build_plugin_manager
from trm_modules.store import StorePlugin

ROOT = Path(__file__).resolve().parents[1]

#: Command (first word after ``trm``) → why the test parses it instead of running it.
PARSED_ONLY = {
    "serve": "serves until interrupted (tests/test_server_e2e.py runs it)",
    "train": "a real training run takes minutes",
    "eval": "evaluates a training run",
    "pack": "packs a training run; the registry's sudoku-4x4 1.0.0 stands in for its output",
    "retrain": "a real training run",
    "promote": "promotes the version retrain makes",
    "rollback": "rolls back that promotion",
    "export-onnx": "exports and checks against onnxruntime for 20-40 s (tests/test_package_onnx.py runs it)",
    "export-scorm": "vendors onnxruntime-web from the npm registry (tests/test_scorm.py runs it)",
}
#: Parsed-only commands whose first argument names a package: that name must still resolve.
TAKES_A_PACKAGE = {"export-onnx", "export-scorm"}
PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b")


def readme_commands() -> list[str]:
    """``trm …`` lines of the README's bash blocks and inline ``trm …`` spans, in README order.

    An inline span naming a command with just one of its options (``trm solve --views``) or with an
    ellipsis (``trm train …``) is a mention, not a command.
    """
    text = (ROOT / "README.md").read_text()
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        body = re.sub(r"\\\n\s*", " ", block.group(1))  # a backslash ending a line continues it, as in the shell
        for offset, line in enumerate(body.splitlines()):
            if line.startswith("trm "):
                found.append((block.start(1) + offset, line.split("  #")[0].strip()))
    for span in re.finditer(r"`(trm [^`…]+)`", text):
        for command in span.group(1).split("&&"):
            words = command.split()
            if len(words) > 3 or (len(words) == 3 and not words[2].startswith("-")):
                found.append((span.start(), command.strip()))
    found.sort(key=lambda item: item[0])  # stable: a chain's commands keep their order
    return [re.sub(r"\s*\[[^\]]*\]", "", command) for _, command in found]  # [--optional flags] dropped


COMMANDS = readme_commands()


def parse(args: list[str]) -> None:
    """Parse ``args`` against the CLI (sub-groups included) without running anything."""
    command: click.Command = typer.main.get_command(app)
    parent = None
    name = "trm"
    while True:
        ctx = command.make_context(name, list(args), parent=parent)
        if not isinstance(command, click.Group):
            return
        name, command, args = command.resolve_command(ctx, ctx._protected_args + ctx.args)
        parent = ctx


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder with a copy of the registry, the README's input file and its stand-in package."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "registry", folder / "registry")
    published = json.loads((folder / "registry" / "index.json").read_text())["modules"]["sudoku-4x4"]["versions"]
    shutil.copy(folder / "registry" / published["1.0.0"]["file"], folder / "sudoku-4x4-1.0.0.trm")
    puzzles = [
        {"grid": [[1, 0, 0, 0], [0, 0, 3, 0], [0, 4, 0, 0], [0, 0, 0, 2]]},
        {"grid": [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]},
    ]
    (folder / "puzzles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in puzzles))
    record_served_traffic(folder, puzzles)
    return folder


def record_served_traffic(folder: Path, puzzles: list[dict]) -> None:
    """Solves and feedback in the store, standing in for what ``trm serve`` records (``trm stats`` reads them)."""
    plugin = StorePlugin.open(str(folder / "store.sqlite3"), journal_path=folder / "journal.jsonl")
    pm = build_plugin_manager(paths="")
    pm.register(plugin)
    with Host([DirectoryRegistry(folder / "registry")], plugin_manager=pm, cpu_threads=1) as host:
        host.swap("sudoku-4x4", "1.0.0")
        context = {"course": "logic-101", "learner": "p-42"}
        for puzzle in puzzles:
            answer = host.solve("sudoku-4x4", puzzle, context)
            host.feedback({"solve_id": answer.solve_id, "kind": "correct" if answer.valid else "incorrect"})
    plugin.close()


def test_the_readme_shows_the_commands_a_newcomer_needs():
    shown = {shlex.split(command)[1] for command in COMMANDS}
    assert {"serve", "solve", "inspect", "verify", "export-onnx", "install", "train", "export-scorm"} <= shown


def test_every_readme_command_works_as_written_in_readme_order(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TRM_REGISTRY", str(workdir / "registry"))
    monkeypatch.setenv("TRM_HOME", str(workdir / "home"))
    monkeypatch.setenv("TRM_DB_URL", f"sqlite:///{workdir / 'store.sqlite3'}")
    failures = []
    for command in COMMANDS:
        args = shlex.split(command)[1:]
        if args[0] in PARSED_ONLY or PLACEHOLDER.search(command):
            try:
                parse(args)
                if args[0] in TAKES_A_PACKAGE:
                    locate_package(args[1])
            except click.ClickException as exc:
                failures.append(f"{command}: does not parse: {exc.format_message()}")
            except TRMError as exc:
                failures.append(f"{command}: {type(exc).__name__}: {exc}")
            continue
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0:
            failures.append(f"{command}: exit {result.exit_code}: {result.output.strip()} {result.exception!r}")
    assert failures == []
