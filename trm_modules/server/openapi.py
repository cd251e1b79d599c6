"""The OpenAPI document of ``trm serve``: what a platform developer (and ``/docs``) needs to call it.

FastAPI derives paths and bodies from the routes; this adds what it cannot know:

- the security schemes (Bearer token; Basic with the token as password, what xAPI content sends),
  and on every guarded operation, so that ``/docs`` offers *Authorize*;
- the problem document (RFC 9457, ``problems.py``) as the body of every error status an operation
  can answer, instead of FastAPI's own validation-error shape;
- ``operationId`` = the route's name (its Python function name, or the name a plugin gave it;
  a plugin's prefixed with its package), stable across releases and unique in the app (a test checks it).

``/docs`` and ``/redoc`` load Swagger UI and ReDoc from the ``fastapi-offline`` package, not from
a CDN, so they work on a server without Internet access.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Collection

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details: every error the server answers has this shape.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "A stable URI naming the kind of problem.",
            "examples": ["tag:trm-modules,2025:problems/invalid-document"],
        },
        "title": {"type": "string", "examples": ["The request document is invalid"]},
        "status": {"type": "integer", "examples": [422]},
        "detail": {
            "type": "string",
            "description": "What was wrong and what was expected.",
            "examples": ["input.grid must have 4 rows (at /input/grid)"],
        },
        "instance": {
            "type": "string",
            "description": "The request path.",
            "examples": ["/v1/modules/sudoku-4x4/solve"],
        },
        "errors": {
            "type": "array",
            "description": "Each fault with an RFC 6901 pointer into the request body (or ?parameter / header name).",
            "items": {"type": "object", "properties": {"detail": {"type": "string"}, "pointer": {"type": "string"}}},
        },
    },
}
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`trm token create --scope solve|feedback|admin`).",
    },
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "Any user name and an API token as the password (what xAPI clients send).",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"basicAuth": []}]
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Whole seconds to wait before the token's next request passes.",
    "schema": {"type": "integer", "minimum": 1},
}


def operation_id(route: APIRoute) -> str:
    """A route's ``operationId``: its name (the function name unless the route names itself); a
    plugin's routes are prefixed with the plugin's package (``lti_solve``), so two cannot collide."""
    module = getattr(route.endpoint, "__module__", "") or ""
    if module.startswith("trm_modules."):
        return route.name
    parts = module.split(".")
    prefix = parts[-2] if len(parts) > 1 else parts[0]  # the plugin's package: adapters/lti/routes.py → lti
    return route.name if not prefix or route.name.startswith(prefix + "_") else f"{prefix}_{route.name}"


def _error_statuses(path: str, operation: dict[str, Any], secured: bool) -> set[str]:
    statuses = {status for status in operation.get("responses", {}) if status[0] in "45"}
    statuses.add("500")
    if secured:
        statuses |= {"401", "403", "429"}
    if operation.get("requestBody"):
        statuses.add("408")
    takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
    if takes_input and "400" not in statuses:  # a route that answers bad input with 400 declares it itself
        statuses.add("422")
    if "{" in path:
        statuses.add("404")
    return statuses


def guarded(route: APIRoute) -> bool:
    """Whether a route admits only requests with a token (it depends on ``auth.require_scope``)."""
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if hasattr(dependant.call, "trm_scope"):
            return True
        stack.extend(dependant.dependencies)
    return False


def decorate(document: dict[str, Any], guarded_operations: Collection[str] = frozenset()) -> dict[str, Any]:
    """Add security schemes and problem-document error responses to a generated OpenAPI document.

    An operation is guarded when it is in ``guarded_operations``: its route depends on
    ``auth.require_scope`` (or on ``auth.checked_by_handler``, for a handler that checks the token itself).
    Error statuses are those the operation declares (``responses=``), 500, 401/403 when guarded, 422
    when it takes input (unless it declares 400) and 404 when its path has a parameter.
    """
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if operation.get("operationId") in guarded_operations:
                operation["security"] = SECURITY
            secured = bool(operation.get("security"))
            responses = operation.setdefault("responses", {})
            for status in sorted(_error_statuses(path, operation, secured)):
                described = responses.get(status, {}).get("description")
                responses[status] = {
                    "description": described
                    if described and described != "Validation Error"
                    else HTTPStatus(int(status)).phrase,
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
                if status == "429":
                    responses[status]["description"] = (
                        "Too Many Requests: the token is over its rate limit "
                        "(`trm serve --rate-limit`, requests per second per token)"
                    )
                    responses[status]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
                elif status == "408":
                    responses[status]["description"] = (
                        "Request Timeout: the body did not arrive within the server's request timeout"
                    )
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the decorated document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            guarded_ids = {route.operation_id or operation_id(route) for route in _api_routes(app) if guarded(route)}
            app.openapi_schema = decorate(document, guarded_ids)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute the app serves (FastAPI may keep included routers as nested entries)."""
    from fastapi.routing import APIRouter

    found: list[APIRoute] = []
    stack: list[Any] = list(app.router.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        for nested in ("original_router", "router"):
            inner = getattr(route, nested, None)
            if isinstance(inner, APIRouter):
                stack.extend(inner.routes)
    return found
