"""Limits of `trm serve` against clients that flood or crawl: a per-token rate limit answered 429 with
Retry-After and a problem document, a request-body deadline answered 408, both in the OpenAPI document."""

from __future__ import annotations

import base64
import socket
import time

import httpx
import pytest

from fixtures.server import MODULE, on_a_socket, puzzle, served
from trm_modules.server.ratelimit import TokenBuckets, credential_of
from trm_modules.settings import Settings


def test_the_rate_limit_is_a_setting_like_the_others(monkeypatch):
    monkeypatch.setenv("TRM_RATE_LIMIT", "7.5")
    assert Settings().rate_limit == 7.5
    assert Settings(rate_limit=2).rate_limit == 2
    with pytest.raises(ValueError):
        Settings(rate_limit=-1)


def test_a_token_bucket_admits_the_burst_then_the_rate_and_says_how_long_to_wait():
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one request refills in 1/rate s
    assert buckets.take("b") == 0.0  # another token has its own bucket
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_the_credential_is_the_bearer_token_or_the_basic_password():
    basic = base64.b64encode(b"my-lms:trm_secret").decode()
    assert credential_of({"headers": [(b"authorization", b"Bearer trm_abc")]}) == "trm_abc"
    assert credential_of({"headers": [(b"authorization", f"Basic {basic}".encode())]}) == "trm_secret"
    assert credential_of({"headers": []}) is None


def test_a_token_over_its_rate_gets_429_with_retry_after_and_a_problem_document(tmp_path):
    with served(tmp_path, rate_limit=0.05, rate_limit_burst=2) as s:
        body = {"input": puzzle(), "context": {"course": "c"}}
        answers = [s.client.post(f"/v1/modules/{MODULE}/solve", json=body, headers=s.auth("solve")) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["status"] == 429 and problem["type"].endswith("rate-limited")
        assert "0.05 requests per second" in problem["detail"]
        # another token is not held back by this one's spending; open routes are not counted
        assert s.client.get("/v1/modules", headers=s.auth("admin")).status_code == 200
        assert all(s.client.get("/healthz").status_code == 200 for _ in range(5))
        metrics = s.client.get("/metrics").text
        assert "trm_rate_limited_total 1.0" in metrics


def test_without_a_rate_limit_nothing_is_refused(tmp_path):
    with served(tmp_path) as s:
        assert all(s.client.get("/v1/modules", headers=s.auth("solve")).status_code == 200 for _ in range(30))


def test_the_openapi_document_describes_429_with_retry_after_and_408():
    from trm_modules.server.openapi import decorate

    document = {"paths": {"/v1/x": {"post": {"operationId": "x", "requestBody": {"content": {}}, "responses": {}}}}}
    operation = decorate(document, {"x"})["paths"]["/v1/x"]["post"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert "rate limit" in operation["responses"]["429"]["description"]
    assert "408" in operation["responses"]


def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_the_server_keeps_serving(tmp_path):
    with served(tmp_path, request_timeout_s=0.5) as s, on_a_socket(s.runtime) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(
                f"POST /v1/modules/{MODULE}/solve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{s.tokens['solve']}\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                '{"input": '.encode()
            )
            started = time.monotonic()
            reply = slow.recv(4096).decode()
            assert reply.startswith("HTTP/1.1 408"), reply
            assert time.monotonic() - started < 5
            while "request-timeout" not in reply:  # the body may come in a later segment (connection: close)
                more = slow.recv(4096).decode()
                if not more:
                    break
                reply += more
            assert "request-timeout" in reply
        answer = httpx.post(f"{url}/v1/modules/{MODULE}/solve", json={"input": puzzle()}, headers=s.auth("solve"))
        assert answer.status_code == 200
