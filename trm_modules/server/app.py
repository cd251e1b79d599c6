"""The HTTP API (FastAPI): a thin shell over ``Host``, the registry and the store.

Versioned under ``/v1``; OpenAPI docs at ``/docs``. Every ``/v1`` route needs a token with a
scope (``solve``, ``feedback``, ``read``, ``admin``); ``/healthz``, ``/metrics`` and the docs are open.
A token limited to courses sees and acts on those courses only (``auth.require_course``): other
courses' solves, feedback and pins are 403 or left out, and changes that apply to every course
(activate, rollback, canary, yank, upload) are 403.
Plugins add routes through the ``trm_register_routes`` hook (the built-in xAPI endpoint
``/xapi`` is one, in ``adapters/lrs/``). Errors are RFC 9457 problem documents
(``problems.py``); bodies over the limit are refused with 413 before parsing (``limits.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi_offline import FastAPIOffline

from .. import __version__ as trm_version
from ..errors import ModuleNotFound
from ..host import SlotState
from ..host.errors import VersionNotLoaded
from ..plugins import call_hook, record_plugin_failure
from ..package import open_package
from ..package.archive import check_entry_name
from .auth import only_granted, require_course, require_every_course, require_scope
from .insights_routes import insights_router
from .limits import BodyLimitMiddleware, JsonDepthMiddleware
from .ratelimit import RateLimitMiddleware, RequestTimeoutMiddleware
from .openapi import install_openapi, operation_id
from .trial_routes import trial_routes
from .privacy_routes import privacy_routes
from .problems import Problem, install_problem_handlers, invalid_document
from .runtime import ServerRuntime
from .schemas import (
    CanaryRequest,
    FeedbackAccepted,
    FeedbackRequest,
    ModuleDetail,
    ModuleLinks,
    ModuleSummary,
    PublishedPackage,
    SlotResponse,
    SolveRequest,
    SolveResponse,
    VersionRequest,
    YankRequest,
)

SCHEMA_MEDIA_TYPE = "application/schema+json"


def create_app(runtime: ServerRuntime, *, close_runtime_on_shutdown: bool = True) -> FastAPI:
    """The FastAPI application serving ``runtime`` (closed with the app unless told otherwise)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_runtime_on_shutdown:
            await run_in_threadpool(runtime.close)

    app = FastAPIOffline(  # /docs and /redoc without a CDN (openapi.py)
        title="trm-modules",
        version=trm_version,
        summary="Tiny Recursive Model reasoning modules for course platforms: solve, feedback, xAPI, admin.",
        description="Authenticate with `Authorization: Bearer <token>` (create one with "
        "`trm token create --scope solve|feedback|read|admin`, optionally limited with `--course C`, "
        "repeatable: such a token is answered 403 outside its courses). Errors are RFC 9457 problem "
        "documents. Limits: each token may make `rate_limit` requests per second (`trm serve "
        "--rate-limit`; per replica; off unless set): more are answered 429 with `Retry-After` in "
        "seconds. A request body must arrive within `request_timeout_s` (default 60 s; package "
        "uploads 600 s), else 408; idle keep-alive connections close after `keep_alive_timeout_s` (5 s).",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    install_openapi(app)
    app.state.runtime = runtime
    app.state.catalog = ModuleCatalog(runtime)
    settings = runtime.settings
    app.add_middleware(JsonDepthMiddleware)  # inside the size limit: it reads bodies already bounded
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        prefix_limits={"/v1/admin/packages": settings.max_package_bytes},
    )
    app.add_middleware(
        RequestTimeoutMiddleware,
        timeout_s=settings.request_timeout_s,
        prefix_timeouts={"/v1/admin/packages": settings.upload_timeout_s},
    )
    if settings.rate_limit > 0:  # outermost: a token over its rate costs no parsing, no database, no model
        app.add_middleware(
            RateLimitMiddleware,
            rate=settings.rate_limit,
            burst=settings.rate_limit_burst,
            on_limited=runtime.metrics.rate_limited.inc,
        )
    install_problem_handlers(app)
    app.include_router(_open_routes())
    app.include_router(_module_routes())
    app.include_router(insights_router())
    app.include_router(_admin_routes())
    app.include_router(trial_routes())
    app.include_router(privacy_routes())
    app.include_router(_registry_routes())
    for router in plugin_routers(runtime):
        app.include_router(router)
    return app


