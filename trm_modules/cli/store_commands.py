"""`trm` commands of the store area: ``db upgrade|backup|restore``, ``logs``, ``stats``, ``feedback export``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from ..errors import TRMError
from ..settings import Settings
from .errors import fail

DB_HELP = "Store: a SQLAlchemy URL or a SQLite file path (default: $TRM_DB_URL, else a file in the user data dir)."


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time (e.g. 2025-01-31 or "
                                 "2025-01-31T12:00:00+00:00)", param_hint="--since") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    db_app = typer.Typer(help="The usage and feedback store's database.", no_args_is_help=True)
    feedback_app = typer.Typer(help="Feedback recorded in the store.", no_args_is_help=True)
    app.add_typer(db_app, name="db")
    app.add_typer(feedback_app, name="feedback")

    @db_app.command("upgrade")
    def db_upgrade(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Migrate the store's schema to the newest revision shipped with trm-modules."""
        from ..store import Store
        from ..store.database import redacted_url

        try:
            store = Store(Settings(db_url=db).db)
            revision = store.upgrade()
            store.close()
        except TRMError as exc:
            fail(exc)
        typer.echo(f"{redacted_url(store.url)} is at schema revision {revision}")

    @db_app.command("backup")
    def db_backup(output: Path = typer.Option(..., "-o", "--output", help="The backup file to write (0600)."),
                  db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Back up every table of the store (core and plugins) while it serves: SQLite's online backup API,
        or pg_dump of its PostgreSQL schema."""
        from ..store.backup import backup_store

        try:
            report = backup_store(Settings(db_url=db).db, output)
        except TRMError as exc:
            fail(exc)
        typer.echo(f"backed up {len(report.rows)} tables, {report.total:,} rows ({report.dialect}) to {report.path}: "
                   + ", ".join(f"{name} {count}" for name, count in report.rows.items()))

    @db_app.command("restore")
    def db_restore(backup: Path = typer.Argument(..., help="A file written by `trm db backup`."),
                   db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Replace the store's content with a backup (PostgreSQL: in one transaction). Stop the servers first."""
        from ..store.backup import restore_store

        try:
            report = restore_store(backup, Settings(db_url=db).db)
        except TRMError as exc:
            fail(exc)
        typer.echo(f"restored {len(report.rows)} tables, {report.total:,} rows ({report.dialect}) from {backup}: "
                   + ", ".join(f"{name} {count}" for name, count in report.rows.items()))

    @app.command("logs")
    def logs(module: Optional[str] = typer.Option(None, "--module", help="Only solves of this module."),
             course: Optional[str] = typer.Option(None, "--course", help="Only solves from this course."),
             outcome: Optional[str] = typer.Option(None, "--outcome", help="correct, incorrect or unknown."),
             limit: int = typer.Option(20, "--limit", min=1, help="How many solves, newest first."),
             as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
             dead_letter: bool = typer.Option(False, "--dead-letter", help="Instead: items the database refused "
                                              "for good (bad encoding, too long, a constraint), with the reason."),
             db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Recent solves with their outcome from effective feedback (or, with --dead-letter, refused items)."""
        from ..store import Store, recent_solves

        if dead_letter:
            _dead_letters(db, limit, as_json)
            return
        try:
            store = Store(Settings(db_url=db).db)
            solves = recent_solves(store, module=module, course=course, outcome=outcome, limit=limit)  # type: ignore[arg-type]
            store.close()
        except TRMError as exc:
            fail(exc)
        for solve in solves:
            if as_json:
                typer.echo(solve.model_dump_json())
            else:
                typer.echo(f"{solve.created_at:%Y-%m-%d %H:%M:%S}  {solve.id}  {solve.module}@{solve.version}  "
                           f"course={solve.course or '-'}  steps={solve.steps}  conf={solve.confidence:.3f}  "
                           f"{solve.latency_ms:.1f} ms  {solve.device}  {solve.outcome}")

    def _dead_letters(db: str | None, limit: int, as_json: bool) -> None:
        from ..store import Store

        try:
            store = Store(Settings(db_url=db).db)
            letters = store.dead_letters(limit)
            store.close()
        except TRMError as exc:
            fail(exc)
        for letter in letters:
            if as_json:
                typer.echo(json.dumps({"created_at": letter.created_at.isoformat(), "type": letter.item_type,
                                       "id": letter.item_id, "reason": letter.reason, "entry": letter.entry}))
            else:
                typer.echo(f"{letter.created_at:%Y-%m-%d %H:%M:%S}  {letter.item_type:<8}  {letter.item_id}  "
                           f"{letter.reason}")

    @app.command("stats")
    def stats(module: str = typer.Argument(..., help="Module name."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON."),
              db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Accuracy (effective feedback), steps and latency percentiles of a module, by version and course."""
        from ..store import Store, module_stats

        try:
            store = Store(Settings(db_url=db).db)
            result = module_stats(store, module)
            store.close()
        except TRMError as exc:
            fail(exc)
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        if result.modules_with_solves is not None:
            others = ", ".join(result.modules_with_solves) or "none"
            typer.echo(f"no solves of {module} are recorded yet (modules with solves: {others})")
            return
        rows = [("all", result.overall)] + [(f"version {k}", v) for k, v in result.by_version.items()] \
            + [(f"course {k or '-'}", v) for k, v in result.by_course.items()]
        typer.echo(f"{'':20} {'solves':>7} {'verdicts':>8} {'accuracy':>8} {'steps':>6} "
                   f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
        for label, group in rows:
            accuracy = f"{group.accuracy:.3f}" if group.accuracy is not None else "-"
            assert group.latency_ms is not None and group.mean_steps is not None  # groups hold solves
            typer.echo(f"{label[:20]:20} {group.solves:7d} {group.with_verdict:8d} {accuracy:>8} "
                       f"{group.mean_steps:6.2f} {group.latency_ms.p50:8.1f} {group.latency_ms.p90:8.1f} "
                       f"{group.latency_ms.p99:8.1f}")

    @feedback_app.command("export")
    def feedback_export(module: str = typer.Argument(..., help="Module name."),
                        out: Path = typer.Option(..., "-o", "--out", help="Directory for train.jsonl and data_card.json."),
                        since: Optional[str] = typer.Option(None, "--since", help="Only solves at or after this ISO time."),
                        codec: Optional[str] = typer.Option(None, "--codec", help="Task codec (default: the installed package's)."),
                        codec_params: Optional[str] = typer.Option(None, "--codec-params", help="JSON parameters of --codec."),
                        solver_labels: bool = typer.Option(
                            True, "--solver-labels/--no-solver-labels",
                            help="Label failures nobody corrected with the codec's solver (off: labels only from "
                                 "corrections and confirmations)."),
                        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Build a training set from corrections, confirmed answers and solver-fixed failures (--no-solver-labels: none)."""
        from ..plugins import get_codec
        from ..store import Store, export_feedback_dataset

        moment = _parse_since(since)
        try:
            params = json.loads(codec_params) if codec_params else {}
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--codec-params") from None
        try:
            task_codec = get_codec(codec, params) if codec else None
            store = Store(Settings(db_url=db).db)
            summary = export_feedback_dataset(store, module, out, since=moment, codec=task_codec,
                                              solver_labels=solver_labels)
            store.close()
        except TRMError as exc:
            fail(exc)
        counts = ", ".join(f"{source} {n}" for source, n in summary.counts.items())
        typer.echo(f"wrote {summary.total} examples ({counts}) to {summary.train_path}; card {summary.data_card_path}")
