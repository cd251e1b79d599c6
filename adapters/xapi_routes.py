"""The ``/xapi`` routes of ``trm serve``: an LRS statements endpoint whose statements about solves become feedback.

Registered through the ``trm_modules`` entry-point group (``xapi_routes = "trm_adapters.xapi_routes"``)
with the ``trm_register_routes`` hook, like any third-party plugin; ``xapi_ingest.XapiInbox`` does
the receiving, this module only speaks HTTP.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from trm_modules import hookimpl
from trm_modules.server.auth import require_scope
from trm_modules.server.problems import Problem
from trm_modules.server.runtime import ServerRuntime

from .xapi_ingest import StatementConflict, XapiInbox
from .xapi_statements import XapiStatementError, check_version_header

XAPI_VERSION_SENT = "1.0.3"
HEADERS = {"X-Experience-API-Version": XAPI_VERSION_SENT}


def _inbox(request: Request) -> XapiInbox:
    """The app's inbox, made on first use over the server's recorder and host."""
    state = request.app.state
    if not hasattr(state, "xapi_inbox"):
        runtime: ServerRuntime = state.runtime
        state.xapi_inbox = XapiInbox(runtime.recorder, runtime.host.feedback, runtime.host.flush)
    return state.xapi_inbox


async def _statements_of(request: Request) -> Any:
    try:
        check_version_header(request.headers.get("x-experience-api-version"))
    except XapiStatementError as exc:
        raise Problem(400, "xapi-version", "Missing or unsupported xAPI version", exc.message, headers=HEADERS)
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise Problem(400, "bad-json", "The body is not JSON", f"cannot parse the statements: {exc}",
                      headers=HEADERS) from exc


def _receive(request: Request, statements: list[Any]) -> list[str]:
    try:
        ids, _ = _inbox(request).receive(statements)
    except XapiStatementError as exc:
        raise Problem(400, "invalid-statement", "Invalid xAPI statement", exc.message,
                      errors=[{"detail": exc.message, "pointer": exc.pointer}], headers=HEADERS) from exc
    except StatementConflict as exc:
        raise Problem(409, "statement-conflict", "Statement id conflict", str(exc),
                      errors=[{"detail": str(exc), "pointer": exc.pointer}], headers=HEADERS) from exc
    return ids


def xapi_router() -> APIRouter:
    """The ``/xapi`` router: ``GET /about``, ``POST`` and ``PUT /statements``."""
    router = APIRouter(prefix="/xapi", tags=["xAPI"])

    @router.get("/about", summary="The xAPI versions this endpoint speaks")
    def about() -> JSONResponse:
        return JSONResponse({"version": ["1.0.3", "2.0.0"], "extensions": {}}, headers=HEADERS)

    @router.post("/statements", dependencies=[Depends(require_scope("feedback"))],
                 summary="Store one statement or a batch (as an LRS); statements about solves become feedback")
    async def post_statements(request: Request) -> JSONResponse:
        body = await _statements_of(request)
        statements = body if isinstance(body, list) else [body]
        ids = await run_in_threadpool(_receive, request, statements)
        return JSONResponse(ids, headers=HEADERS)

    @router.put("/statements", status_code=204, dependencies=[Depends(require_scope("feedback"))],
                summary="Store one statement under the id given as statementId")
    async def put_statement(request: Request, statementId: str = Query(..., description="The statement's id.")
                            ) -> Response:
        body = await _statements_of(request)
        if not isinstance(body, dict):
            raise Problem(400, "invalid-statement", "Invalid xAPI statement", "PUT takes a single statement object",
                          headers=HEADERS)
        if "id" in body and str(body["id"]) != statementId:
            raise Problem(400, "invalid-statement", "Invalid xAPI statement",
                          f"the statement's id {body['id']} differs from statementId {statementId}",
                          errors=[{"detail": "id differs from statementId", "pointer": "/id"}], headers=HEADERS)
        await run_in_threadpool(_receive, request, [{**body, "id": statementId}])
        return Response(status_code=204, headers=HEADERS)

    return router


@hookimpl
def trm_register_routes(runtime: ServerRuntime) -> APIRouter:
    """Mount ``/xapi`` on every server."""
    return xapi_router()
