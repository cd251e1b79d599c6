"""`trm` commands of the model area: model-info, train, eval."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import TRMError
from ..model import count_parameters
from ..views import DEFAULT_VIEWS
from .errors import fail

console = Console()


def model_info(
    architecture: str = typer.Option("trm", help="The architecture (built in: trm, hrm; plugins add others)."),
    preset: Optional[str] = typer.Option(
        None, help="A named configuration of the architecture (e.g. paper-sudoku-attn, paper-hrm-sudoku)."
    ),
    config: Optional[str] = typer.Option(None, help="Path to a JSON file holding the architecture's config."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Show an architecture's configuration and its parameter count (puzzle-embedding table excluded, as the
    papers count)."""
    import torch

    from ..plugins import get_architecture

    if (preset is None) == (config is None):
        raise typer.BadParameter("give exactly one of --preset or --config")
    cfg: Any
    try:
        arch = get_architecture(architecture)
        if preset is not None:
            if preset not in arch.presets:
                raise typer.BadParameter(
                    f"unknown {architecture} preset {preset!r}; choose from {', '.join(arch.presets) or '(none)'}"
                )
            cfg = arch.presets[preset]
        else:
            with open(str(config), encoding="utf-8") as fh:
                cfg = arch.config(json.load(fh))
    except TRMError as exc:
        fail(exc)
    with torch.device("meta"):  # shapes only: counting needs no memory or random init
        model = arch.build(cfg)
    puzzle = getattr(model, "puzzle_emb", None)
    info: dict[str, Any] = {
        "architecture": arch.name,
        "parameters": count_parameters(model),
        "puzzle_embedding_parameters": puzzle.weight.numel() if puzzle is not None else 0,
        "positions": cfg.total_len,
        "config": cfg.model_dump(),
    }
    if hasattr(cfg, "mlp_t"):  # TRM: T·(n+1) applications of its one network per supervision step
        info["net_applications_per_step"] = cfg.H_cycles * (cfg.L_cycles + 1)
    if as_json:
        typer.echo(json.dumps(info))
        return
    table = Table(title=preset or config, show_header=False)
    for key in ("parameters", "puzzle_embedding_parameters", "net_applications_per_step", "positions"):
        if key in info:
            table.add_row(key, f"{info[key]:,}")
    for key, value in info["config"].items():
        table.add_row(key, str(value))
    console.print(table)


