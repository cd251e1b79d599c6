"""``trm export-scorm``: registered through the ``trm_register_commands`` hook, like any plugin's command.

Entry point ``scorm = "trm_adapters.scorm.commands"`` in the ``trm_modules`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from trm_modules import hookimpl
from trm_modules.cli.errors import fail

console = Console()


def export_scorm(
    package: str = typer.Argument(..., help="A .trm file, or NAME[@SPEC] of an installed or published module."),
    output: Path = typer.Option(..., "--output", "-o", help="The SCORM zip to write."),
    puzzles: int = typer.Option(5, help="Puzzles in the activity (drawn by the task's generator)."),
    seed: int = typer.Option(0, help="Seed of the puzzle draw."),
    max_steps: Optional[int] = typer.Option(
        None,
        help="Supervision steps at most (the page halts earlier, as the server "
        "does); default: the model's halt_max_steps.",
    ),
    views: int = typer.Option(8, help="Test-time views the page may try when the task's rules reject an answer."),
    npm_cache: Optional[Path] = typer.Option(
        None, help="Where onnxruntime-web is npm-installed (default: user cache)."
    ),
) -> None:
    """Write a SCORM 2004 4th-edition package: a web activity running the module in the browser."""
    from trm_modules.package.registry import find_package

    from .export import export_scorm as export

    try:
        pkg = find_package(package)
        report = export(pkg, output, puzzles=puzzles, seed=seed, max_steps=max_steps, npm_cache=npm_cache, views=views)
    except Exception as exc:  # noqa: BLE001 - the CLI's one error path: one line, exit status by class
        fail(exc)
    console.print(
        f"wrote {report.path} ({report.size:,} bytes): {pkg.name} {pkg.version}, {report.puzzles} puzzles, "
        f"onnxruntime-web {report.onnxruntime_web_version}",
        highlight=False,
    )


@hookimpl
def trm_register_commands(cli: typer.Typer) -> None:
    """Add ``trm export-scorm``."""
    cli.command("export-scorm")(export_scorm)
