"""`trm trial …`: policies that end a module's trial (its canary) by themselves (``trm_modules.store.trial_policy``).

``trm trial policy set|show|clear`` store the policy per module and course (what ``PUT/GET/DELETE
/v1/admin/modules/{name}/trial-policy`` do); ``trm trial evaluate`` evaluates the running trials once and
ends those a policy decides (``trm serve`` does it by itself); ``trm trial decisions`` lists the trials
policies ended and why.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Optional

import typer
from pydantic import ValidationError

from ..errors import TRMError
from ..settings import Settings
from .errors import fail
from .store_commands import DB_HELP

COURSE_HELP = "The course whose learners decide (default: every course)."


def _store(db: Optional[str]):  # type: ignore[no-untyped-def]
    from ..store import Store

    return Store(Settings(db_url=db).db)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    trial = typer.Typer(help="Trials (canaries) that end by themselves under an analysis policy.", no_args_is_help=True)
    policy_app = typer.Typer(help="The analysis policy of a module (and course).", no_args_is_help=True)
    app.add_typer(trial, name="trial")
    trial.add_typer(policy_app, name="policy")

    @policy_app.command("set")
    def policy_set(
        module: str = typer.Argument(..., help="The module, e.g. maze-9x9."),
        course: Optional[str] = typer.Option(None, "--course", help=COURSE_HELP),
        min_effect: float = typer.Option(0.05, "--min-effect", help="Smallest difference in accuracy worth acting on."),
        alpha: float = typer.Option(0.05, "--alpha", help="Error rate of the decision (always-valid)."),
        accuracy_not_worse_by: Optional[float] = typer.Option(
            0.0, "--accuracy-not-worse-by", help="Guardrail: roll back once accuracy is surely worse by more than this."
        ),
        latency_p99_max_ratio: Optional[float] = typer.Option(
            1.5,
            "--latency-p99-max-ratio",
            help="Guardrail: roll back if the candidate's p99 latency exceeds this × the baseline's.",
        ),
        no_accuracy_guardrail: bool = typer.Option(
            False, "--no-accuracy-guardrail", help="Turn the accuracy guardrail off."
        ),
        no_latency_guardrail: bool = typer.Option(
            False, "--no-latency-guardrail", help="Turn the latency guardrail off."
        ),
        min_latency_solves: int = typer.Option(
            100, "--min-latency-solves", help="Solves each side needs before the latency guardrail."
        ),
        max_verdicts: Optional[int] = typer.Option(
            None, "--max-verdicts", help="Pause for a person when still inconclusive after this many verdicts."
        ),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Store (or replace) the policy that ends MODULE's trial: promote when the candidate is better and the
        guardrails hold, roll back when it is worse or a guardrail breaks."""
        from ..store.trial_policy import PolicySettings, set_policy

        try:
            settings = PolicySettings(
                alpha=alpha,
                min_effect=min_effect,
                accuracy_not_worse_by=None if no_accuracy_guardrail else accuracy_not_worse_by,
                latency_p99_max_ratio=None if no_latency_guardrail else latency_p99_max_ratio,
                min_latency_solves=min_latency_solves,
                max_verdicts=max_verdicts,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            raise typer.BadParameter(error["msg"], param_hint="--" + str(error["loc"][0]).replace("_", "-")) from None
        try:
            stored = set_policy(
                _store(db), module, settings, course=course, by=f"cli {socket.gethostname()}:{os.getpid()}"
            )
        except TRMError as exc:
            fail(exc)
        typer.echo(stored.model_dump_json(indent=2))

    @policy_app.command("show")
    def policy_show(
        module: Optional[str] = typer.Argument(None, help="The module (default: every module's policies)."),
        course: Optional[str] = typer.Option(None, "--course", help="Only the policy of this course."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """The stored policies (of MODULE; with --course, that course's)."""
        from ..store.trial_policy import get_policy, list_policies

        try:
            store = _store(db)
            if module is not None and course is not None:
                found = get_policy(store, module, course)
                policies = [found] if found is not None else []
            else:
                policies = list_policies(store, module)
        except TRMError as exc:
            fail(exc)
        if not policies:
            typer.echo(
                "no trial policy" + (f" for {module}" if module else "") + (f" in {course}" if course else ""), err=True
            )
            raise typer.Exit(3)
        typer.echo(json.dumps([p.model_dump(mode="json") for p in policies], indent=2))

    @policy_app.command("clear")
    def policy_clear(
        module: str = typer.Argument(..., help="The module."),
        course: Optional[str] = typer.Option(None, "--course", help=COURSE_HELP),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Remove the policy of MODULE (in --course): its trial then ends only by an admin."""
        from ..store.trial_policy import clear_policy

        try:
            removed = clear_policy(_store(db), module, course)
        except TRMError as exc:
            fail(exc)
        if not removed:
            typer.echo(f"no trial policy for {module}" + (f" in {course}" if course else " (every course)"), err=True)
            raise typer.Exit(3)
        typer.echo(f"removed the trial policy of {module}" + (f" in {course}" if course else " (every course)"))

    @trial.command("evaluate")
    def evaluate(
        module: Optional[str] = typer.Argument(None, help="Only this module (default: every module with a policy)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only say what the policies say; change nothing."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Evaluate the running trials that have a policy, once, and end those it decides (every `trm serve`
        on the store follows within its routing poll)."""
        from ..store.routing import RoutingTable
        from ..store.trial_policy import evaluate_trials

        try:
            store = _store(db)
            table = RoutingTable(store, f"cli {socket.gethostname()}:{os.getpid()}")
            result = evaluate_trials(store, table, modules={module} if module else None, act=not dry_run)
        except TRMError as exc:
            fail(exc)
        for outcome in result.outcomes:
            course = outcome.comparison.course or "every course"
            typer.echo(
                f"{outcome.module} {outcome.candidate} vs {outcome.baseline} ({course}): {outcome.action} - "
                + "; ".join(outcome.reasons)
            )
        for decision in result.decisions:
            typer.echo(f"{decision.module}: {decision.action} {decision.candidate} (decision {decision.id})")
        for name, error in result.errors.items():
            typer.echo(f"{name}: not evaluated: {error}", err=True)
        if not result.outcomes and not result.errors:
            typer.echo("no running trial has a policy")

    @trial.command("decisions")
    def decisions(
        module: Optional[str] = typer.Argument(None, help="Only this module."),
        limit: int = typer.Option(20, "--limit", min=1),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """The trials policies ended, newest first: action, reasons and the figures they read (JSON)."""
        from ..store.trial_policy import trial_decisions

        try:
            found = trial_decisions(_store(db), module, limit=limit)
        except TRMError as exc:
            fail(exc)
        typer.echo(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
