"""Assignment and Grade Services: the learner's score sent to the platform's line item.

The tool authenticates at the platform's token endpoint with a signed client assertion (OAuth 2
client credentials, RFC 7523, as LTI Security 1.0 asks) for the score scope, then posts an
``application/vnd.ims.lis.v1.score+json`` document to ``{lineitem}/scores``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import httpx

from .messages import client_assertion
from .storage import AGS_CLAIM, AGS_SCORE_SCOPE, LtiError, LtiStore, Launch

SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"


def scores_url(lineitem: str) -> str:
    """``{lineitem}/scores``, keeping the line item URL's query string where it belongs."""
    parts = urlsplit(lineitem)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def access_token(store: LtiStore, launch: Launch, client: httpx.Client) -> str:
    platform = launch.platform
    response = client.post(
        platform.auth_token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(store, platform),
            "scope": AGS_SCORE_SCOPE,
        },
    )
    if response.status_code != 200 or "access_token" not in response.json():
        raise LtiError(
            502,
            "ags-token",
            f"the platform's token endpoint {platform.auth_token_url} refused the "
            f"tool (HTTP {response.status_code}): {response.text[:300]}",
        )
    return str(response.json()["access_token"])


def post_score(
    store: LtiStore,
    launch: Launch,
    *,
    score_given: float,
    score_maximum: float,
    comment: str,
    client: httpx.Client | None = None,
) -> dict:
    """Send the learner's score for ``launch``; returns the score document sent."""
    endpoint = launch.claims.get(AGS_CLAIM) or {}
    lineitem = endpoint.get("lineitem")
    if not lineitem or AGS_SCORE_SCOPE not in endpoint.get("scope", []):
        raise LtiError(
            409,
            "no-gradebook",
            "the platform did not offer a gradebook column for this link "
            "(no AGS line item with the score scope in the launch)",
        )
    score = {
        "userId": launch.user_id,
        "scoreGiven": score_given,
        "scoreMaximum": score_maximum,
        "comment": comment,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    own_client = client is None
    client = client or httpx.Client(timeout=15)
    try:
        token = access_token(store, launch, client)
        response = client.post(
            scores_url(lineitem),
            json=score,
            headers={"Authorization": f"Bearer {token}", "Content-Type": SCORE_MEDIA_TYPE},
        )
    except httpx.HTTPError as exc:
        raise LtiError(502, "ags-unreachable", f"the platform's gradebook could not be reached: {exc}") from exc
    finally:
        if own_client:
            client.close()
    if response.status_code not in (200, 201, 202, 204):
        raise LtiError(
            502, "ags-refused", f"the platform refused the score (HTTP {response.status_code}): {response.text[:300]}"
        )
    return score
