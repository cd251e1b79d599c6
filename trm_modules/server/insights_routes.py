"""The report, comparison and learner-outcome routes: thin shells over ``store.insights``,
``store.comparison`` and the recorder.

- ``GET /v1/modules/{name}/stats``: how a module fares per version × course (× cohort, day or
  week) in a window; ``format=csv`` (with ``table=``) gives one table as ``text/csv``.
- ``GET /v1/modules/{name}/compare``: candidate against baseline in one course, with a decision
  that stays valid under continuous monitoring.
- ``POST /v1/outcomes``: a learner's own result, idempotent by id like feedback (202 once durable,
  200 for an id already stored).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ModuleNotFound
from ..records import ID_MAX, NAME_MAX, OutcomeRecord, Text, new_id
from ..store import StoreError, StoreUnavailable
from ..store.comparison import Comparison, compare_versions, trial_start
from ..store.insights import SECTIONS, TABLES, ModuleReport, module_report, report_csv
from ..store.models import LearnerOutcome
from .acknowledge import IdClaims, RecentIds, acknowledged
from .auth import require_course, require_scope, token_grant
from .intake import DURABLE_TIMEOUT_S, store_unavailable
from .problems import Problem, invalid_document

CSV_MEDIA_TYPE = "text/csv"

STATS_EXAMPLE: dict[str, Any] = {
    "module": "maze-9x9",
    "filters": {
        "course": "logic-101",
        "cohort": None,
        "since": "2026-11-01T00:00:00Z",
        "until": None,
        "by": ["version", "course"],
    },
    "groups": [
        {
            "version": "1.0.0",
            "course": "logic-101",
            "cohort": None,
            "period": None,
            "solves": 201,
            "learners": 41,
            "verdicts": 172,
            "correct": 143,
            "accuracy": 0.8314,
            "accuracy_low": 0.7686,
            "accuracy_high": 0.8797,
            "valid_rate": 0.93,
            "ratings": 58,
            "rating_mean": 0.41,
            "steps_mean": 2.3,
            "steps_p50": 2.0,
            "steps_p90": 4.0,
            "latency_p50_ms": 18.2,
            "latency_p90_ms": 31.0,
            "latency_p99_ms": 55.4,
        },
        {
            "version": "1.2.0",
            "course": "logic-101",
            "cohort": None,
            "period": None,
            "solves": 197,
            "learners": 39,
            "verdicts": 168,
            "correct": 154,
            "accuracy": 0.9167,
            "accuracy_low": 0.8646,
            "accuracy_high": 0.9497,
            "valid_rate": 0.97,
            "ratings": 58,
            "rating_mean": 0.62,
            "steps_mean": 2.1,
            "steps_p50": 2.0,
            "steps_p90": 3.0,
            "latency_p50_ms": 17.9,
            "latency_p90_ms": 29.5,
            "latency_p99_ms": 49.0,
        },
    ],
    "ratings": [{"version": "1.2.0", "course": "logic-101", "value": 1.0, "count": 31}],
    "calibration": [{"version": "1.2.0", "verdicts": 168, "ece": 0.043}],
    "reliability": [
        {
            "version": "1.2.0",
            "bin_low": 0.9,
            "bin_high": 1.0,
            "verdicts": 120,
            "mean_confidence": 0.96,
            "accuracy": 0.95,
        }
    ],
    "failures": [
        {
            "version": "1.2.0",
            "input_digest": "9f2c…",
            "failures": 4,
            "incorrect": 4,
            "invalid": 0,
            "solves": 5,
            "example_solve_id": "3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11",
            "input": {"grid": [[0, 1], [1, 0]]},
        }
    ],
    "outcomes": [
        {
            "course": "logic-101",
            "asked": True,
            "version": "1.2.0",
            "outcomes": 37,
            "learners": 37,
            "score_mean": 0.81,
            "score_low": 0.75,
            "score_high": 0.87,
            "successes": 33,
            "with_success": 37,
            "success_rate": 0.89,
            "success_low": 0.75,
            "success_high": 0.96,
        }
    ],
}

COMPARE_EXAMPLE: dict[str, Any] = {
    "module": "maze-9x9",
    "course": "logic-101",
    "cohort": None,
    "metric": "accuracy",
    "baseline": {
        "version": "1.0.0",
        "learners": 41,
        "solves": 201,
        "verdicts": 172,
        "correct": 143,
        "accuracy": 0.8314,
        "accuracy_low": 0.7686,
        "accuracy_high": 0.8797,
        "outcome_learners": 38,
        "outcome_mean": 0.71,
    },
    "candidate": {
        "version": "1.2.0",
        "learners": 39,
        "solves": 197,
        "verdicts": 168,
        "correct": 154,
        "accuracy": 0.9167,
        "accuracy_low": 0.8646,
        "accuracy_high": 0.9497,
        "outcome_learners": 36,
        "outcome_mean": 0.78,
    },
    "difference": 0.0853,
    "difference_low": 0.0081,
    "difference_high": 0.1625,
    "sequential_low": -0.0412,
    "sequential_high": 0.2118,
    "p_value": 0.31,
    "alpha": 0.05,
    "min_effect": 0.05,
    "decision": "inconclusive",
    "verdicts_needed": 420,
    "excluded_learners": 0,
    "sample_ratio": {
        "expected_candidate_share": 0.5,
        "observed_candidate_share": 0.4875,
        "p_value": 0.82,
        "mismatch": False,
    },
    "outcome": {"difference": 0.07, "low": -0.01, "high": 0.15, "p_value": 0.09},
}


class OutcomeRequest(BaseModel):
    """A learner's own result on an activity; posting the same ``id`` again changes nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "quiz-7/u-17/attempt-1",
                    "learner": "a1b2c3",
                    "course": "logic-101",
                    "activity": "quiz-7",
                    "score": 8,
                    "max_score": 10,
                    "success": True,
                    "solve_ids": ["3f0c3f9e-5d2f-4c55-9a3c-0d3b7f0b8a11"],
                },
                {"learner": "d4e5f6", "course": "logic-101", "activity": "quiz-7", "score": 0.4, "success": False},
            ]
        },
    )

    id: Text | None = Field(
        None,
        min_length=1,
        max_length=ID_MAX,
        description="Your id for this result (idempotency key); generated when absent.",
    )
    learner: Text = Field(
        min_length=1, max_length=NAME_MAX, description="The learner's pseudonym, as in solve contexts."
    )
    course: Text | None = Field(None, max_length=NAME_MAX)
    activity: Text | None = Field(None, max_length=NAME_MAX)
    score: float | None = Field(None, description="Raw score (with max_score), or a scaled score in [-1, 1].")
    max_score: float | None = Field(None, gt=0)
    success: bool | None = None
    solve_ids: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="The solves the learner asked the module for while doing the activity (empty: they did not ask).",
    )