def _parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects KEY=VALUE (e.g. train.steps=100), got {item!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def train_command(
    recipe: str = typer.Argument(..., help="Recipe TOML (e.g. registry/recipes/sudoku-4x4.toml)."),
    out: str = typer.Option(None, "-o", "--out", help="Run directory to write (default: runs/<recipe name>)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda when present)."),
    resume: bool = typer.Option(False, help="Continue from the run directory's checkpoint."),
    init_from: Optional[str] = typer.Option(
        None,
        "--init-from",
        metavar="PACKAGE",
        help="Continue from a package: its EMA weights, step count and (packed with --training-state) live "
        "weights and optimiser moments; the learning-rate schedule continues at its step.",
    ),
    trusted_keys: Optional[str] = typer.Option(
        None, "--trusted-keys", help="With --init-from: the package must be signed by a key in this folder."
    ),
    max_minutes: Optional[float] = typer.Option(
        None,
        "--max-minutes",
        min=0,
        help="End this sitting after M minutes (the schedule still plans train.steps); the run directory is "
        "written as at the end, ready for `trm pack --training-state`.",
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set train.steps=200."),
    data_files: list[str] = typer.Option(
        [],
        "--data",
        metavar="FILE",
        help="Train on this data file (repeatable; added to the recipe's [data] files): *.jsonl of {input, output}, "
        "the TRM/HRM authors' *.csv (source,q,a,rating) or ARC *_challenges.json. Every row is checked by "
        "the task's codec; the package records each file's name, SHA-256 and row count.",
    ),
    threads: Optional[int] = typer.Option(
        None,
        "--threads",
        min=1,
        help="Intra-op CPU threads (default: every core; recorded in the package's hardware line).",
    ),
    precision: Optional[str] = typer.Option(
        None,
        "--precision",
        help="fp32, bf16 (autocast; fp32 master weights "
        "and EMA) or auto (bf16 on CUDA only); default: the recipe's "
        "train.precision.",
    ),
) -> None:
    """Train a TRM from a recipe with deep supervision; writes a run directory for `trm pack`.

    Runs unchanged under `torchrun --nproc-per-node N -m trm_modules.cli train RECIPE`.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..train import Trainer, load_recipe
    from ..lifecycle.continuation import load_package_start

    import torch

    from ..model.precision import all_cores

    torch.set_num_threads(threads or all_cores())
    try:
        parsed = _parse_overrides(overrides)
        if precision is not None:
            parsed["train.precision"] = precision
        spec = load_recipe(recipe, parsed, data_files=data_files)
        out_dir = out or f"runs/{spec.name}"
        start = load_package_start(init_from, trusted_keys) if init_from else None
        doing = (
            f"reading and checking {len(spec.data.files) + len(spec.data.heldout_files)} data file(s)"
            if spec.data.from_files
            else f"generating {spec.data.train_puzzles} + {spec.data.test_puzzles} puzzles"
        )
        with console.status(doing):
            trainer = Trainer(
                spec,
                out_dir,
                device=device,
                recipe_path=recipe,
                init_from=start,
                overrides=parsed,
                data_args=data_files,
            )
    except TRMError as exc:
        fail(exc)
    if trainer.dist.is_main:
        continuing = f", continuing {start.source} at step {start.step}" if start else ""
        console.print(
            f"[bold]{spec.name}[/]: {count_parameters(trainer.model):,} parameters on {trainer.device}, "
            f"{spec.train.steps} steps, batch {spec.train.batch_size}{continuing}, "
            f"{torch.get_num_threads()} thread(s), {trainer.precision} → {out_dir}"
        )
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.1%}  {task.fields[sps]:.1f} steps/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not trainer.dist.is_main) as progress:
        task = progress.add_task("train", total=spec.train.steps, completed=trainer.step, loss=0.0, acc=0.0, sps=0.0)

        def show(p) -> None:
            progress.update(task, completed=p.step, loss=p.loss, acc=p.accuracy, sps=p.steps_per_s)
            if not console.is_terminal and p.step % 100 == 0:  # logs redirected to a file get a line per 100 steps
                progress.console.print(
                    f"step {p.step}/{p.total}: loss {p.loss:.3f}, train exact {p.accuracy:.1%}, "
                    f"{p.steps_per_s:.2f} steps/s"
                )
            if p.eval is not None:
                progress.console.print(
                    f"step {p.step}: held-out exact {p.eval.accuracy_halting:.2%} with halting "
                    f"({p.eval.mean_steps_halting:.2f} steps), {p.eval.accuracy_all_steps:.2%} at {len(p.eval.per_step_accuracy)} steps"
                )

        report = trainer.run(
            resume=resume, on_progress=show, max_seconds=None if max_minutes is None else max_minutes * 60
        )
    if report is not None:
        _print_report(report)
        console.print(
            f"run written to {out_dir}; package it with `trm pack {out_dir} --name {spec.name} --version {spec.version}`"
        )


def _print_report(report) -> None:
    table = Table(title=f"exact answers on {report.puzzles} held-out puzzles")
    table.add_column("steps", justify="right")
    table.add_column("accuracy", justify="right")
    for i, acc in enumerate(report.per_step_accuracy, 1):
        table.add_row(str(i), f"{acc:.2%}")
    table.add_row("halting", f"{report.accuracy_halting:.2%} ({report.mean_steps_halting:.2f} steps)")
    console.print(table)


def eval_command(
    source: str = typer.Argument(..., help="A run directory (from `trm train`), a .trm package, or NAME[@SPEC]."),
    puzzles: int = typer.Option(1000, help="Freshly generated held-out puzzles to evaluate on."),
    seed: int = typer.Option(12345, help="Generator seed of the evaluation set."),
    difficulty: Optional[str] = typer.Option(None, help="Generator settings as JSON, e.g. '{\"min_givens\": 4}'."),
    max_steps: Optional[int] = typer.Option(None, help="Supervision steps (default: the model's halt_max_steps)."),
    out: str = typer.Option(".", "-o", "--out", help="Folder for accuracy_vs_steps.png and halting_steps.png."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when present)."),
    views: int = typer.Option(
        DEFAULT_VIEWS,
        min=1,
        help="Also judge answers by the task's rules as `trm solve` gives "
        "them: halting, up to this many test-time views.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Exact-answer accuracy at each supervision step, with halting; writes PNG plots."""
    from pathlib import Path

    import numpy as np

    from ..train import evaluate, plot_report
    from ..train.evaluate import rule_check_report
    from ..train.data import encode_pairs
    from ..train.trainer import pick_device

    dev = str(pick_device(device))
    try:
        if Path(source).is_dir():
            from ..train.run_dir import load_run

            model, codec = load_run(source, dev)
        else:
            from ..package.registry import find_package

            pkg = find_package(source)
            model, codec = pkg.load_model(device=dev), pkg.codec()
        settings = json.loads(difficulty) if difficulty else {}
        with console.status(f"generating {puzzles} puzzles"):
            pairs = codec.generate(np.random.default_rng(seed), puzzles, **settings)
            data = encode_pairs(codec, pairs)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--difficulty is not JSON: {exc}") from None
    except TRMError as exc:
        fail(exc)
    report = evaluate(model, data, max_steps=max_steps, device=dev, answer_table=codec.answer_token_table())
    ruled = rule_check_report(model, codec, [inp for inp, _ in pairs], views=views)
    paths = plot_report(report, Path(out), title=Path(source).name)
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "rule_check": ruled.to_json() if ruled else None}))
    else:
        _print_report(report)
        if ruled is not None:
            console.print(
                f"valid by the task's rules, as `trm solve` answers (halting, up to {views} views): "
                f"{ruled.valid:.2%}, {ruled.mean_views:.2f} views and {ruled.mean_steps:.2f} steps per puzzle"
            )
        console.print("plots: " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.command("model-info")(model_info)
    app.command("train")(train_command)
    app.command("eval")(eval_command)
