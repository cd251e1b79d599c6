"""Request body limits, enforced before any parsing.

``BodyLimitMiddleware`` (plain ASGI) refuses a request whose ``Content-Length`` exceeds the limit
of its route with 413 before reading a byte, and counts the bytes of bodies without a length
(chunked uploads) as they stream, answering 413 as soon as the limit is passed.
``JsonDepthMiddleware`` (inside it) reads a JSON body (already bounded in size) and refuses one
nesting deeper than ``MAX_JSON_DEPTH`` with 400 before any route parses it, so no deep document can
end in a ``RecursionError`` in FastAPI, the xAPI adapter or a schema validator.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

from ..json_limits import MAX_JSON_DEPTH, json_depth
from .problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """The body passed the route's limit while streaming (raised from ``receive``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit:,} bytes for this route")


class BodyLimitMiddleware:
    """413 for bodies over ``default_limit`` bytes, or over the limit of the longest matching path prefix."""

    def __init__(self, app: Any, default_limit: int, prefix_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.prefix_limits = sorted((prefix_limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The body limit of requests to ``path``."""
        for prefix, limit in self.prefix_limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, scope["path"], limit, f"the request declares {declared:,} bytes")
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await _refuse(send, scope["path"], limit, "the streamed body grew past it")


class JsonDepthMiddleware:
    """400 for a JSON request body nesting objects/arrays deeper than ``max_depth`` (see module docstring)."""

    def __init__(self, app: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        depth = json_depth(body)
        if depth > self.max_depth:
            detail = (
                f"the JSON body nests {depth:,} levels deep; at most {self.max_depth} levels of objects and "
                "arrays are accepted"
            )
            await _send_problem(send, scope["path"], 400, "json-too-deep", "JSON nested too deeply", detail)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}]), send)


def _is_json(scope: Scope) -> bool:
    if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _replay(messages: list[Message]) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        return {"type": "http.disconnect"}

    return receive


async def _send_problem(send: Send, path: str, status: int, slug: str, title: str, detail: str) -> None:
    body = json.dumps(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail, "instance": path}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, path: str, limit: int, why: str) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "content-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body exceeds the limit of {limit:,} bytes for this route ({why})",
            "instance": path,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
