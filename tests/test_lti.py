"""LTI 1.3 Advantage tool: a course platform played by the test (its own RSA key, JWKS, token endpoint
and gradebook on a loopback HTTP server) runs OIDC login → launch → deep linking → score passback
against ``trm serve``'s routes, and every forged or replayed launch is refused."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from typer.testing import CliRunner

from fastapi.testclient import TestClient

from fixtures.server import MODULE, served
from trm_adapters.lti import LtiError, LtiStore
from trm_adapters.lti.routes import state_cookie_name
from trm_modules.cli import app

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
CLIENT_ID = "trm-tool-client"
DEPLOYMENT = "deployment-1"


@dataclass
class PlayedPlatform:
    """The LMS side: signs id_tokens, serves its JWKS, issues AGS tokens, records scores."""

    base: str
    key: rsa.RSAPrivateKey
    kid: str = "platform-key-1"
    token_requests: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.base

    def id_token(
        self,
        nonce: str,
        *,
        message_type: str = "LtiResourceLinkRequest",
        key: rsa.RSAPrivateKey | None = None,
        audience: str | list[str] = CLIENT_ID,
        expires_in: int = 300,
        **claims,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": audience,
            "sub": "learner-42",
            "iat": now,
            "exp": now + expires_in,
            "nonce": nonce,
            LTI + "version": "1.3.0",
            LTI + "message_type": message_type,
            LTI + "deployment_id": DEPLOYMENT,
            LTI + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            LTI + "context": {"id": "course-7", "title": "Logic 101"},
            **claims,
        }
        if message_type == "LtiResourceLinkRequest":
            body.setdefault(LTI + "resource_link", {"id": "link-1"})
            body.setdefault(LTI + "target_link_uri", "http://testserver/lti/launch")
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


def _handler(platform: PlayedPlatform):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/jwks":
                public = RSAAlgorithm.to_jwk(platform.key.public_key(), as_dict=True)
                self._send(200, {"keys": [{**public, "kid": platform.kid, "alg": "RS256", "use": "sig"}]})
            else:
                self._send(404, {})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            if self.path == "/token":
                platform.token_requests.append({k: v[0] for k, v in parse_qs(body).items()})
                self._send(200, {"access_token": "ags-token-1", "token_type": "Bearer", "expires_in": 3600})
            elif self.path.startswith("/lineitems/1/scores"):
                platform.scores.append(
                    {
                        "body": json.loads(body),
                        "authorization": self.headers.get("authorization"),
                        "content_type": self.headers.get("content-type"),
                    }
                )
                self._send(200, {})
            else:
                self._send(404, {})

    return Handler


@pytest.fixture(scope="module")
def platform():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    test_platform = PlayedPlatform(base=f"http://127.0.0.1:{server.server_address[1]}", key=key)
    server.RequestHandlerClass = _handler(test_platform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield test_platform
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tool(tmp_path_factory, platform):
    """One server for the module (tests use their own courses, so pins do not collide)."""
    with served(tmp_path_factory.mktemp("lti"), versions={"1.0.0": 0, "1.1.0": 1}) as s:
        LtiStore(s.runtime.store).add_platform(
            issuer=platform.issuer,
            client_id=CLIENT_ID,
            auth_login_url=f"{platform.base}/authorize",
            auth_token_url=f"{platform.base}/token",
            jwks_url=f"{platform.base}/jwks",
            deployment_ids=[DEPLOYMENT],
            name="Test LMS",
        )
        yield s


def login(tool, platform) -> dict[str, str]:
    """OIDC initiation as the platform starts it; returns the query the tool redirects to."""
    response = tool.client.get(
        "/lti/login",
        params={
            "iss": platform.issuer,
            "login_hint": "learner-42",
            "target_link_uri": "http://testserver/lti/launch",
            "client_id": CLIENT_ID,
            "lti_message_hint": "hint-9",
        },
        follow_redirects=False,
    )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{platform.base}/authorize"
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def launch(tool, platform, **token_options):
    auth = login(tool, platform)
    id_token = platform.id_token(auth["nonce"], **token_options)
    return tool.client.post("/lti/launch", data={"id_token": id_token, "state": auth["state"]}), id_token, auth


def launch_id_of(page: str) -> str:
    config = json.loads(re.search(r'<script type="application/json" id="activity">(.*?)</script>', page, re.S).group(1))
    return config["launch"]


def resource_link(version: str | None = None, course: str = "course-7", gradebook: bool = False) -> dict:
    claims = {
        LTI + "custom": {"module": MODULE, **({"version": version} if version else {})},
        LTI + "context": {"id": course, "title": course},
    }
    if gradebook:
        return {**claims, AGS: {"scope": [SCORE_SCOPE], "lineitem": "{base}/lineitems/1"}}
    return claims


def with_gradebook(platform, claims: dict) -> dict:
    if AGS in claims:
        claims[AGS] = {**claims[AGS], "lineitem": claims[AGS]["lineitem"].format(base=platform.base)}
    return claims


# ------------------------------------------------------------------------------------- login
def test_login_initiation_redirects_to_the_platform_with_state_nonce_and_the_launch_url(tool, platform):
    auth = login(tool, platform)
    assert auth["scope"] == "openid" and auth["response_type"] == "id_token"
    assert auth["response_mode"] == "form_post" and auth["prompt"] == "none"
    assert auth["client_id"] == CLIENT_ID and auth["redirect_uri"] == "http://testserver/lti/launch"
    assert auth["login_hint"] == "learner-42" and auth["lti_message_hint"] == "hint-9"
    assert len(auth["state"]) >= 32 and len(auth["nonce"]) >= 32 and auth["state"] != auth["nonce"]


def test_login_from_an_unregistered_platform_is_refused(tool):
    response = tool.client.get(
        "/lti/login",
        params={"iss": "https://unknown.example", "login_hint": "x", "target_link_uri": "http://testserver/lti/launch"},
    )
    assert response.status_code == 400 and "trm lti add-platform" in response.json()["detail"]


def test_tool_keys_are_published_as_a_jwks_at_a_well_known_url(tool):
    keys = tool.client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["kid"]
    assert "d" not in keys[0]  # public half only


# ------------------------------------------------------------------------------------ launch
def test_resource_link_launch_opens_the_activity_of_the_linked_module(tool, platform):
    response, _, _ = launch(tool, platform, **resource_link())
    assert response.status_code == 200, response.text
    assert f"Module {MODULE}" in response.text and "course-7" in response.text
    assert launch_id_of(response.text)
    assert "solution_tokens" not in response.text  # solutions stay on the server


def test_launch_context_and_user_become_the_solve_context_so_course_pins_apply(tool, platform):
    tool.runtime.host.pin(MODULE, "course-pinned", "1.0.0")  # the server activates the newest, 1.1.0
    pinned, _, _ = launch(tool, platform, **resource_link(course="course-pinned"))
    other, _, _ = launch(tool, platform, **resource_link(course="course-other"))
    answer_pinned = tool.client.post(f"/lti/launches/{launch_id_of(pinned.text)}/solve", json={"puzzle": 0}).json()
    answer_other = tool.client.post(f"/lti/launches/{launch_id_of(other.text)}/solve", json={"puzzle": 0}).json()
    assert answer_pinned["version"] == "1.0.0" and answer_other["version"] == "1.1.0"
    tool.runtime.host.flush()
    tool.runtime.recorder.flush(10)
    with tool.runtime.store.session() as session:
        from trm_modules.store.models import Context, Solve

        row = (
            session.query(Solve, Context)
            .join(Context, Solve.context_id == Context.id)
            .filter(Solve.id == answer_pinned["solve_id"])
            .one()
        )
    assert (row.Context.platform, row.Context.course, row.Context.activity) == (
        platform.issuer,
        "course-pinned",
        "link-1",
    )
    assert row.Solve.learner == "learner-42"


def test_a_link_that_pins_a_version_pins_its_course(tool, platform):
    response, _, _ = launch(tool, platform, **resource_link(version="1.0.0", course="course-9"))
    answer = tool.client.post(f"/lti/launches/{launch_id_of(response.text)}/solve", json={"puzzle": 1}).json()
    assert answer["version"] == "1.0.0"
    assert next(s for s in tool.runtime.host.modules() if s.name == MODULE).pins["course-9"] == "1.0.0"


# ------------------------------------------------------------------------------ deep linking
def test_deep_linking_returns_the_picked_module_and_version_signed_by_the_tool(tool, platform):
    settings = {
        "deep_link_return_url": f"{platform.base}/deep-link-return",
        "accept_types": ["ltiResourceLink"],
        "data": "opaque-platform-data",
    }
    picker, _, _ = launch(
        tool, platform, message_type="LtiDeepLinkingRequest", **{DL + "deep_linking_settings": settings}
    )
    assert picker.status_code == 200, picker.text
    assert f'value="{MODULE}"' in picker.text and '<option value="1.1.0">' in picker.text
    action = re.search(r'<form method="post" action="([^"]+)"', picker.text).group(1)
    returned = tool.client.post(f"/lti/{action}", data={"module": MODULE, f"version_{MODULE}": "1.1.0"})
    assert returned.status_code == 200, returned.text
    assert f'action="{platform.base}/deep-link-return"' in returned.text
    token = re.search(r'name="JWT" value="([^"]+)"', returned.text).group(1)
    jwks = jwt.PyJWKSet.from_dict(tool.client.get("/.well-known/jwks.json").json())
    key = jwks[jwt.get_unverified_header(token)["kid"]].key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=platform.issuer)
    assert claims["iss"] == CLIENT_ID and claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "deployment_id"] == DEPLOYMENT and claims[DL + "data"] == "opaque-platform-data"
    (item,) = claims[DL + "content_items"]
    assert item["type"] == "ltiResourceLink" and item["url"] == "http://testserver/lti/launch"
    assert item["custom"] == {"module": MODULE, "version": "1.1.0"} and item["lineItem"]["scoreMaximum"] > 0


# ------------------------------------------------------------------------ grade passback (AGS)
def test_submitting_sends_the_learners_own_score_to_the_platforms_gradebook(tool, platform):
    scores_before, tokens_before = len(platform.scores), len(platform.token_requests)
    response, _, _ = launch(tool, platform, **with_gradebook(platform, resource_link(gradebook=True)))
    launch_id = launch_id_of(response.text)
    stored = LtiStore(tool.runtime.store).launch(launch_id).activity["puzzles"][0]
    result = tool.client.post(
        f"/lti/launches/{launch_id}/submit", json={"puzzle": 0, "cells": stored["solution_tokens"]}
    ).json()
    assert result["recorded"] and result["success"]
    (score,) = platform.scores[scores_before:]
    assert score["body"]["userId"] == "learner-42" and score["body"]["scoreGiven"] == score["body"]["scoreMaximum"] > 0
    assert score["body"]["activityProgress"] == "Completed" and score["body"]["gradingProgress"] == "FullyGraded"
    assert score["authorization"] == "Bearer ags-token-1"
    assert score["content_type"] == "application/vnd.ims.lis.v1.score+json"
    (token_request,) = platform.token_requests[tokens_before:]
    assert token_request["grant_type"] == "client_credentials" and token_request["scope"] == SCORE_SCOPE
    jwks = jwt.PyJWKSet.from_dict(tool.client.get("/.well-known/jwks.json").json())
    assertion = token_request["client_assertion"]
    claims = jwt.decode(
        assertion,
        jwks[jwt.get_unverified_header(assertion)["kid"]].key,
        algorithms=["RS256"],
        audience=f"{platform.base}/token",
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID


def test_cells_the_module_filled_earn_the_learner_nothing_in_the_gradebook(tool, platform):
    response, _, _ = launch(tool, platform, **with_gradebook(platform, resource_link(gradebook=True)))
    launch_id = launch_id_of(response.text)
    answer = tool.client.post(f"/lti/launches/{launch_id}/solve", json={"puzzle": 0}).json()
    result = tool.client.post(f"/lti/launches/{launch_id}/submit", json={"puzzle": 0, "cells": answer["tokens"]}).json()
    assert result["earned"] == 0 and not result["success"] and result["by_module"] == result["blanks"]
    assert platform.scores[-1]["body"]["scoreGiven"] == 0


# ------------------------------------------------------------------------ learner outcomes
def stored_outcomes(tool, course: str) -> list:
    from trm_modules.store.models import LearnerOutcome, LearnerOutcomeSolve

    with tool.runtime.store.session() as session:
        rows = (
            session.query(LearnerOutcome)
            .filter(LearnerOutcome.course == course)
            .order_by(LearnerOutcome.created_at)
            .all()
        )
        links = {
            row.id: sorted(
                link.solve_id
                for link in session.query(LearnerOutcomeSolve).filter(LearnerOutcomeSolve.outcome_id == row.id)
            )
            for row in rows
        }
        return [(row, links[row.id]) for row in rows]


def test_a_submit_keeps_the_learners_own_result_as_an_outcome_naming_the_solves_they_asked_for(tool, platform):
    response, _, _ = launch(tool, platform, **resource_link(course="course-outcomes"))
    launch_id = launch_id_of(response.text)
    asked = [tool.client.post(f"/lti/launches/{launch_id}/solve", json={"puzzle": 0}).json() for _ in range(2)]
    result = tool.client.post(f"/lti/launches/{launch_id}/submit", json={"puzzle": 0, "cells": asked[0]["tokens"]})
    assert result.status_code == 200 and result.json()["outcome_recorded"] is True
    stored = LtiStore(tool.runtime.store).launch(launch_id).activity["puzzles"][1]
    tool.client.post(f"/lti/launches/{launch_id}/submit", json={"puzzle": 1, "cells": stored["solution_tokens"]})
    (first, first_solves), (second, second_solves) = stored_outcomes(tool, "course-outcomes")
    assert (first.learner, first.activity, first.source, first.asked) == ("learner-42", "link-1", "lti", True)
    assert (first.score, first.success) == (0, False) and first.max_score == result.json()["blanks"]
    assert first_solves == sorted(a["solve_id"] for a in asked)  # the solves the learner asked for on that puzzle
    assert (second.success, second.asked, second_solves) == (True, False, [])
    assert (
        second.score
        == second.max_score
        == stored["tokens"].count(LtiStore(tool.runtime.store).launch(launch_id).activity["view"]["blank_token"])
    )


def test_the_same_submit_sent_twice_is_one_outcome_and_a_new_answer_another(tool, platform):
    response, _, _ = launch(tool, platform, **resource_link(course="course-resubmit"))
    launch_id = launch_id_of(response.text)
    stored = LtiStore(tool.runtime.store).launch(launch_id).activity["puzzles"][0]
    for _ in range(2):
        tool.client.post(f"/lti/launches/{launch_id}/submit", json={"puzzle": 0, "cells": stored["solution_tokens"]})
    assert len(stored_outcomes(tool, "course-resubmit")) == 1
    tool.client.post(f"/lti/launches/{launch_id}/submit", json={"puzzle": 0, "cells": stored["tokens"]})
    assert [row.success for row, _ in stored_outcomes(tool, "course-resubmit")] == [True, False]


# --------------------------------------------------------------------------------- refusals
def test_an_id_token_signed_with_another_key_is_refused(tool, platform):
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response, _, _ = launch(tool, platform, key=forged_key, **resource_link())
    assert response.status_code == 401 and response.json()["type"].endswith("lti-bad-signature")


def test_an_id_token_for_another_tool_is_refused(tool, platform):
    response, _, _ = launch(tool, platform, audience="some-other-tool", **resource_link())
    assert response.status_code == 401 and response.json()["type"].endswith("lti-wrong-audience")


def test_an_expired_id_token_is_refused(tool, platform):
    response, _, _ = launch(tool, platform, expires_in=-120, **resource_link())
    assert response.status_code == 401 and response.json()["type"].endswith("lti-expired-id-token")


def test_a_replayed_launch_is_refused(tool, platform):
    first, id_token, auth = launch(tool, platform, **resource_link())
    assert first.status_code == 200
    # even with the state's cookie put back (the same browser), a used state is refused
    tool.client.cookies.set(state_cookie_name(auth["state"]), auth["state"], path="/lti/")
    replay = tool.client.post("/lti/launch", data={"id_token": id_token, "state": auth["state"]})
    assert replay.status_code == 400 and "already used" in replay.json()["detail"]


def test_a_launch_from_a_browser_that_did_not_start_the_login_is_refused(tool, platform):
    auth = login(tool, platform)  # the attacker's own login: its state cookie stays in the attacker's browser
    id_token = platform.id_token(auth["nonce"], **resource_link())
    victim = TestClient(tool.client.app)
    refused = victim.post("/lti/launch", data={"id_token": id_token, "state": auth["state"]})
    assert refused.status_code == 401 and "not issued to this browser" in refused.json()["detail"]
    accepted = tool.client.post("/lti/launch", data={"id_token": id_token, "state": auth["state"]})
    assert accepted.status_code == 200, accepted.text  # the refusal consumed nothing


def test_the_login_sets_an_http_only_state_cookie_scoped_to_the_lti_routes(tool, platform):
    response = tool.client.get(
        "/lti/login",
        params={
            "iss": platform.issuer,
            "login_hint": "learner-42",
            "target_link_uri": "http://testserver/lti/launch",
            "client_id": CLIENT_ID,
        },
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    state = parse_qs(urlsplit(response.headers["location"]).query)["state"][0]
    assert f"={state};" in cookie and "HttpOnly" in cookie and "Path=/lti/" in cookie


def test_a_nonce_is_accepted_once(tool, platform):
    store = LtiStore(tool.runtime.store)
    registered = store.find_platform(platform.issuer, CLIENT_ID)
    nonce = uuid.uuid4().hex
    store.use_nonce(registered, nonce)
    with pytest.raises(LtiError, match="already used") as refused:
        store.use_nonce(registered, nonce)
    assert refused.value.slug == "replayed-nonce"


def test_an_id_token_whose_nonce_was_not_issued_for_this_login_is_refused(tool, platform):
    auth = login(tool, platform)
    id_token = platform.id_token(uuid.uuid4().hex, **resource_link())
    response = tool.client.post("/lti/launch", data={"id_token": id_token, "state": auth["state"]})
    assert response.status_code == 401 and response.json()["type"].endswith("lti-wrong-nonce")


def test_an_unregistered_deployment_is_refused(tool, platform):
    response, _, _ = launch(tool, platform, **{**resource_link(), LTI + "deployment_id": "deployment-x"})
    assert response.status_code == 401 and "trm lti add-platform" in response.json()["detail"]


# ----------------------------------------------------------------------------------- the CLI
def test_trm_lti_add_platform_stores_the_registration_in_the_database(tmp_path):
    db = str(tmp_path / "store.sqlite3")
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "lti",
            "add-platform",
            "--issuer",
            "https://canvas.example",
            "--client-id",
            "10000001",
            "--auth-login-url",
            "https://canvas.example/api/lti/authorize_redirect",
            "--auth-token-url",
            "https://canvas.example/login/oauth2/token",
            "--jwks-url",
            "https://canvas.example/api/lti/security/jwks",
            "--deployment-id",
            "1:abc",
            "--db",
            db,
        ],
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["lti", "platforms", "--json", "--db", db])
    (row,) = json.loads(listed.stdout)
    assert row["client_id"] == "10000001" and row["deployment_ids"] == ["1:abc"]


def test_a_link_to_a_module_without_a_browser_activity_is_refused_clearly(tool, platform, monkeypatch):
    from trm_adapters.lti import activity

    monkeypatch.setattr(
        activity,
        "grid_view",
        lambda codec: (_ for _ in ()).throw(activity.ScormExportError("the 'maze' codec has no browser view yet")),
    )
    response, _, _ = launch(tool, platform, **resource_link(course="course-maze"))
    assert response.status_code == 409 and "no browser view" in response.json()["detail"]
    picker, _, _ = launch(
        tool,
        platform,
        message_type="LtiDeepLinkingRequest",
        **{DL + "deep_linking_settings": {"deep_link_return_url": f"{platform.base}/back"}},
    )
    assert f'value="{MODULE}"' not in picker.text


# ------------------------------------------------------------------------------------- a maze in Chromium
TRAINED_MAZE = Path(__file__).resolve().parents[1] / "registry" / "packages" / "maze-7x7" / "maze-7x7-1.0.0.trm"


@pytest.fixture(scope="module")
def maze_lti_run(tmp_path_factory, platform):
    """The trained maze-7x7 module launched from the played platform (real OIDC login and signed launch against
    a tool server on a socket), its activity page then played in headless Chromium: the learner clicks the first
    maze's shortest path and submits, axe-core checks the page, the module answers the second maze."""
    import httpx
    import numpy as np

    from fixtures.browser import FIXTURES, npm_tools, require_browser, run_driver
    from fixtures.server import on_a_socket
    from trm_modules.package import DirectoryRegistry, open_package
    from trm_modules.server import ServerRuntime, ServerSettings

    require_browser()
    root = tmp_path_factory.mktemp("lti-maze")
    registry = DirectoryRegistry(root / "registry", create=True)
    registry.publish(TRAINED_MAZE)
    runtime = ServerRuntime.start(
        ServerSettings(
            registry=registry.root,
            db=str(root / "store.sqlite3"),
            journal_path=root / "journal.jsonl",
            cpu_threads=1,
            public_url="http://testserver",
            trusted_keys=TRAINED_MAZE.parents[2] / "keys",
        )
    )
    try:
        LtiStore(runtime.store).add_platform(
            issuer=platform.issuer,
            client_id=CLIENT_ID,
            auth_login_url=f"{platform.base}/authorize",
            auth_token_url=f"{platform.base}/token",
            jwks_url=f"{platform.base}/jwks",
            deployment_ids=[DEPLOYMENT],
            name="Test LMS",
        )
        with on_a_socket(runtime) as base, httpx.Client(base_url=base) as browser_session:
            started = browser_session.get(
                "/lti/login",
                params={
                    "iss": platform.issuer,
                    "login_hint": "learner-42",
                    "target_link_uri": "http://testserver/lti/launch",
                    "client_id": CLIENT_ID,
                },
            )
            assert started.status_code == 302, started.text
            auth = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
            claims = {
                LTI + "custom": {"module": "maze-7x7"},
                LTI + "context": {"id": "course-maze", "title": "Mazes"},
            }
            launched = browser_session.post(
                "/lti/launch",
                data={"id_token": platform.id_token(auth["nonce"], **claims), "state": auth["state"]},
            )
            assert launched.status_code == 200, launched.text
            page = root / "launch.html"
            page.write_text(launched.text)
            config = json.loads(
                re.search(r'<script type="application/json" id="activity">(.*?)</script>', launched.text, re.S).group(1)
            )
            codec = open_package(TRAINED_MAZE).codec()
            tokens = np.array(config["puzzles"][0]["tokens"])
            solution = codec.encode_output(codec.reference_solution(codec.decode_input(tokens)))
            clicks = np.flatnonzero((solution == 5) & (tokens == 2)).tolist()  # open cells on the path
            shots = os.environ.get("TRM_SCORM_SCREENSHOTS", "")
            return (
                config,
                clicks,
                run_driver(
                    FIXTURES / "lti_driver.cjs",
                    {
                        "BASE_URL": base,
                        "PAGE": str(page),
                        "CLICKS": json.dumps(clicks),
                        "AXE": str(npm_tools() / "axe-core" / "axe.min.js"),
                        "SHOT": str(Path(shots) / "lti-maze.png") if shots else "",
                    },
                ),
            )
    finally:
        runtime.close()