def plugin_routers(runtime: ServerRuntime) -> list[APIRouter]:
    """The routers plugins return from ``trm_register_routes`` (a router, a list of them, or None each)."""
    routers: list[APIRouter] = []
    for plugin, returned in call_hook(runtime.host.pm, "trm_register_routes", with_plugin=True, runtime=runtime):
        for router in returned if isinstance(returned, (list, tuple)) else [returned]:
            if isinstance(router, APIRouter):
                routers.append(router)
            else:
                refused = TypeError(f"trm_register_routes returned {type(router).__name__}, not an APIRouter")
                record_plugin_failure(runtime.host.pm, plugin, "trm_register_routes", refused)
    return routers


def _runtime(request: Request) -> ServerRuntime:
    return request.app.state.runtime


def _visible_pins(request: Request | None, pins: dict[str, str]) -> dict[str, str]:
    """The pins of the courses the request's token may see (every pin for a token of every course)."""
    if request is None:
        return dict(pins)
    return {course: pins[course] for course in only_granted(request, pins)}


def _slot_response(
    state: SlotState, revision: int = 0, response: Response | None = None, request: Request | None = None
) -> SlotResponse:
    if response is not None:
        response.headers["ETag"] = f'"{revision}"'
    return SlotResponse(
        name=state.name,
        active=state.active,
        canary=state.canary,
        canary_share=state.canary_share,
        pins=_visible_pins(request, dict(state.pins)),
        loaded=list(state.loaded),
        history=list(state.history),
        revision=revision,
    )


def _routed(response: Response, result: tuple[SlotState, int], request: Request | None = None) -> SlotResponse:
    return _slot_response(*result, response=response, request=request)


def expected_revision(
    if_match: str | None = Header(
        None,
        description="The routing revision (ETag) the change is "
        "meant for: refused with 412 if another write moved past it",
    ),
) -> int | None:
    """The revision an admin write names in ``If-Match`` (``"3"`` or ``3``), or None."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise invalid_document(f'If-Match must be a routing revision such as "3", got {if_match!r}', "/If-Match")
    return int(value)


class ModuleCatalog:
    """What the registry and the host know about modules, shaped for the API (package metadata cached by digest)."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self._described: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _states(self) -> dict[str, SlotState]:
        return {state.name: state for state in self.runtime.host.modules()}

    def summaries(self) -> list[ModuleSummary]:
        """Every module published in the registry or loaded in the host."""
        entries = self.runtime.registry.list()
        states = self._states()
        names = sorted({e.name for e in entries} | set(states))
        return [self._summary(name, [e for e in entries if e.name == name], states.get(name)) for name in names]

    def _summary(self, name: str, entries: list[Any], state: SlotState | None) -> ModuleSummary:
        base = f"/v1/modules/{quote(name, safe='')}"
        first = entries[0] if entries else None
        return ModuleSummary(
            name=name,
            module_id=first.module_id if first else None,
            title=first.title if first else None,
            active=state.active if state else None,
            canary=state.canary if state else None,
            canary_share=state.canary_share if state else 0.0,
            pins=dict(state.pins) if state else {},
            available=[e.version for e in entries if not e.yanked],
            yanked=[e.version for e in entries if e.yanked],
            links=ModuleLinks(
                self=base,
                solve=f"{base}/solve",
                input_schema=f"{base}/schemas/input",
                output_schema=f"{base}/schemas/output",
            ),
        )

    def describe(self, name: str, version: str | None) -> dict[str, Any]:
        """Manifest, card and schemas of ``name`` at ``version`` (default: the active one, else the newest)."""
        if version is None:
            state = self._states().get(name)
            version = state.active if state and state.active else None
        entry = self.runtime.registry.resolve(name, version, include_yanked=version is not None)
        with self._lock:
            cached = self._described.get(entry.digest)
        if cached is None:
            package = open_package(self.runtime.registry.path_of(entry))
            cached = {
                "version": package.version,
                "digest": package.digest,
                "manifest": package.manifest.model_dump(mode="json", by_alias=True, exclude_none=True),
                "card": package.card,
                "input_schema": package.input_schema,
                "output_schema": package.output_schema,
            }
            with self._lock:
                self._described[entry.digest] = cached
        return cached

    def detail(self, name: str, version: str | None) -> ModuleDetail:
        """The summary of ``name`` plus its described version."""
        described = self.describe(name, version)
        entries = self.runtime.registry.list(name)
        summary = self._summary(name, entries, self._states().get(name))
        return ModuleDetail(**summary.model_dump(), **described)


