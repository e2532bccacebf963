"""ASGI layers around the app: the body read (size 413, a stalled client 408, the server's budget
for bodies in flight 503) and per-request metrics."""

from __future__ import annotations

import asyncio
import json
import time

from facezoo.serving.errors import Unavailable
from facezoo.serving.limits import Budget
from facezoo.serving.metrics import Metrics

DRAIN_CAP = 16 << 20  # past the limit, read at most this much more before answering 413 and closing


async def send_error(send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


CLOSE = (b"connection", b"close")


class BodyLimit:
    """Reads the whole body first: past `limit` bytes the answer is 413, and the app never runs.

    The body over the limit is read and dropped (up to DRAIN_CAP more), so that a client still
    sending gets the 413 instead of a reset connection. A client that sends nothing for
    `read_timeout_s` in the middle of its body gets 408 and the connection is closed. The bytes of
    every body held (read, parsed, or waiting for the model) count against `budget`: over it, a
    request gets 503 with Retry-After before more of its body is buffered.
    """

    def __init__(self, app, limit: int, read_timeout_s: float = 30.0, budget: Budget | None = None):
        self.app = app
        self.limit = limit
        self.read_timeout_s = read_timeout_s
        self.budget = budget or Budget(1 << 62)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await send_error(send, 400, f"Content-Length: not a number: {declared[:40].decode('latin-1')!r}",
                                    [CLOSE])
        too_large = f"body: more than {self.limit} bytes (facezoo serve --max-body-mb)"
        chunks, size, more, held = [], 0, True, 0
        try:
            while more:
                try:
                    message = await asyncio.wait_for(receive(), self.read_timeout_s)
                except asyncio.TimeoutError:
                    return await send_error(send, 408, f"body: nothing arrived for {self.read_timeout_s:g} s after "
                                            f"{size} bytes (facezoo serve --read-timeout-s)", [CLOSE])
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                more = message.get("more_body", False)
                if size <= self.limit:
                    try:
                        self.budget.take(len(chunk))
                    except Unavailable as exc:
                        return await send_error(send, 503, str(exc), [(b"retry-after", b"1"), CLOSE])
                    held += len(chunk)
                    chunks.append(chunk)
                elif size > self.limit + DRAIN_CAP:
                    return await send_error(send, 413, too_large, [CLOSE])
            if size > self.limit:
                return await send_error(send, 413, too_large)
            body = b"".join(chunks)
            del chunks
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.budget.give(held)


class RequestMetrics:
    """Counts and times every request by its route template (never by raw path: bounded labels)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            self.metrics.observe_request(getattr(route, "path", "unmatched"), status, time.perf_counter() - start)
