"""Bearer-token authentication with scopes, as FastAPI dependencies.

``Authorization: Bearer <token>`` everywhere; ``Basic`` with the token as password is accepted
too, because that is what xAPI clients send to an LRS. Missing or unknown token: 401;
a valid token without the route's scope: 403.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from .problems import Problem
from .tokens import TokenStore

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


def require_scope(scope: str | None) -> Callable:
    """A dependency admitting requests whose token has ``scope`` (None: any valid token)."""

    async def dependency(request: Request) -> tuple[str, ...]:
        tokens: TokenStore = request.app.state.runtime.tokens
        secret = bearer_or_basic_secret(request.headers.get("authorization"))
        if secret is None:
            raise Problem(401, "unauthorized", "Unauthorized",
                          "this route needs a token: send 'Authorization: Bearer <token>' "
                          "(create one with `trm token create --scope ...`)", headers=CHALLENGE)
        scopes = tokens.verify_cached(secret)
        if scopes is None:
            scopes = await run_in_threadpool(tokens.verify, secret)
        if scopes is None:
            raise Problem(401, "unauthorized", "Unauthorized", "the token is unknown or revoked", headers=CHALLENGE)
        if scope is not None and scope not in scopes:
            raise Problem(403, "forbidden", "Forbidden",
                          f"this route needs a token with the {scope!r} scope; this one has {', '.join(scopes)}")
        return scopes

    dependency.trm_scope = scope  # type: ignore[attr-defined]  # tells the OpenAPI document it is guarded
    return dependency
