"""`trm privacy …`: a learner's personal data across the core and every plugin (``trm_modules.store.privacy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TRMError
from ..settings import Settings
from .errors import fail
from .store_commands import DB_HELP

LEARNER_HELP = (
    "The learner: a pseudonym (as platforms send it), an xAPI agent (mailto:ann@example.com, "
    "account:<homePage>|<name>) or an LTI user (lti:<user id>)."
)


def _service(db: Optional[str], journal: Optional[Path]):  # type: ignore[no-untyped-def]
    from ..store import Store
    from ..store.privacy import PrivacyService

    store = Store(Settings(db_url=db).db)
    paths = None if journal is None else [journal, journal.with_name(journal.stem + ".rejected.jsonl")]
    return PrivacyService(store, journal_paths=paths)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    privacy = typer.Typer(help="Learners' personal data: what is kept, export, erasure, expiry.", no_args_is_help=True)
    app.add_typer(privacy, name="privacy")
    journal_option = typer.Option(None, "--journal", help="The recorder's journal file, if not the default one.")

    @privacy.command("declare")
    def declare(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """What the core and each plugin keep about learners, and why."""
        try:
            service = _service(db, None)
        except TRMError as exc:
            fail(exc)
        document = {name: [vars(item) for item in items] for name, items in service.declarations().items()}
        typer.echo(json.dumps(document, indent=2, default=list))

    @privacy.command("export")
    def export(
        learner: str = typer.Argument(..., help=LEARNER_HELP),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the JSON document here (default: stdout)."),
        journal: Optional[Path] = journal_option,
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Everything kept about one learner, as one JSON document."""
        try:
            report = _service(db, journal).export(learner)
        except TRMError as exc:
            fail(exc)
        text = json.dumps(report.document, indent=2, ensure_ascii=False, default=str)
        if out is None:
            typer.echo(text)
        else:
            out.write_text(text + "\n", encoding="utf-8")
            typer.echo(f"wrote {out} (request {report.request_id})")

    @privacy.command("erase")
    def erase(
        learner: str = typer.Argument(..., help=LEARNER_HELP),
        journal: Optional[Path] = journal_option,
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Remove everything kept about one learner (every table, journal, dead letters, outbox); idempotent."""
        try:
            report = _service(db, journal).erase(learner)
        except TRMError as exc:
            fail(exc)
        typer.echo(json.dumps({"request": report.request_id, "removed": report.counts}, indent=2))

    @privacy.command("expire")
    def expire(
        older_than: str = typer.Option(..., "--older-than", help="e.g. 365d, 12w, 48h."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Remove personal data recorded longer ago than --older-than, in the core and every plugin."""
        from ..store.privacy import parse_duration

        try:
            report = _service(db, None).expire(parse_duration(older_than))
        except TRMError as exc:
            fail(exc)
        typer.echo(json.dumps({"request": report.request_id, "removed": report.counts}, indent=2))
