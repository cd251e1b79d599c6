"""Per-token rate limits and slow-client timeouts (plain ASGI, outside every route).

``RateLimitMiddleware`` keeps one token bucket per API token (the bearer token, or the password of
Basic auth, which is how xAPI content sends it): it fills at ``rate`` requests per second up to
``burst``, and a request that finds it empty is answered **429** with ``Retry-After`` (whole seconds
until a request would pass) and a problem document, before any route, database or model is touched.
Requests without a token (``/healthz``, ``/metrics``, the docs, refusals for lacking one) are not
counted: the limit is on what a credential may spend. The limit is per replica: N replicas behind a
load balancer admit up to N times it in all.

``RequestTimeoutMiddleware`` bounds how long a client may take to send its request body: a body
not complete ``timeout_s`` after the request began is answered **408** (and the connection closed),
so a client trickling bytes cannot hold a worker. Idle keep-alive connections are closed by uvicorn
after ``keep_alive_timeout_s`` (``serve``). Slow request *headers* are for the proxy in front
(nginx's ``client_header_timeout``; see ``deploy/nginx.conf``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import threading
import time
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

from .problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Buckets kept before idle full ones are dropped (bounds memory against many distinct tokens).
MAX_BUCKETS = 10_000


def credential_of(scope: Scope) -> str | None:
    """The API token a request carries (``Bearer T``, or the password of ``Basic user:T``), else None."""
    for name, value in scope.get("headers", ()):
        if name != b"authorization":
            continue
        kind, _, credential = value.decode("latin-1").strip().partition(" ")
        credential = credential.strip()
        if kind.lower() == "bearer" and credential:
            return credential
        if kind.lower() == "basic" and credential:
            try:
                _, _, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return password or None
    return None


class TokenBuckets:
    """One token bucket per key: ``rate`` per second, at most ``burst`` saved up (thread-safe)."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one request of ``key``: 0.0 when admitted, else the seconds until one would be."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > MAX_BUCKETS:
                self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:  # refilled to the brim: the same as no entry
                del self._buckets[key]


class RateLimitMiddleware:
    """429 + ``Retry-After`` for a token over its rate (see the module docstring)."""

    def __init__(
        self, app: Any, rate: float, burst: float | None = None, on_limited: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst)
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credential = credential_of(scope)
        if credential is not None:
            key = hashlib.sha256(credential.encode()).hexdigest()  # never keep the token itself
            wait = self.buckets.take(key)
            if wait > 0:
                if self.on_limited is not None:
                    self.on_limited()
                retry_after = max(1, math.ceil(wait))
                detail = (
                    f"this token may make {self.buckets.rate:g} requests per second (bursts of "
                    f"{self.buckets.burst:g}); retry after {retry_after} s"
                )
                await _send_problem(
                    send,
                    scope.get("path", ""),
                    429,
                    "rate-limited",
                    "Too Many Requests",
                    detail,
                    [(b"retry-after", str(retry_after).encode())],
                )
                return
        await self.app(scope, receive, send)


class RequestTimeoutMiddleware:
    """408 when a request's body has not fully arrived ``timeout_s`` after the request began."""

    def __init__(self, app: Any, timeout_s: float, prefix_timeouts: dict[str, float] | None = None) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.prefix_timeouts = sorted((prefix_timeouts or {}).items(), key=lambda item: -len(item[0]))

    def timeout_for(self, path: str) -> float:
        """The body deadline of requests to ``path`` (package uploads get longer)."""
        return next((timeout for prefix, timeout in self.prefix_timeouts if path.startswith(prefix)), self.timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout_s = self.timeout_for(scope["path"])
        deadline = asyncio.get_running_loop().time() + timeout_s
        body_done = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # after the body: waiting for a disconnect is not the client's slowness
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise _SlowBody(self.timeout_for(scope["path"])) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except _SlowBody:
            if response_started:
                raise
            detail = f"the request body did not arrive within {timeout_s:g} s"
            await _send_problem(
                send,
                scope.get("path", ""),
                408,
                "request-timeout",
                "Request Timeout",
                detail,
                [(b"connection", b"close")],
            )


class _SlowBody(HTTPException):
    """The body's deadline passed (raised from ``receive``; a route reading the body answers 408 through the
    problem handlers, a middleware reading it before the routes through ``RequestTimeoutMiddleware``)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408, f"the request body did not arrive within {timeout_s:g} s", headers={"Connection": "close"}
        )


async def _send_problem(
    send: Send, path: str, status: int, slug: str, title: str, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    import json

    body = json.dumps(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail, "instance": path}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