def test_the_lti_activity_draws_a_maze_board_the_learner_solves_by_clicking(maze_lti_run):
    config, clicks, run = maze_lti_run
    assert config["view"]["entry"] == "click" and config["module"] == "maze-7x7"
    board = run["board"]
    assert board["cells"] == 49 and board["walls"] > 0 and (board["start"], board["goal"]) == ("S", "G")
    assert board["buttons"] == config["puzzles"][0]["tokens"].count(2)  # every open cell, and only those, clickable
    alone = run["alone"]
    assert alone["clicked"] == len(clicks) > 0 and alone["wrong"] == 0 and alone["right"] == len(clicks), alone
    assert f"{len(clicks)} of {len(clicks)} cells right by you" in alone["status"]
    assert run["errors"] == []


def test_the_lti_maze_activity_has_no_serious_accessibility_violation(maze_lti_run):
    _, _, run = maze_lti_run
    print("axe violations:", run["axe"])
    assert [v for v in run["axe"] if v["impact"] in ("serious", "critical")] == []


def test_the_module_marks_a_maze_path_in_the_lti_activity(maze_lti_run):
    _, _, run = maze_lti_run
    assert run["helped"]["pathCells"] > 0 and "The module (1.0.0) filled" in run["helped"]["status"], run["helped"]
