"""Admin routes for learners' personal data: ``/v1/admin/privacy/{export,erase,expire}``
(``trm_modules.store.privacy``; the same requests as ``trm privacy ...``).

The learner travels in the request body, never in the URL, so that no access log keeps it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from .auth import require_every_course, require_scope

LEARNER_DESCRIPTION = (
    "A pseudonym, an xAPI agent (mailto:ann@example.com, account:<homePage>|<name>) or an LTI user (lti:<user id>)."
)


class LearnerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"learner": "mailto:ann@example.com"}]})

    learner: str = Field(min_length=1, max_length=2048, description=LEARNER_DESCRIPTION)


class ExpireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"older_than": "365d"}]})

    older_than: str = Field(min_length=1, max_length=32, description="e.g. 365d, 12w, 48h.")


class PrivacyResult(BaseModel):
    request: str = Field(description="The id of the request's audit row (privacy_audit).")
    removed: dict[str, dict[str, int]] = Field(description="Provider → place → rows removed.")


def _service(request: Request) -> Any:
    from ..store.privacy import PrivacyService

    require_every_course(request, "a privacy request")  # a learner's data spans courses

    runtime = request.app.state.runtime
    journal = runtime.recorder.journal_path
    return PrivacyService(runtime.store, journal_paths=[journal, journal.with_name(journal.stem + ".rejected.jsonl")])


def privacy_routes() -> APIRouter:
    router = APIRouter(prefix="/v1/admin/privacy", tags=["privacy"], dependencies=[Depends(require_scope("admin"))])

    @router.post(
        "/export", summary="Everything kept about one learner, in the core and every plugin (one JSON document)"
    )
    def privacy_export(request: Request, body: LearnerRequest) -> dict[str, Any]:
        request.app.state.runtime.recorder.flush(timeout=30)
        return _service(request).export(body.learner).document  # type: ignore[no-any-return]

    @router.post(
        "/erase",
        response_model=PrivacyResult,
        summary="Remove everything kept about one learner (tables, journal, dead letters, outbox); idempotent",
    )
    async def privacy_erase(request: Request, body: LearnerRequest) -> PrivacyResult:
        def erase() -> PrivacyResult:
            request.app.state.runtime.recorder.flush(timeout=30)  # nothing of theirs still on its way in
            report = _service(request).erase(body.learner)
            return PrivacyResult(request=report.request_id, removed=report.counts)

        return await run_in_threadpool(erase)

    @router.post(
        "/expire",
        response_model=PrivacyResult,
        summary="Remove personal data recorded longer ago than older_than, in the core and every plugin",
    )
    async def privacy_expire(request: Request, body: ExpireRequest) -> PrivacyResult:
        from ..store.privacy import parse_duration

        def expire() -> PrivacyResult:
            report = _service(request).expire(parse_duration(body.older_than))
            return PrivacyResult(request=report.request_id, removed=report.counts)

        return await run_in_threadpool(expire)

    return router