class OutcomeAccepted(BaseModel):
    """The outcome as accepted (``duplicate``: its id was already stored; nothing changed)."""

    id: str
    learner: str
    course: str | None
    duplicate: bool = False


class OutcomeIntake:
    """Takes learner outcomes for one server: idempotent by id, acknowledged once durable."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.recent = RecentIds()
        self.claims = IdClaims()

    async def accept(self, outcome: OutcomeRecord) -> tuple[OutcomeAccepted, bool]:
        """(the accepted outcome, whether it is new); a 503 problem when it cannot be made durable."""
        async with self.claims.claim(outcome.id):
            known = self.recent.get(outcome.id) or await self._stored(outcome.id)
            if known is not None:
                return OutcomeAccepted(id=outcome.id, learner=known[0], course=known[1] or None, duplicate=True), False
            ticket = self.runtime.recorder.record_outcome(outcome)
            await acknowledged([ticket], f"outcome {outcome.id}", DURABLE_TIMEOUT_S)
            self.recent.remember(outcome.id, (outcome.learner, outcome.course))
        return OutcomeAccepted(id=outcome.id, learner=outcome.learner, course=outcome.course), True

    async def _stored(self, outcome_id: str) -> tuple[str, str] | None:
        def select_stored() -> Any:
            with self.runtime.store.session() as session:
                return session.execute(
                    select(LearnerOutcome.learner, LearnerOutcome.course).where(LearnerOutcome.id == outcome_id)
                ).first()

        try:
            row = await run_in_threadpool(select_stored)
        except (StoreUnavailable, SQLAlchemyError):
            return None  # the database is away: new as far as this server knows (the id keeps it stored once)
        return (row[0], row[1]) if row else None


def outcome_intake(request: Request) -> OutcomeIntake:
    """The app's one ``OutcomeIntake`` (made on first use)."""
    state = request.app.state
    intake = getattr(state, "outcome_intake", None)
    if intake is None:
        intake = state.outcome_intake = OutcomeIntake(state.runtime)
    return intake