# ================================================================================= open routes
def _open_routes() -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get(
        "/healthz",
        summary="Liveness, what is active, the routing revisions applied (replicas that agree "
        "show the same), and the store's writer (no paths, no secrets)",
    )
    def healthz(request: Request) -> dict[str, Any]:
        runtime = _runtime(request)
        recorder = runtime.recorder
        store = {
            "database": "up" if recorder.database_available else "down",
            "pending": recorder.pending,
            "journal": "holds events" if recorder.journal.has_entries() else "empty",
            "dead_letters": recorder.stats.rejected,
            "writer_restarts": recorder.stats.writer_restarts,
            "last_writer_error": recorder.stats.last_writer_error,
        }
        return {
            "status": "ok" if recorder.database_available else "degraded",
            "modules": {s.name: s.active for s in runtime.host.modules() if s.active is not None},
            "routing": runtime.routing.revisions(),
            "store": store,
        }

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        runtime = _runtime(request)
        return Response(runtime.metrics.exposition(), media_type=runtime.metrics.content_type)

    return router


# ============================================================================== module routes
def _module_routes() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["modules"])

    @router.get(
        "/me",
        dependencies=[Depends(require_scope(None))],
        summary="This request's token: its id, name, scopes and the courses it is limited to (null: every "
        "course); never its secret",
    )
    def whoami(request: Request) -> dict[str, Any]:
        grant = request.state.grant
        return {
            "id": grant.id,
            "name": grant.name,
            "scopes": list(grant.scopes),
            "courses": sorted(grant.courses) if grant.courses is not None else None,
        }

    @router.get(
        "/modules",
        response_model=list[ModuleSummary],
        dependencies=[Depends(require_scope(None))],
        summary="Modules: active and available versions, links to their task schemas",
    )
    def list_modules(request: Request) -> list[ModuleSummary]:
        summaries: list[ModuleSummary] = request.app.state.catalog.summaries()
        return [s.model_copy(update={"pins": _visible_pins(request, s.pins)}) for s in summaries]

    @router.get(
        "/modules/{name}",
        response_model=ModuleDetail,
        dependencies=[Depends(require_scope(None))],
        summary="One module: manifest, model card, task schemas",
    )
    def get_module(
        request: Request, name: str, version: str | None = Query(None, description="Default: the active version.")
    ) -> ModuleDetail:
        detail: ModuleDetail = request.app.state.catalog.detail(name, version)
        return detail.model_copy(update={"pins": _visible_pins(request, detail.pins)})

    @router.get(
        "/modules/{name}/schemas/{which}",
        dependencies=[Depends(require_scope(None))],
        summary="The JSON Schema of the module's task input or output",
        responses={200: {"content": {SCHEMA_MEDIA_TYPE: {}}}},
    )
    def get_schema(request: Request, name: str, which: str, version: str | None = None) -> Response:
        if which not in ("input", "output"):
            raise Problem(404, "not-found", "No such schema", f"schemas are 'input' and 'output', not {which!r}")
        schema = request.app.state.catalog.describe(name, version)[f"{which}_schema"]
        return Response(json.dumps(schema), media_type=SCHEMA_MEDIA_TYPE)

    @router.post(
        "/modules/{name}/solve",
        response_model=SolveResponse,
        dependencies=[Depends(require_scope("solve"))],
        summary="Solve one task input with the version the context selects; answered once recorded",
        responses={503: {"description": "The answer could not be recorded; retry (Retry-After)."}},
    )
    async def solve(request: Request, name: str, body: SolveRequest) -> SolveResponse:
        require_course(request, body.context.course, "this solve's context")
        runtime = _runtime(request)
        try:
            answer = await runtime.intake.solve(name, body.input, body.context, body.client_id)
        except ModuleNotFound as exc:  # published (say, while the server ran) but never activated: say how
            if not runtime.registry.list_versions(name):
                raise
            raise VersionNotLoaded(f"module {name!r} is published but has no active version here", module=name) from exc
        return SolveResponse(
            solve_id=answer.solve_id,
            module=answer.module,
            version=answer.version,
            digest=answer.digest,
            output=answer.output,
            steps=answer.steps,
            confidence=answer.confidence,
            valid=answer.valid,
            latency_ms=answer.latency_ms,
            views=answer.views,
        )

    @router.get(
        "/solves/{solve_id}",
        dependencies=[Depends(require_scope(("solve", "read")))],
        summary="A recorded solve (the xAPI activity a solve's statements name)",
    )
    def get_solve(request: Request, solve_id: str) -> dict[str, Any]:
        from ..store.models import Context, Solve

        with _runtime(request).store.session() as session:
            solve = session.get(Solve, solve_id)
            context = session.get(Context, solve.context_id) if solve is not None else None
        if solve is None:
            raise Problem(
                404,
                "not-found",
                "No such solve",
                f"no solve {solve_id!r} is recorded (yet: records are written within a fraction of a second)",
            )
        require_course(request, context.course if context is not None else None, f"solve {solve_id!r}")
        return {
            "solve_id": solve.id,
            "module": solve.module,
            "version": solve.version,
            "digest": solve.digest,
            "input": solve.input,
            "output": solve.output,
            "steps": solve.steps,
            "confidence": solve.confidence,
            "valid": solve.valid,
            "created_at": solve.created_at.isoformat(),
        }

    @router.post(
        "/feedback",
        response_model=FeedbackAccepted,
        status_code=202,
        dependencies=[Depends(require_scope("feedback"))],
        summary="Outcome feedback on a solve (idempotent by id); 202 once it is durable",
        responses={
            200: {"model": FeedbackAccepted, "description": "This id was already accepted."},
            404: {"description": "No such solve (and the event is not marked external)."},
            503: {
                "description": "The store cannot take or check it now (store-unavailable), or the solve's id was "
                "issued minutes ago and another server may still be writing it (solve-pending); retry (Retry-After)."
            },
        },
    )
    async def feedback(request: Request, body: FeedbackRequest, response: Response) -> FeedbackAccepted:
        accepted, new = await _runtime(request).intake.feedback(body, getattr(request.state, "grant", None))
        if not new:
            response.status_code = 200
        return accepted

    return router


