"""Run the app under uvicorn on a socket bound first, so that `--port 0` can say its port.

SIGTERM (or Ctrl-C) stops accepting connections, answers a request still sending its body 503 at
once, lets the requests in flight finish (at most `drain_s`), then the lifespan closes the
batchers and models, and the process exits 0.
"""

from __future__ import annotations

import signal
import socket
from typing import Callable

import uvicorn

from facezoo.serving.protocol import guarded_protocol


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from facezoo.errors import FacezooError

        raise FacezooError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    sock.listen(2048)  # connections made before uvicorn starts accepting wait in the backlog
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a signal is answered by the drain alone: uvicorn would raise
    the signal again once it has shut down, from inside its event loop, where a SIGTERM with a
    detector's OpenVINO nets loaded crashed the process (exit 139) instead of ending it with 0."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_server(app, sock: socket.socket, *, drain_s: float, read_timeout_s: float = 30.0,
               max_connections: int = 512, log_level: str = "info", on_stop: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; returns after the drain (SIGTERM does not kill the process)."""
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=drain_s,
                            lifespan="on", server_header=False,
                            http=guarded_protocol(read_timeout_s, max_connections))
    server = _DrainingServer(config)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        if on_stop:
            on_stop()
