"""`trm` commands of the host area: `trm plugins`."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from ..plugins import get_plugin_manager

console = Console()


def plugins(as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table.")) -> None:
    """List every plugin: where it came from (builtin, entry point of a distribution, file path), its hooks, its errors."""
    infos = get_plugin_manager().plugin_infos()
    if as_json:
        typer.echo(json.dumps([asdict(info) for info in infos]))
        return
    table = Table(title="trm_modules plugins")
    for column in ("name", "origin", "from", "hooks", "errors"):
        table.add_column(column)
    for info in infos:
        hooks = ", ".join(info.hooks) if info.load_error is None else f"[red]failed to load: {info.load_error}[/red]"
        table.add_row(info.name, info.origin, info.source, hooks, str(info.errors))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("plugins")(plugins)
