"""The course creator's dashboard at ``/dashboard/`` of ``trm serve``, registered as a plugin.

Plain HTML, CSS and JavaScript shipped in the wheel (``static/``; no CDN, no build step): it signs in
with an API token kept in ``sessionStorage`` and sent as ``Authorization: Bearer`` (never in a URL),
and reads the JSON API — ``/v1/modules``, ``/v1/modules/{name}/stats`` and ``/compare`` — showing
modules → versions → courses, accuracy with its interval over time, a trial's decision with its
evidence, calibration, ratings, learner outcomes and the failing inputs drawn as the SCORM / LTI
activities draw their boards (``trm_adapters/scorm/board.js``; the board of an input comes from
``POST /v1/modules/{name}/boards``). Every table downloads as CSV.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from trm_modules import hookimpl
from trm_modules.package import open_package
from trm_modules.server.auth import require_scope
from trm_modules.server.problems import Problem

#: asset name → (package, file, media type): what /dashboard/ serves, all from the installed wheel
ASSETS: dict[str, tuple[str, str, str]] = {
    "index.html": ("trm_adapters.dashboard.static", "index.html", "text/html; charset=utf-8"),
    "dashboard.js": ("trm_adapters.dashboard.static", "dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("trm_adapters.dashboard.static", "dashboard.css", "text/css; charset=utf-8"),
    "board.js": ("trm_adapters.scorm", "board.js", "text/javascript; charset=utf-8"),
}
#: every asset may come only from this server (no CDN, no inline script)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
MAX_BOARDS = 50


class BoardsRequest(BaseModel):
    """Task inputs to draw as the module's activity boards."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"inputs": [{"grid": [[1, 0, 0, 4], [0, 4, 1, 0], [0, 1, 4, 0], [4, 0, 0, 1]]}], "version": "1.0.0"}
            ]
        },
    )
    inputs: list[dict[str, Any]] = Field(max_length=MAX_BOARDS)
    version: str | None = None


def board_document(package: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The activity's board view of ``package``'s task (None when its task has none) and each input's tokens."""
    from trm_adapters.scorm.export import ScormExportError, grid_view

    codec = package.codec()
    try:
        view: dict[str, Any] | None = grid_view(codec)
    except ScormExportError:
        view = None
    boards: list[dict[str, Any] | None] = []
    for data in inputs:
        try:
            boards.append({"tokens": [int(t) for t in codec.encode_input(data)]} if view is not None else None)
        except Exception:  # noqa: BLE001 - an input the codec cannot read is shown as JSON instead
            boards.append(None)
    return {"module": package.manifest.name, "version": package.version, "view": view, "boards": boards}


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", include_in_schema=False)
    def dashboard_root() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=308)

    @router.get("/dashboard/", summary="The course creator's dashboard (sign in with a token)", response_class=Response)
    def dashboard_index() -> Response:
        return _asset("index.html")

    @router.get("/dashboard/{asset}", summary="The dashboard's assets (shipped in the wheel)", response_class=Response)
    def dashboard_asset(asset: str) -> Response:
        return _asset(asset)

    @router.post(
        "/v1/modules/{name}/boards",
        dependencies=[Depends(require_scope(("read", "solve", "admin")))],
        summary="Task inputs drawn as the module's activity boards: the board view and each input's tokens "
        "(view null when the task has no board view yet)",
    )
    async def boards(request: Request, name: str, body: BoardsRequest) -> dict[str, Any]:
        runtime = request.app.state.runtime

        def draw() -> dict[str, Any]:
            entry = runtime.registry.resolve(name, body.version, include_yanked=body.version is not None)
            return board_document(open_package(runtime.registry.path_of(entry)), body.inputs)

        return await run_in_threadpool(draw)

    return router


def _asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None:
        raise Problem(404, "not-found", "No such dashboard file", f"the dashboard has no file {name!r}")
    package, file, media_type = found
    content = resources.files(package).joinpath(file).read_bytes()
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


@hookimpl
def trm_register_routes(runtime: Any) -> APIRouter:
    """Mount the dashboard at ``/dashboard/`` of ``trm serve``."""
    return dashboard_router()
