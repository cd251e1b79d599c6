"""Admin routes of trial policies: ``PUT/GET/DELETE /v1/admin/modules/{name}/trial-policy?course=C``
(``trm_modules.store.trial_policy``; the same calls as ``trm trial policy set|show|clear``).

A module's trial is its canary; the policy decides when it ends (promote or roll back, on every replica).
Setting or clearing one needs an admin token of every course: its decision changes the module for all of
them. Reading one needs the course.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from ..store.trial_policy import (
    PolicyOutcome,
    PolicySettings,
    StoredPolicy,
    TrialDecision,
    clear_policy,
    evaluate_policy,
    get_policy,
    running_trial,
    set_policy,
    trial_decisions,
)
from .auth import require_course, require_every_course, require_scope, token_grant
from .problems import Problem

COURSE_QUERY = Query(None, description="The course whose learners decide (absent: every course).")


class RunningTrial(BaseModel):
    """The module's trial now: its canary against the active version."""

    baseline: str
    candidate: str
    share: float
    since: datetime | None
    revision: int = Field(description="The routing revision (ETag of the admin routing routes).")


class TrialPolicyResponse(BaseModel):
    """A stored policy, the trial it watches (if one runs), what it would do now, and the trials it ended."""

    module: str
    course: str | None
    policy: PolicySettings
    updated_at: datetime
    updated_by: str
    trial: RunningTrial | None = None
    evaluation: PolicyOutcome | None = Field(
        None, description="What the policy says of the running trial now (continue, pause, promote, rollback)."
    )
    decisions: list[TrialDecision] = Field(default_factory=list, description="Trials of the module policies ended.")


POLICY_EXAMPLE: dict[str, Any] = {
    "module": "maze-9x9",
    "course": "logic-101",
    "policy": PolicySettings.model_json_schema()["examples"][0],
    "updated_at": "2026-12-06T09:00:00Z",
    "updated_by": "admin token ops",
    "trial": {"baseline": "1.0.0", "candidate": "1.2.0", "share": 0.5, "since": "2026-12-06T08:00:00Z", "revision": 7},
    "evaluation": None,
    "decisions": [
        {
            "id": "5b0c1e0f7f3a4c8e9d2b6a1f0e3d4c5b",
            "module": "maze-9x9",
            "course": "logic-101",
            "baseline": "1.0.0",
            "candidate": "1.1.0",
            "action": "rollback",
            "routing_revision": 4,
            "applied_revision": 5,
            "reasons": ["guardrail latency p99: 91.0 ms > 1.5 x 40.2 ms of 1.0.0"],
            "evidence": {"comparison": {"decision": "inconclusive", "p_value": 0.4}, "latency_p99_ms": {}},
            "policy": {"course": "logic-101", "min_effect": 0.05, "latency_p99_max_ratio": 1.5},
            "decided_at": "2026-12-01T10:12:00Z",
            "decided_by": "replica-a:8000",
        }
    ],
}


def _who(request: Request) -> str:
    grant = token_grant(request)
    return f"admin token {grant.name}" if grant is not None and grant.name else "admin"


def _response(request: Request, stored: StoredPolicy, evaluate: bool) -> TrialPolicyResponse:
    runtime = request.app.state.runtime
    routing = runtime.routing.table.get(stored.module)
    trial = running_trial(routing) if routing is not None else None
    running = evaluation = None
    if routing is not None and trial is not None:
        state = routing.state
        running = RunningTrial(
            baseline=trial[0],
            candidate=trial[1],
            share=state.canary_share,
            since=state.canary_since,
            revision=routing.revision,
        )
        if evaluate and not (stored.course is not None and stored.course in state.pins):
            evaluation = evaluate_policy(
                runtime.store, stored.module, *trial, stored.policy, revision=routing.revision, since=state.canary_since
            )
    return TrialPolicyResponse(
        module=stored.module,
        course=stored.course,
        policy=PolicySettings.model_validate(stored.policy.model_dump(exclude={"course"})),
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        trial=running,
        evaluation=evaluation,
        decisions=trial_decisions(runtime.store, stored.module, limit=20),
    )


def _known_module(request: Request, name: str) -> None:
    runtime = request.app.state.runtime
    if name in {s.name for s in runtime.host.modules()} or name in {e.name for e in runtime.registry.list()}:
        return
    raise Problem(404, "not-found", "No such module", f"module {name!r} is neither published nor served here")


def writing_course(request: Request, course: str | None = COURSE_QUERY) -> str | None:
    """The course of a policy being set or removed; refused (403) for a token limited to courses, before the
    body is read: a policy's decision changes the module for every course."""
    require_every_course(request, "a trial policy (its decision changes the module for every course)")
    return course


def reading_course(request: Request, course: str | None = COURSE_QUERY) -> str | None:
    """The course of a policy being read, if this token may see it (403 otherwise)."""
    if course is None:
        require_every_course(request, "the trial policy of every course")
    else:
        require_course(request, course, "this trial policy")
    return course


def trial_routes() -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_scope("admin"))])

    @router.put(
        "/modules/{name}/trial-policy",
        response_model=TrialPolicyResponse,
        summary="Set the analysis policy that ends the module's trial (canary) by itself: promote or roll back "
        "on every replica, with the reasons recorded",
        responses={
            200: {"content": {"application/json": {"example": POLICY_EXAMPLE}}},
            404: {"description": "No such module."},
        },
    )
    def put_policy(
        request: Request, name: str, body: PolicySettings, course: str | None = Depends(writing_course)
    ) -> TrialPolicyResponse:
        _known_module(request, name)
        stored = set_policy(request.app.state.runtime.store, name, body, course=course, by=_who(request))
        return _response(request, stored, evaluate=False)

    @router.get(
        "/modules/{name}/trial-policy",
        response_model=TrialPolicyResponse,
        summary="The module's trial policy (for a course), the running trial, what the policy says of it now, "
        "and the trials it ended",
        responses={
            200: {"content": {"application/json": {"example": POLICY_EXAMPLE}}},
            404: {"description": "No policy for this module and course."},
        },
    )
    def get_trial_policy(
        request: Request,
        name: str,
        course: str | None = Depends(reading_course),
        evaluate: bool = Query(True, description="Evaluate the running trial now (read only)."),
    ) -> TrialPolicyResponse:
        stored = get_policy(request.app.state.runtime.store, name, course)
        if stored is None:
            raise Problem(
                404,
                "not-found",
                "No trial policy",
                f"module {name!r} has no trial policy for "
                + (f"course {course!r}" if course else "every course")
                + f"; set one with PUT /v1/admin/modules/{name}/trial-policy",
            )
        return _response(request, stored, evaluate)

    @router.delete(
        "/modules/{name}/trial-policy",
        status_code=204,
        summary="Remove the module's trial policy (for a course): its trial then ends only by an admin",
        responses={404: {"description": "No policy for this module and course."}},
    )
    def delete_policy(request: Request, name: str, course: str | None = Depends(writing_course)) -> Response:
        if not clear_policy(request.app.state.runtime.store, name, course):
            raise Problem(404, "not-found", "No trial policy", f"module {name!r} has no trial policy to remove")
        return Response(status_code=204)

    return router
