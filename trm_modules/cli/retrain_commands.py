"""`trm` commands of the retraining loop: retrain, promote, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import TRMError
from ..settings import Settings
from .errors import fail

console = Console()
REGISTRY_HELP = "Registry folder (default: $TRM_REGISTRY, else the repository's registry/)."


def _registry(path: str | None):
    from ..package.registry import DirectoryRegistry, default_registry

    return DirectoryRegistry(path) if path else default_registry()


def _split(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition("@")
    if not sep or not version:
        raise typer.BadParameter(f"expected MODULE@VERSION (e.g. sudoku-4x4@1.1.0), got {ref!r}")
    return name, version


def retrain_command(
    module: str = typer.Argument(..., help="Module name; its active version in the registry is the parent."),
    from_feedback: bool = typer.Option(
        False, "--from-feedback", help="Export the module's feedback from the store first."
    ),
    feedback_dir: Optional[str] = typer.Option(
        None, help="Use an existing export (a folder with train.jsonl) instead."
    ),
    since: Optional[str] = typer.Option(None, help="With --from-feedback: only solves at or after this ISO time."),
    steps: int = typer.Option(500, help="Fine-tuning optimiser steps."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: the recipe's)."),
    version: Optional[str] = typer.Option(None, help="Version of the successor (default: parent's minor + 1)."),
    db: Optional[str] = typer.Option(
        None, "--db", help="Store URL or SQLite path (default: $TRM_DB_URL or the user data dir)."
    ),
    registry: Optional[str] = typer.Option(None, help=REGISTRY_HELP),
    out: Optional[str] = typer.Option(None, "-o", "--out", help="Run directory (default: runs/<module>-<version>)."),
    publish: bool = typer.Option(False, help="Publish the successor to the registry when it is not worse."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when present)."),
    recipe: Optional[str] = typer.Option(
        None,
        "--recipe",
        help="Recipe TOML to fine-tune with (default: the one the parent package embeds, "
        "provenance.recipe_toml); its model section must build the parent's network.",
    ),
    allow_failing_examples: bool = typer.Option(
        False,
        "--allow-failing-examples",
        help="Pack the successor even if it solves none of its run's examples (its self-test then fails).",
    ),
) -> None:
    """Fine-tune a module on real-world feedback mixed with its recipe's data; pack it only if it is not worse.

    Old and new are compared on the recipe's held-out puzzles and on a hold-out of the feedback.
    Make the successor active with `trm promote MODULE@VERSION` (or the server's admin API).
    """
    from ..lifecycle.retrain import bump_minor, retrain
    from ..train import load_recipe

    try:
        reg = _registry(registry)
        parent = reg.open(module, reg.active_version(module))
        new_version = version or bump_minor(parent.manifest.version)
        out_dir = Path(out or f"runs/{module}-{new_version}")
        if from_feedback:
            from ..store import Store
            from ..store.export import export_feedback_dataset
            from .store_commands import _parse_since

            summary = export_feedback_dataset(
                Store(Settings(db_url=db).db),
                module,
                out_dir / "feedback",
                since=_parse_since(since),
                codec=parent.codec(),
            )
            feedback_dir = str(out_dir / "feedback")
            console.print(f"exported {summary.total} feedback examples: {summary.counts}")
        with console.status(f"fine-tuning {module}@{parent.manifest.version} for {steps} steps"):
            result = retrain(
                parent,
                feedback_dir,
                out_dir,
                steps=steps,
                version=new_version,
                device=device,
                lr=lr,
                recipe=load_recipe(recipe) if recipe else None,
                allow_failing_examples=allow_failing_examples,
            )
    except TRMError as exc:
        fail(exc)
    table = Table(title=f"{module}: {result.parent_version} → {result.version}")
    table.add_column("held-out set")
    table.add_column("old", justify="right")
    table.add_column("new", justify="right")
    table.add_row(
        "recipe's generated puzzles", f"{result.original_heldout['old']:.2%}", f"{result.original_heldout['new']:.2%}"
    )
    if result.feedback_examples["held_out"]:
        table.add_row(
            f"feedback hold-out ({result.feedback_examples['held_out']})",
            f"{result.feedback_heldout['old']:.2%}",
            f"{result.feedback_heldout['new']:.2%}",
        )
    console.print(table)
    if not result.accepted:
        console.print(f"[red]not packed[/]: {result.reason}")
        raise typer.Exit(2)
    console.print(f"packed {result.package_path}")
    if publish:
        entry = reg.publish(result.package_path)
        console.print(
            f"published {entry.name}@{entry.version}; activate with `trm promote {entry.name}@{entry.version}`"
        )


def promote_command(
    ref: str = typer.Argument(..., help="MODULE@VERSION to make active."),
    registry: Optional[str] = typer.Option(None, help=REGISTRY_HELP),
) -> None:
    """Make a published version the active one (hosts started from this registry serve it)."""
    name, version = _split(ref)
    try:
        entry = _registry(registry).promote(name, version)
    except TRMError as exc:
        fail(exc)
    console.print(f"{entry.name}@{entry.version} is active ({entry.digest})")


def rollback_command(
    module: str = typer.Argument(..., help="Module name."),
    registry: Optional[str] = typer.Option(None, help=REGISTRY_HELP),
) -> None:
    """Re-activate the version that was active before the last promote."""
    try:
        entry = _registry(registry).rollback(module)
    except TRMError as exc:
        fail(exc)
    console.print(f"rolled back: {entry.name}@{entry.version} is active")


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
