"""``trm new task`` and ``trm codec check``: registered through the ``trm_register_commands`` hook.

Entry point ``authoring = "trm_adapters.authoring.commands"`` in the ``trm_modules`` group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from trm_modules import hookimpl
from trm_modules.cli.errors import fail

console = Console()
MARKS = {"pass": "✓", "fail": "✗", "skip": "-"}


def new_task(
    name: str = typer.Argument(..., help="The task's name: the codec's name and the Python package's suffix."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The folder to write the distribution into (new or empty)."
    ),
    size: int = typer.Option(5, help="The side of the example task's Latin squares (the recipe's default)."),
) -> None:
    """Write a plugin distribution for a new task: pyproject with the entry point, a codec with encode/decode/
    check/generate and answer-preserving transforms, a browser board, a recipe, tests that pass, a README."""
    from .scaffold import scaffold_task

    try:
        files = scaffold_task(name, output, size=size)
    except Exception as exc:  # noqa: BLE001 - the CLI's one error path
        fail(exc)
    for path in files:
        console.print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"next: cd {output} && pip install -e '.[test]' && trm codec check {name} && python -m pytest "
        f"(or TRM_PLUGINS={output / 'src' / f'trm_task_{name}' / 'plugin.py'} trm codec check {name})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def codec_check(
    name: str = typer.Argument(..., help="The codec's name (as a manifest's task.codec names it)."),
    params: Optional[str] = typer.Option(
        None, help="The codec's parameters as JSON, e.g. '{\"size\": 5}' (default: its defaults)."
    ),
    difficulty: Optional[str] = typer.Option(None, help="Keyword arguments of generate() as JSON."),
    seed: int = typer.Option(0, help="Seed of the pairs and transforms drawn."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run the task-codec contract checks (schemas, generate, encode/decode round trip, rule check, answer-token
    table, transforms keep answers right, browser board) and print pass/fail per check; exit 1 if any fails."""
    from trm_modules.errors import InputError

    from .contract import check_codec

    try:
        try:
            parsed = json.loads(params) if params else {}
            parsed_difficulty = json.loads(difficulty) if difficulty else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"--params and --difficulty take JSON objects: {exc}") from exc
        results = check_codec(name, parsed, seed=seed, difficulty=parsed_difficulty)
    except Exception as exc:  # noqa: BLE001 - the CLI's one error path
        fail(exc)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in results]))
    else:
        for result in results:
            console.print(
                f"{MARKS[result.status]} {result.name}: {result.status} — {result.detail}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    failed = [r.name for r in results if r.status == "fail"]
    if failed:
        console.print(
            f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}", highlight=False, markup=False
        )
        raise typer.Exit(1)
    passed = sum(r.status == "pass" for r in results)
    console.print(
        f"codec {name!r} keeps the contract: {passed} passed, {len(results) - passed} skipped",
        highlight=False,
        markup=False,
    )


@hookimpl
def trm_register_commands(cli: typer.Typer) -> None:
    """Add ``trm new task`` and ``trm codec check``."""
    new = typer.Typer(
        help="Start something new: `trm new task NAME -o DIR` scaffolds a task plugin.", no_args_is_help=True
    )
    new.command("task")(new_task)
    cli.add_typer(new, name="new")
    codec = typer.Typer(help="Task codecs: `trm codec check NAME` runs the contract checks.", no_args_is_help=True)
    codec.command("check")(codec_check)
    cli.add_typer(codec, name="codec")