# ============================================================================ registry routes
def _registry_routes() -> APIRouter:
    """The registry folder, read-only, in the layout ``HttpRegistry`` (and ``trm install --registry URL``) reads."""
    router = APIRouter(prefix="/registry", tags=["registry"], dependencies=[Depends(require_scope(None))])

    @router.get(
        "/{path:path}",
        summary="The served registry, read-only: index.json and packages/… files (Range requests resume a download)",
        response_class=FileResponse,
    )
    def registry_file(request: Request, path: str) -> FileResponse:
        root = _runtime(request).registry.root.resolve()
        allowed = path == "index.json" or (
            path.startswith("packages/") and path.endswith(".trm") and check_entry_name(path) is None
        )
        file = (root / path).resolve() if allowed else None
        if file is None or not file.is_relative_to(root) or not file.is_file():
            raise Problem(
                404,
                "not-found",
                "No such registry file",
                f"the registry serves index.json and packages/<name>/<file>.trm; {path!r} is not one",
            )
        return FileResponse(file, media_type="application/json" if path == "index.json" else "application/octet-stream")

    return router


# =============================================================================== admin routes
async def _spool_upload(request: Request) -> Path:
    """The uploaded package (multipart field ``file``, or the raw body) in a temporary file."""
    fd, name = tempfile.mkstemp(prefix="trm-upload-", suffix=".trm")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_fields=4)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise invalid_document("a multipart upload needs the package in a file field named 'file'", "/file")
                await run_in_threadpool(shutil.copyfileobj, upload.file, out)
            else:
                async for chunk in request.stream():
                    out.write(chunk)
        if path.stat().st_size == 0:
            raise invalid_document(
                "the upload is empty; send a .trm package as the body or as multipart field 'file'", ""
            )
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _admin_routes() -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_scope("admin"))])

    @router.post(
        "/packages",
        response_model=PublishedPackage,
        status_code=201,
        summary="Upload a package: verified, self-tested, published; optionally activated",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                    },
                }
            }
        },
    )
    async def upload_package(
        request: Request, activate: bool = Query(False, description="Make it the active version.")
    ) -> PublishedPackage:
        runtime = _runtime(request)
        require_every_course(request, "publishing a package")
        path = await _spool_upload(request)
        try:

            def publish() -> PublishedPackage:
                entry = runtime.registry.publish(path, trusted_keys=runtime.signature_policy.keys_for_opening())
                package = open_package(runtime.registry.path_of(entry))
                runtime.store.record_installed_package(
                    name=entry.name,
                    version=entry.version,
                    digest=entry.digest,
                    codec=package.manifest.task.codec,
                    codec_params=package.manifest.task.params,
                    source="upload",
                )
                active = None
                if activate:
                    active = runtime.routing.activate(entry.name, entry.version)[0].active
                    runtime.metrics.swaps.labels(entry.name, "activate").inc()
                else:
                    states = {s.name: s for s in runtime.host.modules()}
                    if entry.name not in states or states[entry.name].active is None:  # a new module starts serving
                        active = runtime.routing.activate(entry.name, entry.version)[0].active
                        runtime.metrics.swaps.labels(entry.name, "activate").inc()
                    else:
                        active = states[entry.name].active
                return PublishedPackage(
                    name=entry.name, version=entry.version, digest=entry.digest, size=entry.size, active=active
                )

            return await run_in_threadpool(publish)
        finally:
            path.unlink(missing_ok=True)

    @router.post(
        "/modules/{name}/activate",
        response_model=SlotResponse,
        summary="Make a published version active on every replica (loaded and self-tested first; no downtime)",
    )
    def activate(
        request: Request,
        response: Response,
        name: str,
        body: VersionRequest,
        revision: int | None = Depends(expected_revision),
    ) -> SlotResponse:
        runtime = _runtime(request)
        require_every_course(request, "activating a version")
        result = runtime.routing.activate(name, body.version, expected_revision=revision)
        runtime.metrics.swaps.labels(name, "activate").inc()
        return _routed(response, result, request)

    @router.post(
        "/modules/{name}/rollback",
        response_model=SlotResponse,
        summary="Make the previously active version active again on every replica",
    )
    def rollback(
        request: Request, response: Response, name: str, revision: int | None = Depends(expected_revision)
    ) -> SlotResponse:
        runtime = _runtime(request)
        require_every_course(request, "rolling back a module")
        result = runtime.routing.rollback(name, expected_revision=revision)
        runtime.metrics.swaps.labels(name, "rollback").inc()
        return _routed(response, result, request)

    @router.put(
        "/modules/{name}/pins/{course}",
        response_model=SlotResponse,
        summary="Answer one course's requests with a given version (on every replica)",
    )
    def pin(
        request: Request,
        response: Response,
        name: str,
        course: str,
        body: VersionRequest,
        revision: int | None = Depends(expected_revision),
    ) -> SlotResponse:
        runtime = _runtime(request)
        require_course(request, course, "this pin")
        result = runtime.routing.pin(name, course, body.version, expected_revision=revision)
        runtime.metrics.swaps.labels(name, "pin").inc()
        return _routed(response, result, request)

    @router.delete("/modules/{name}/pins/{course}", response_model=SlotResponse, summary="Stop pinning a course")
    def unpin(
        request: Request, response: Response, name: str, course: str, revision: int | None = Depends(expected_revision)
    ) -> SlotResponse:
        require_course(request, course, "this pin")
        return _routed(response, _runtime(request).routing.unpin(name, course, expected_revision=revision), request)

    @router.put(
        "/modules/{name}/canary",
        response_model=SlotResponse,
        summary="Send a share of learners to a canary version (share 0 stops it)",
    )
    def canary(
        request: Request,
        response: Response,
        name: str,
        body: CanaryRequest,
        revision: int | None = Depends(expected_revision),
    ) -> SlotResponse:
        runtime = _runtime(request)
        require_every_course(request, "a module's canary")
        if body.share != 0 and body.version is None:
            raise invalid_document("a canary with a share above 0 needs a version", "/version")
        result = runtime.routing.set_canary(
            name, body.version if body.share else None, body.share, expected_revision=revision
        )
        if body.share:
            runtime.metrics.swaps.labels(name, "canary").inc()
        return _routed(response, result, request)

    @router.post(
        "/modules/{name}/versions/{version}/yank",
        summary="Yank a published version (skipped by 'newest' and specifiers; exact pins still resolve)",
    )
    def yank(
        request: Request,
        name: str,
        version: str,
        body: YankRequest | None = None,
        revision: int | None = Depends(expected_revision),
    ) -> dict[str, Any]:
        body = body or YankRequest()
        require_every_course(request, "yanking a version")
        runtime = _runtime(request)
        runtime.registry.resolve(name, version, include_yanked=True)  # 404 for a version that is not published
        _, routing_revision = runtime.routing.yank(name, version, body.reason, body.yanked, expected_revision=revision)
        entry = runtime.registry.resolve(name, version, include_yanked=True)
        return {
            "name": entry.name,
            "version": entry.version,
            "yanked": entry.yanked,
            "reason": entry.yank_reason,
            "revision": routing_revision,
        }

    return router
