"""Signed LTI messages, through PyJWT: the platform's id_token verified against its JWKS, and the tool's
own JWTs (deep-linking responses, client assertions for the platform's token endpoint) signed with
the tool's key, whose public half is served as a JWKS."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import jwt
from jwt import PyJWKClient
from jwt.algorithms import RSAAlgorithm

from .storage import (
    DEEP_LINKING_CONTENT_CLAIM,
    DEEP_LINKING_DATA_CLAIM,
    DEPLOYMENT_CLAIM,
    MESSAGE_TYPE_CLAIM,
    VERSION_CLAIM,
    LtiError,
    LtiStore,
    Platform,
)

#: Clock skew tolerated between platform and tool when checking exp / iat.
LEEWAY_S = 30
#: Lifetime of the JWTs the tool signs.
TOOL_JWT_TTL_S = 300
MESSAGE_TYPES = ("LtiResourceLinkRequest", "LtiDeepLinkingRequest")

_jwks_clients: dict[str, PyJWKClient] = {}
_jwks_lock = threading.Lock()


def _jwks_client(url: str) -> PyJWKClient:
    """One cached JWKS client per platform key set URL (keys are fetched again on an unknown ``kid``)."""
    with _jwks_lock:
        if url not in _jwks_clients:
            _jwks_clients[url] = PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
        return _jwks_clients[url]


def unverified_issuer(id_token: str) -> tuple[str, str | None]:
    """The ``iss`` and ``aud``/``azp`` claimed by ``id_token`` before verification (to find the registration)."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise LtiError(400, "bad-id-token", f"the id_token is not a JWT: {exc}") from exc
    audience = claims.get("aud")
    client_id = claims.get("azp") or (audience if isinstance(audience, str) else (audience or [None])[0])
    return str(claims.get("iss", "")), client_id


def verify_id_token(platform: Platform, id_token: str, expected_nonce: str) -> dict[str, Any]:
    """The claims of a launch's ``id_token`` once its signature (the platform's JWKS, RS256), issuer,
    audience (and ``azp``), expiry, issue time, nonce, LTI version, message type and deployment check out."""
    try:
        key = _jwks_client(platform.jwks_url).get_signing_key_from_jwt(id_token).key
    except jwt.PyJWKClientError as exc:
        raise LtiError(
            401,
            "unknown-signing-key",
            f"no key of the platform's JWKS ({platform.jwks_url}) verifies this id_token: {exc}",
        ) from exc
    try:
        claims = jwt.decode(
            id_token,
            key,
            algorithms=["RS256"],
            audience=platform.client_id,
            issuer=platform.issuer,
            leeway=LEEWAY_S,
            options={"require": ["iss", "aud", "sub", "exp", "iat", "nonce"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise LtiError(401, "expired-id-token", "the id_token has expired; launch again from the platform") from exc
    except jwt.InvalidAudienceError as exc:
        raise LtiError(
            401,
            "wrong-audience",
            f"the id_token is not meant for this tool: its audience must include the client id {platform.client_id!r}",
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise LtiError(
            401,
            "bad-signature",
            f"the id_token's signature does not verify with the platform's key set {platform.jwks_url}",
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise LtiError(401, "wrong-issuer", f"the id_token's issuer is not {platform.issuer!r}") from exc
    except jwt.PyJWTError as exc:
        raise LtiError(401, "bad-id-token", f"the id_token was refused: {exc}") from exc
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != platform.client_id:
        raise LtiError(
            401,
            "wrong-audience",
            f"an id_token with several audiences must name this tool ({platform.client_id!r}) as its azp",
        )
    if not secrets.compare_digest(str(claims["nonce"]), expected_nonce):
        raise LtiError(401, "wrong-nonce", "the id_token's nonce is not the one this tool issued at login")
    if claims.get(VERSION_CLAIM) != "1.3.0":
        raise LtiError(400, "lti-version", f"expected an LTI 1.3.0 message, got version {claims.get(VERSION_CLAIM)!r}")
    if claims.get(MESSAGE_TYPE_CLAIM) not in MESSAGE_TYPES:
        raise LtiError(
            400,
            "message-type",
            f"message type {claims.get(MESSAGE_TYPE_CLAIM)!r} is not handled; "
            f"expected one of {', '.join(MESSAGE_TYPES)}",
        )
    deployment = claims.get(DEPLOYMENT_CLAIM)
    if not deployment or (platform.deployment_ids and deployment not in platform.deployment_ids):
        raise LtiError(
            401,
            "unknown-deployment",
            f"deployment {deployment!r} is not registered for {platform.issuer} (trm lti add-platform --deployment-id)",
        )
    return claims


def tool_jwks(store: LtiStore) -> dict[str, Any]:
    """The tool's public keys as a JWKS document."""
    keys = []
    for kid, key in store.tool_keys():
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": keys}


def sign_tool_jwt(store: LtiStore, claims: dict[str, Any]) -> str:
    """``claims`` (plus iat, exp, jti) signed RS256 with the tool's newest key, its kid in the header."""
    kid, key = store.tool_keys()[0]
    now = int(time.time())
    return jwt.encode(
        {"iat": now, "exp": now + TOOL_JWT_TTL_S, "jti": secrets.token_urlsafe(16), **claims},
        key,
        algorithm="RS256",
        headers={"kid": kid},
    )


def deep_linking_response(
    store: LtiStore, platform: Platform, deployment_id: str, items: list[dict[str, Any]], data: str | None
) -> str:
    """The ``LtiDeepLinkingResponse`` JWT returning ``items`` to the platform."""
    claims: dict[str, Any] = {
        "iss": platform.client_id,
        "aud": platform.issuer,
        "nonce": secrets.token_urlsafe(16),
        DEPLOYMENT_CLAIM: deployment_id,
        MESSAGE_TYPE_CLAIM: "LtiDeepLinkingResponse",
        VERSION_CLAIM: "1.3.0",
        DEEP_LINKING_CONTENT_CLAIM: items,
    }
    if data is not None:
        claims[DEEP_LINKING_DATA_CLAIM] = data
    return sign_tool_jwt(store, claims)


def client_assertion(store: LtiStore, platform: Platform) -> str:
    """The JWT the tool authenticates with at the platform's token endpoint (RFC 7523, as LTI Security 1.0 asks)."""
    return sign_tool_jwt(store, {"iss": platform.client_id, "sub": platform.client_id, "aud": platform.auth_token_url})
