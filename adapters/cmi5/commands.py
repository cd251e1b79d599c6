"""``trm export-cmi5``: registered through the ``trm_register_commands`` hook (entry point ``cmi5``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from trm_modules import hookimpl
from trm_modules.cli.errors import fail

console = Console()


def export_cmi5(
    package: str = typer.Argument(..., help="A .trm file, or NAME[@SPEC] of an installed or published module."),
    output: Path = typer.Option(..., "--output", "-o", help="The cmi5 course zip to write."),
    puzzles: int = typer.Option(5, help="Puzzles in the AU (drawn by the task's generator)."),
    seed: int = typer.Option(0, help="Seed of the puzzle draw."),
    mastery_score: float = typer.Option(0.8, help="Share of the cells the learner must earn alone to pass."),
    views: int = typer.Option(8, help="Test-time views the page may try when the task's rules reject an answer."),
    npm_cache: Optional[Path] = typer.Option(None, help="Where npm packages are installed (default: user cache)."),
) -> None:
    """Write a cmi5 course package: cmi5.xml and one AU running the module in the browser."""
    from trm_modules.package.registry import find_package

    from .export import export_cmi5 as export

    try:
        pkg = find_package(package)
        report = export(
            pkg, output, puzzles=puzzles, seed=seed, npm_cache=npm_cache, views=views, mastery_score=mastery_score
        )
    except Exception as exc:  # noqa: BLE001 - the CLI's one error path: one line, exit status by class
        fail(exc)
    console.print(
        f"wrote {report.path} ({report.size:,} bytes): {pkg.name} {pkg.version}, one AU ({report.au_id}), "
        f"{report.puzzles} puzzles",
        highlight=False,
    )


@hookimpl
def trm_register_commands(cli: typer.Typer) -> None:
    """Add ``trm export-cmi5``."""
    cli.command("export-cmi5")(export_cmi5)
