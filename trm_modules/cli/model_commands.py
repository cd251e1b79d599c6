"""`trm` commands of the model area: model-info, train, eval."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..model import PRESETS, TRM, TRMConfig, count_parameters

console = Console()


def model_info(
    preset: Optional[str] = typer.Option(None, help=f"A named configuration: {', '.join(PRESETS)}."),
    config: Optional[str] = typer.Option(None, help="Path to a JSON file holding a TRMConfig."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Show a TRM configuration and its parameter count (puzzle-embedding table excluded, as the paper counts)."""
    if (preset is None) == (config is None):
        raise typer.BadParameter("give exactly one of --preset or --config")
    if preset is not None:
        if preset not in PRESETS:
            raise typer.BadParameter(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        cfg = PRESETS[preset]
    else:
        with open(config, encoding="utf-8") as fh:
            cfg = TRMConfig.model_validate(json.load(fh))
    model = TRM(cfg)
    info = {
        "parameters": count_parameters(model),
        "puzzle_embedding_parameters": model.puzzle_emb.weight.numel() if cfg.puzzle_emb_ndim else 0,
        "net_applications_per_step": cfg.H_cycles * (cfg.L_cycles + 1),
        "positions": cfg.total_len,
        "config": cfg.model_dump(),
    }
    if as_json:
        typer.echo(json.dumps(info))
        return
    table = Table(title=preset or config, show_header=False)
    for key in ("parameters", "puzzle_embedding_parameters", "net_applications_per_step", "positions"):
        table.add_row(key, f"{info[key]:,}")
    for key, value in info["config"].items():
        table.add_row(key, str(value))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("model-info")(model_info)
