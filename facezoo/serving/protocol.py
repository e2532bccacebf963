"""The HTTP protocol `facezoo serve` runs uvicorn with: uvicorn's httptools protocol, guarded.

uvicorn has a keep-alive timeout between requests but none for a request's headers, no JSON
answer for too many connections, and on shutdown it waits for a client still sending its body
until the drain ends (then cancels it: a plain-text 500 and tracebacks). Here:

- the headers of every request must arrive within ``read_timeout_s`` of its first byte (or of the
  connection): 408 and the connection closed;
- past ``max_connections`` open connections, a new one is answered 503 (Retry-After) and closed;
- on shutdown (SIGTERM), a request still sending its body is answered 503 and closed at once;
  requests whose bodies arrived are answered as usual.

Bodies that stall are the ASGI layer's (facezoo.serving.middleware.BodyLimit: 408 as well).
"""

from __future__ import annotations

import http
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(read_timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these bounds."""

    class GuardedProtocol(HttpToolsProtocol):
        _timer = None
        _in_headers = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._answer(503, f"connection: the server has {len(self.connections) - 1} open connections "
                             f"(facezoo serve --max-connections {max_connections}); retry later", retry=True)
                return
            self._arm()  # the first request's headers are due within the read timeout

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = True
            self._arm()

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def shutdown(self) -> None:
            cycle = self.cycle
            receiving = cycle is not None and not cycle.response_complete and cycle.more_body
            if receiving and not cycle.response_started:
                cycle.disconnected = True  # the app sees a disconnect and answers nothing itself
                cycle.message_event.set()
            if (receiving and not cycle.response_started) or self._in_headers:
                self._answer(503, "the server is shutting down: this request's body had not arrived; retry "
                             "against another instance or later", retry=True)
                return
            super().shutdown()

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(read_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _headers_too_slow(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                self._answer(408, f"headers: not complete within {read_timeout_s:g} s "
                             "(facezoo serve --read-timeout-s)")

        def _answer(self, status: int, message: str, retry: bool = False) -> None:
            """A whole JSON response written directly, then the connection closed."""
            self._disarm()
            body = json.dumps({"error": message}).encode()
            head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "content-type: application/json",
                    f"content-length: {len(body)}", "connection: close"]
            if retry:
                head.append("retry-after: 1")
            if not self.transport.is_closing():
                self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                self.transport.close()

    return GuardedProtocol


__all__ = ["guarded_protocol"]
