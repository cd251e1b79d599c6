"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal the server makes is one of these documents: ``type`` (a stable URI per kind of
problem), ``title``, ``status``, ``detail`` (what was wrong and what was expected), ``instance``
(the request path) and, for a document that breaks a schema, ``errors``: a list of
``{"detail", "pointer"}`` where ``pointer`` is the RFC 6901 JSON pointer into the request body.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CodecError, ModuleNotFound, TRMError, json_pointer
from ..host.errors import InvalidInput, PlacementError, SwapError, VersionNotLoaded
from ..package import NoMatchingVersion, PackageError, VersionExists
from ..store import StoreError, StoreUnavailable
from ..store.routing import RoutingStateError, StaleRevision

log = logging.getLogger("trm_modules.server")

PROBLEM_TYPE_BASE = "tag:trm-modules,2025:problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """A refusal to answer with a problem document (raise it from a route)."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers
        self.extensions = extensions

    def document(self, instance: str) -> dict[str, Any]:
        """The RFC 9457 JSON body."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


def problem_response(problem: Problem, request_path: str) -> JSONResponse:
    """The HTTP response carrying ``problem``."""
    return JSONResponse(
        problem.document(request_path),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def invalid_document(detail: str, pointer: str) -> Problem:
    """422: the request body breaks a schema at ``pointer``."""
    return Problem(
        422,
        "invalid-document",
        "The request document is invalid",
        detail,
        errors=[{"detail": detail, "pointer": pointer}],
    )


def problem_for(exc: BaseException) -> Problem:
    """The problem document for an exception a library call raised."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, SwapError):
        cause = problem_for(exc.cause) if isinstance(exc.cause, (ModuleNotFound, NoMatchingVersion)) else None
        if cause is not None:
            return Problem(cause.status, cause.slug, cause.title, str(exc))
        return Problem(409, "swap-refused", "The version cannot be activated", str(exc))
    if isinstance(exc, InvalidInput):  # its path points into the request's input
        return invalid_document(exc.message, "/input" + exc.path)
    if isinstance(exc, CodecError):  # raised past input validation: the model's answer does not decode
        return Problem(
            500,
            "undecodable-answer",
            "The module's answer cannot be decoded",
            f"the module answered tokens its task codec cannot decode: {exc}; the input was valid",
        )
    if isinstance(exc, VersionExists):
        return Problem(409, "version-exists", "This version is already published", str(exc))
    if isinstance(exc, VersionNotLoaded) and exc.module:
        return Problem(
            404,
            "not-found",
            "No such module or version",
            f"module {exc.module!r} has no active version; activate a published one with POST "
            f'/v1/admin/modules/{exc.module}/activate and the body {{"version": "X.Y.Z"}} '
            "(admin scope; GET /v1/modules lists what is published)",
        )
    if isinstance(exc, (ModuleNotFound, NoMatchingVersion, VersionNotLoaded)):
        return Problem(404, "not-found", "No such module or version", str(exc))
    if isinstance(exc, PackageError):
        extras = {k: v for k, v in (("rule", getattr(exc, "rule", None)), ("file", getattr(exc, "file", None))) if v}
        return Problem(422, "package-refused", "The package was refused", str(exc), **extras)
    if isinstance(exc, PlacementError):
        return Problem(507, "no-room", "No device has room for this version", str(exc))
    if isinstance(exc, StaleRevision):
        return Problem(
            412,
            "stale-revision",
            "The routing state changed since it was read",
            str(exc),
            headers={"ETag": f'"{exc.actual}"'},
        )
    if isinstance(exc, RoutingStateError):
        return Problem(409, "routing-conflict", "The change does not apply to the module's routing", str(exc))
    if isinstance(exc, StoreUnavailable) or _is_database_outage(exc):
        return Problem(
            503,
            "store-unavailable",
            "The store cannot be reached",
            "this request needs the database, which cannot be reached now (the server log says why); "
            "retry after the time in Retry-After",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, (StoreError, TRMError, ValueError)):
        return Problem(400, "bad-request", "The request was refused", str(exc))
    return Problem(
        500,
        "internal-error",
        "Internal server error",
        "the server failed while answering; the error is logged on the server",
    )


def _is_database_outage(exc: BaseException) -> bool:
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = list(error.get("loc", ()))
            if location and location[0] in ("body", "query", "path", "header"):
                source, location = location[0], location[1:]
            else:
                source = "body"
            field = getattr((error.get("ctx") or {}).get("error"), "field", None)
            if field:  # a model-level check that names the field at fault
                location.append(field)
            pointer = json_pointer(location)
            errors.append({"detail": error.get("msg", "invalid"), "pointer": pointer, "in": source})
        first = errors[0] if errors else {"detail": "invalid request", "pointer": ""}
        detail = f"{first['detail']} (at {first['pointer'] or '/'})"
        return problem_response(
            Problem(422, "invalid-document", "The request document is invalid", detail, errors=errors), request.url.path
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {
            401: "unauthorized",
            403: "forbidden",
            404: "not-found",
            405: "method-not-allowed",
            413: "content-too-large",
        }.get(exc.status_code, "http-error")
        return problem_response(
            Problem(
                exc.status_code, slug, _reason(exc.status_code), str(exc.detail), headers=getattr(exc, "headers", None)
            ),
            request.url.path,
        )

    async def _library(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_for(exc)
        if problem.status == 503:  # an outage, not a bug: one line, no traceback
            log.warning("%s %s answered 503: %s", request.method, request.url.path, problem.detail)
        elif problem.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return problem_response(problem, request.url.path)

    # Typed errors are answered by the exception middleware; the bare ``Exception`` handler runs in
    # Starlette's outermost middleware, which answers 500 and then re-raises for the server to log.
    from sqlalchemy.exc import SQLAlchemyError

    for error_type in (TRMError, ValueError, LookupError, SQLAlchemyError, Exception):
        app.add_exception_handler(error_type, _library)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