def _window(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _report_problem(exc: Exception) -> Problem:
    if isinstance(exc, ModuleNotFound):
        return Problem(404, "not-found", "No such module", str(exc))
    if isinstance(exc, StoreUnavailable):
        return store_unavailable(str(exc))
    return invalid_document(str(exc), "?")


def granted_course(request: Request, course: str | None, what: str) -> str | None:
    """The course a report covers: ``course`` if this token may see it (else 403); for a token limited
    to one course and no course named, that course; limited to several, a 403 asking to name one."""
    grant = token_grant(request)
    if course is None and grant is not None and grant.limited and grant.courses and len(grant.courses) == 1:
        return next(iter(grant.courses))
    if course is not None or (grant is not None and grant.limited):
        require_course(request, course, what)
    return course


def insights_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["insights"])

    @router.get(
        "/modules/{name}/stats",
        response_model=ModuleReport,
        dependencies=[Depends(require_scope("read"))],
        summary="How a module fares per version × course (× cohort, day, week): solves, learners, "
        "accuracy with its 95 % Wilson interval, ratings, latency, calibration, failing inputs, "
        "learner outcomes",
        responses={
            200: {
                "content": {
                    "application/json": {"example": STATS_EXAMPLE},
                    CSV_MEDIA_TYPE: {
                        "example": "module,version,course,cohort,period,solves,"
                        "learners,verdicts,correct,accuracy,...\r\n"
                    },
                }
            },
            404: {"description": "No solves of this module are recorded."},
        },
    )
    def stats(
        request: Request,
        name: str,
        course: str | None = Query(None, description="Only this course."),
        cohort: str | None = Query(None, description="Only this cohort (section) of learners."),
        since: datetime | None = Query(
            None, description="Only solves at or after this ISO 8601 time (UTC if no zone)."
        ),
        until: datetime | None = Query(None, description="Only solves before this time."),
        by: list[str] = Query(
            ["version", "course"],
            description="Group by any of version, course, cohort, "
            "day, week (repeat or comma-separate); "
            "version and course unless one is named.",
        ),
        sections: str = Query(
            ",".join(SECTIONS),
            description="Sections besides the groups, comma-separated: "
            + ", ".join(SECTIONS)
            + " (empty: groups only).",
        ),
        format: Literal["json", "csv"] = Query("json", description="csv: one table as text/csv."),
        table: str = Query("groups", description="With format=csv: which table (" + ", ".join(TABLES) + ")."),
    ) -> Any:
        course = granted_course(request, course, "the report")
        wanted = [part.strip() for part in sections.split(",") if part.strip()]
        if format == "csv" and table != "groups" and table not in wanted and table != "reliability":
            wanted.append(table)
        if table == "reliability" and "calibration" not in wanted:
            wanted.append("calibration")
        try:
            report = module_report(
                request.app.state.runtime.store,
                name,
                course=course,
                cohort=cohort,
                since=_window(since),
                until=_window(until),
                by=by,
                sections=wanted,
            )
            if format == "csv":
                return Response(
                    report_csv(report, table),
                    media_type=CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}-{table}.csv"'},
                )
        except (StoreError, ModuleNotFound) as exc:
            raise _report_problem(exc) from exc
        return report

    @router.get(
        "/modules/{name}/compare",
        response_model=Comparison,
        dependencies=[Depends(require_scope("read"))],
        summary="Candidate against baseline in one course: difference in accuracy (and learner outcome) with "
        "its interval, an always-valid p-value clustered by learner, and a decision",
        responses={200: {"content": {"application/json": {"example": COMPARE_EXAMPLE}}}},
    )
    def compare(
        request: Request,
        name: str,
        baseline: str | None = Query(None, description="Required: the version serving now (e.g. 1.0.0)."),
        candidate: str | None = Query(None, description="Required: the version on trial (e.g. 1.2.0)."),
        course: str | None = Query(None, description="The course the trial runs in (default: every course)."),
        cohort: str | None = Query(None),
        since: datetime | None = Query(
            None,
            description="Count solves from this time (default: the start of the running trial of these two "
            "versions, when one runs; else every solve).",
        ),
        until: datetime | None = Query(None),
        alpha: float = Query(0.05, gt=0, lt=1, description="Error rate of the decision."),
        min_effect: float = Query(
            0.05, gt=0, lt=1, description="Smallest difference in accuracy worth acting on (sizes verdicts_needed)."
        ),
        share: float | None = Query(
            None,
            gt=0,
            lt=1,
            description="Share of learners the candidate should get (default: the trial's or canary's).",
        ),
    ) -> Comparison:
        course = granted_course(request, course, "the comparison")  # before anything else is said about it
        if baseline is None or candidate is None:
            missing = "baseline" if baseline is None else "candidate"
            raise invalid_document(
                f"name the two versions to compare with ?baseline=A&candidate=B; {missing} is missing", f"?{missing}"
            )
        try:
            store = request.app.state.runtime.store
            return compare_versions(
                store,
                name,
                baseline,
                candidate,
                course=course,
                cohort=cohort,
                since=_window(since) or trial_start(store, name, baseline, candidate),
                until=_window(until),
                alpha=alpha,
                min_effect=min_effect,
                candidate_share=share,
            )
        except StoreError as exc:
            raise _report_problem(exc) from exc

    @router.post(
        "/outcomes",
        response_model=OutcomeAccepted,
        status_code=202,
        dependencies=[Depends(require_scope("feedback"))],
        summary="A learner's own result on an activity (idempotent by id); 202 once it is durable",
        responses={
            200: {"model": OutcomeAccepted, "description": "This id was already accepted."},
            503: {"description": "The store cannot take it now; retry (Retry-After)."},
        },
    )
    async def outcomes(request: Request, body: OutcomeRequest, response: Response) -> OutcomeAccepted:
        require_course(request, body.course, "the outcome")
        try:
            record = OutcomeRecord(source="api", **{**body.model_dump(exclude_none=True), "id": body.id or new_id()})
        except ValueError as exc:
            raise invalid_document(str(exc).splitlines()[-1] if str(exc) else "invalid outcome", "") from exc
        accepted, new = await outcome_intake(request).accept(record)
        if not new:
            response.status_code = 200
        return accepted

    return router
