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
    return _parse_moment(value, "--since")


def _parse_moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2025-01-31 or 2025-01-31T12:00:00+00:00)",
            param_hint=option,
        ) from None
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
    def db_backup(
        output: Path = typer.Option(..., "-o", "--output", help="The backup file to write (0600)."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Back up every table of the store (core and plugins) while it serves: SQLite's online backup API,
        or pg_dump of its PostgreSQL schema."""
        from ..store.backup import backup_store

        try:
            report = backup_store(Settings(db_url=db).db, output)
        except TRMError as exc:
            fail(exc)
        typer.echo(
            f"backed up {len(report.rows)} tables, {report.total:,} rows ({report.dialect}) to {report.path}: "
            + ", ".join(f"{name} {count}" for name, count in report.rows.items())
        )

    @db_app.command("restore")
    def db_restore(
        backup: Path = typer.Argument(..., help="A file written by `trm db backup`."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Replace the store's content with a backup (PostgreSQL: in one transaction). Stop the servers first."""
        from ..store.backup import restore_store

        try:
            report = restore_store(backup, Settings(db_url=db).db)
        except TRMError as exc:
            fail(exc)
        typer.echo(
            f"restored {len(report.rows)} tables, {report.total:,} rows ({report.dialect}) from {backup}: "
            + ", ".join(f"{name} {count}" for name, count in report.rows.items())
        )

    @app.command("logs")
    def logs(
        module: Optional[str] = typer.Option(None, "--module", help="Only solves of this module."),
        course: Optional[str] = typer.Option(None, "--course", help="Only solves from this course."),
        outcome: Optional[str] = typer.Option(None, "--outcome", help="correct, incorrect or unknown."),
        limit: int = typer.Option(20, "--limit", min=1, help="How many solves, newest first."),
        as_json: bool = typer.Option(False, "--json", help="One JSON document per line."),
        dead_letter: bool = typer.Option(
            False,
            "--dead-letter",
            help="Instead: items the database refused "
            "for good (bad encoding, too long, a constraint), with the reason.",
        ),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
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
                typer.echo(
                    f"{solve.created_at:%Y-%m-%d %H:%M:%S}  {solve.id}  {solve.module}@{solve.version}  "
                    f"course={solve.course or '-'}  steps={solve.steps}  conf={solve.confidence:.3f}  "
                    f"{solve.latency_ms:.1f} ms  {solve.device}  {solve.outcome}"
                )

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
                typer.echo(
                    json.dumps(
                        {
                            "created_at": letter.created_at.isoformat(),
                            "type": letter.item_type,
                            "id": letter.item_id,
                            "reason": letter.reason,
                            "entry": letter.entry,
                        }
                    )
                )
            else:
                typer.echo(
                    f"{letter.created_at:%Y-%m-%d %H:%M:%S}  {letter.item_type:<8}  {letter.item_id}  {letter.reason}"
                )

    @app.command("stats")
    def stats(
        module: str = typer.Argument(..., help="Module name."),
        course: Optional[str] = typer.Option(None, "--course", help="Only this course."),
        cohort: Optional[str] = typer.Option(None, "--cohort", help="Only this cohort (section) of learners."),
        since: Optional[str] = typer.Option(
            None, "--since", help="Only solves at or after this ISO time (UTC if no zone)."
        ),
        until: Optional[str] = typer.Option(None, "--until", help="Only solves before this ISO time."),
        by: Optional[list[str]] = typer.Option(
            None,
            "--by",
            help="Group by version, course, cohort, day or "
            "week (repeat or comma-separate; version "
            "and course unless one is named).",
        ),
        compare: Optional[tuple[str, str]] = typer.Option(
            None,
            "--compare",
            metavar="BASELINE CANDIDATE",
            help="Compare two versions (in --course, --cohort): the difference in accuracy with its "
            "interval, an always-valid p-value clustered by learner, and a decision.",
        ),
        as_csv: bool = typer.Option(False, "--csv", help="Print the table as CSV."),
        table: str = typer.Option(
            "groups",
            "--table",
            help="With --csv: which table of the report "
            "(groups, ratings, calibration, reliability, "
            "failures, outcomes).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """How a module fares: accuracy with its 95 % interval, learners, ratings, latency per version × course.

        With no option, the overall, per-version and per-course summary; with --course, --cohort,
        --since, --until, --by or --csv, the report of the dashboard and of GET /v1/modules/{name}/stats;
        with --compare A B, the comparison of GET /v1/modules/{name}/compare.
        """
        window = (_parse_moment(since, "--since"), _parse_moment(until, "--until"))
        if as_csv and as_json:
            raise typer.BadParameter("choose one of --csv and --json", param_hint="--csv")
        if compare is not None:
            _compare(module, compare, course, cohort, window, as_csv, as_json, db)
        elif any(value is not None for value in (course, cohort, since, until, by)) or as_csv:
            _report(module, course, cohort, window, by, as_csv, table, as_json, db)
        else:
            _summary(module, as_json, db)

    def _summary(module: str, as_json: bool, db: str | None) -> None:
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
        rows = (
            [("all", result.overall)]
            + [(f"version {k}", v) for k, v in result.by_version.items()]
            + [(f"course {k or '-'}", v) for k, v in result.by_course.items()]
        )
        typer.echo(
            f"{'':20} {'solves':>7} {'verdicts':>8} {'accuracy':>8} {'steps':>6} "
            f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        )
        for label, group in rows:
            accuracy = f"{group.accuracy:.3f}" if group.accuracy is not None else "-"
            assert group.latency_ms is not None and group.mean_steps is not None  # groups hold solves
            typer.echo(
                f"{label[:20]:20} {group.solves:7d} {group.with_verdict:8d} {accuracy:>8} "
                f"{group.mean_steps:6.2f} {group.latency_ms.p50:8.1f} {group.latency_ms.p90:8.1f} "
                f"{group.latency_ms.p99:8.1f}"
            )

    def _report(
        module: str,
        course: str | None,
        cohort: str | None,
        window: tuple[datetime | None, datetime | None],
        by: list[str] | None,
        as_csv: bool,
        table: str,
        as_json: bool,
        db: str | None,
    ) -> None:
        from ..store import Store
        from ..store.insights import SECTIONS, TABLES, module_report, report_csv

        if table not in TABLES:
            raise typer.BadParameter(
                f"{table!r} is not a table of the report; expected one of {', '.join(TABLES)}", param_hint="--table"
            )
        if as_csv and table == "groups":
            sections: tuple[str, ...] = ("performance", "ratings")
        elif as_csv:
            sections = ("calibration",) if table == "reliability" else (table,)
        else:
            sections = SECTIONS if as_json else ("performance", "ratings")
        try:
            store = Store(Settings(db_url=db).db)
            report = module_report(
                store, module, course=course, cohort=cohort, since=window[0], until=window[1], by=by, sections=sections
            )
            store.close()
        except TRMError as exc:
            fail(exc)
        if as_csv:
            typer.echo(report_csv(report, table), nl=False)
            return
        if as_json:
            typer.echo(report.model_dump_json(indent=2))
            return
        typer.echo(
            f"{'version':10} {'course':16} {'cohort':10} {'period':10} {'solves':>7} {'learners':>8} "
            f"{'verdicts':>8} {'accuracy':>8} {'95 % interval':>15} {'ratings':>7} {'p50 ms':>7} "
            f"{'p99 ms':>7}"
        )
        for group in report.groups:
            accuracy, interval = "-", ""
            if group.accuracy is not None:
                accuracy = f"{group.accuracy:.3f}"
                interval = f"[{group.accuracy_low:.3f}, {group.accuracy_high:.3f}]"
            latency = [
                f"{v:7.1f}" if v is not None else f"{'-':>7}" for v in (group.latency_p50_ms, group.latency_p99_ms)
            ]
            typer.echo(
                f"{(group.version or '*')[:10]:10} {(group.course or '-')[:16]:16} "
                f"{(group.cohort or '-')[:10]:10} {(group.period or '-'):10} {group.solves:7d} "
                f"{group.learners:8d} {group.verdicts:8d} {accuracy:>8} {interval:>15} "
                f"{group.ratings or 0:7d} {latency[0]} {latency[1]}"
            )

    def _compare(
        module: str,
        versions: tuple[str, str],
        course: str | None,
        cohort: str | None,
        window: tuple[datetime | None, datetime | None],
        as_csv: bool,
        as_json: bool,
        db: str | None,
    ) -> None:
        from ..store import Store
        from ..store.comparison import compare_versions, comparison_csv, trial_start

        baseline, candidate = versions
        try:
            store = Store(Settings(db_url=db).db)
            since = window[0] or trial_start(store, module, baseline, candidate)
            result = compare_versions(
                store, module, baseline, candidate, course=course, cohort=cohort, since=since, until=window[1]
            )
            store.close()
        except TRMError as exc:
            fail(exc)
        if as_csv:
            typer.echo(comparison_csv(result), nl=False)
            return
        if as_json:
            typer.echo(result.model_dump_json(indent=2))
            return
        where = f" in {course}" if course else " in every course"
        typer.echo(
            f"{module}: {candidate} against {baseline}{where}"
            + (f", cohort {cohort}" if cohort else "")
            + (f", since {result.since.isoformat()}" if result.since else "")
        )
        for arm in (result.baseline, result.candidate):
            accuracy = (
                f"{arm.accuracy:.3f} [{arm.accuracy_low:.3f}, {arm.accuracy_high:.3f}]"
                if arm.accuracy is not None
                else "-"
            )
            typer.echo(f"  {arm.version:12} {arm.learners:6d} learners {arm.verdicts:7d} verdicts  accuracy {accuracy}")
        if result.difference is not None:
            interval = (
                f" (95 % [{result.difference_low:+.3f}, {result.difference_high:+.3f}], clustered by learner)"
                if result.difference_low is not None
                else ""
            )
            typer.echo(f"  difference {result.difference:+.3f}{interval}")
        typer.echo(f"  always-valid p-value {result.p_value:.4g} (alpha {result.alpha})")
        needed = (
            f", about {result.verdicts_needed} more verdicts needed"
            if result.verdicts_needed is not None and result.decision == "inconclusive"
            else ""
        )
        typer.echo(f"  decision: {result.decision}{needed}")
        if result.sample_ratio.mismatch:
            typer.echo(
                f"  sample ratio mismatch: candidate share {result.sample_ratio.observed_candidate_share:.3f}, "
                f"expected {result.sample_ratio.expected_candidate_share:.3f} (p "
                f"{result.sample_ratio.p_value:.2g}); find the cause before trusting these figures"
            )
        if result.excluded_learners:
            typer.echo(f"  {result.excluded_learners} learners answered by both versions were left out")

    @feedback_app.command("export")
    def feedback_export(
        module: str = typer.Argument(..., help="Module name."),
        out: Path = typer.Option(..., "-o", "--out", help="Directory for train.jsonl and data_card.json."),
        since: Optional[str] = typer.Option(None, "--since", help="Only solves at or after this ISO time."),
        codec: Optional[str] = typer.Option(None, "--codec", help="Task codec (default: the installed package's)."),
        codec_params: Optional[str] = typer.Option(None, "--codec-params", help="JSON parameters of --codec."),
        solver_labels: bool = typer.Option(
            True,
            "--solver-labels/--no-solver-labels",
            help="Label failures nobody corrected with the codec's solver (off: labels only from "
            "corrections and confirmations).",
        ),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
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
            summary = export_feedback_dataset(
                store, module, out, since=moment, codec=task_codec, solver_labels=solver_labels
            )
            store.close()
        except TRMError as exc:
            fail(exc)
        counts = ", ".join(f"{source} {n}" for source, n in summary.counts.items())
        typer.echo(f"wrote {summary.total} examples ({counts}) to {summary.train_path}; card {summary.data_card_path}")
