"""Bearer-token authentication with scopes, as FastAPI dependencies.

``Authorization: Bearer <token>`` everywhere; ``Basic`` with the token as password is accepted
too, because that is what xAPI clients send to an LRS. Missing or unknown token: 401;
a valid token without the route's scope: 403.

Course boundaries: a token limited to courses (``TokenGrant.courses``) is admitted by the scope check
as any other, and every route that touches a course's data asks ``require_course`` (or filters with
``granted_courses``) before answering: a course outside the token's is a 403 problem.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Iterable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from .problems import Problem
from .tokens import TokenGrant, TokenStore

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="trm-modules"'}


def bearer_or_basic_secret(header: str | None) -> str | None:
    """The token in an ``Authorization`` header (Bearer token, or Basic password), else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def require_scope(scope: str | tuple[str, ...] | None) -> Callable:
    """A dependency admitting requests whose token has ``scope`` (a tuple: any of them; None: any valid token).

    The token's grant (scopes and courses) is kept on ``request.state.grant`` for the course checks."""
    wanted = (scope,) if isinstance(scope, str) else scope

    async def dependency(request: Request) -> tuple[str, ...]:
        tokens: TokenStore = request.app.state.runtime.tokens
        secret = bearer_or_basic_secret(request.headers.get("authorization"))
        if secret is None:
            raise Problem(
                401,
                "unauthorized",
                "Unauthorized",
                "this route needs a token: send 'Authorization: Bearer <token>' "
                "(create one with `trm token create --scope ...`)",
                headers=CHALLENGE,
            )
        grant = tokens.grant_cached(secret)
        if grant is None:
            grant = await run_in_threadpool(tokens.grant, secret)
        if grant is None:
            raise Problem(401, "unauthorized", "Unauthorized", "the token is unknown or revoked", headers=CHALLENGE)
        if wanted is not None and not set(wanted) & set(grant.scopes):
            needed = " or ".join(repr(s) for s in wanted)
            raise Problem(
                403,
                "forbidden",
                "Forbidden",
                f"this route needs a token with the {needed} scope; this one has {', '.join(grant.scopes)}",
            )
        request.state.grant = grant
        return grant.scopes

    dependency.trm_scope = wanted[0] if wanted else None  # type: ignore[attr-defined]  # the OpenAPI document
    return dependency


def token_grant(request: Request) -> TokenGrant | None:
    """The grant ``require_scope`` admitted this request with (None on an open route)."""
    return getattr(request.state, "grant", None)


def granted_courses(request: Request) -> frozenset[str] | None:
    """The courses this request's token is limited to, or None: every course."""
    grant = token_grant(request)
    return grant.courses if grant is not None else None


def course_forbidden(course: str | None, grant: TokenGrant, what: str) -> Problem:
    """The 403 problem for ``what`` in ``course``, which ``grant`` does not cover (the problem never names
    ``course``: that would tell a limited token which course another course's solve belongs to)."""
    courses = ", ".join(sorted(grant.courses or ()))
    where = "names no course" if not course else "is outside this token's courses"
    return Problem(
        403,
        "course-forbidden",
        "Outside the token's courses",
        f"{what} {where}; this token is limited to the course(s) {courses}",
    )


def require_course(request: Request, course: str | None, what: str) -> None:
    """Raise a 403 problem unless this request's token may act on ``course`` (``what`` names the thing)."""
    grant = token_grant(request)
    if grant is not None and not grant.allows(course):
        raise course_forbidden(course, grant, what)


def require_every_course(request: Request, what: str) -> None:
    """Raise a 403 problem when this request's token is limited to courses (``what``: an action on every course)."""
    grant = token_grant(request)
    if grant is not None and grant.limited:
        raise Problem(
            403,
            "course-forbidden",
            "Outside the token's courses",
            f"{what} applies to every course; this token is limited to the course(s) "
            f"{', '.join(sorted(grant.courses or ()))}",
        )


def only_granted(request: Request, courses: Iterable[str]) -> list[str]:
    """The ``courses`` this request's token may see, in their order."""
    grant = token_grant(request)
    return [c for c in courses if grant is None or grant.allows(c)]


def checked_by_handler() -> Callable:
    """A dependency that admits every request, for a route whose handler checks the token itself (the LRS
    answers xAPI's own error documents): it marks the route as guarded, so the OpenAPI document declares its
    security from the route's dependencies like any ``require_scope`` route."""

    async def dependency() -> None:
        return None

    dependency.trm_scope = "checked-by-handler"  # type: ignore[attr-defined]
    return dependency
