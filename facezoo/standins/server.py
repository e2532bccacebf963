"""A loopback HTTP server for stand-in files, with fault injection.

    with StandinServer(root) as server:
        server.inject("/arcface/arcface.ckpt", Fault.DROP_MID_BODY, times=1)
        download_models(..., mirrors=[server.url])
        assert server.requests_for("/arcface/arcface.ckpt")[1].range == "bytes=...-"

It serves the files under `root` (GET and HEAD) with Content-Length, `Accept-Ranges: bytes`
and single-range requests (206). Faults are queued per path and consumed one per request.
"""

from __future__ import annotations

import enum
import re
import socket
import sys
import threading
import urllib.parse
import weakref
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 64 * 1024


class Fault(enum.Enum):
    DROP_MID_BODY = "drop_mid_body"  # send the headers and half the body, then close
    SERVER_ERROR = "server_error"  # answer 500 (or the status given to inject)
    IGNORE_RANGE = "ignore_range"  # answer 200 with the full body even to a Range request
    CORRUPT = "corrupt"  # send the right length but flip some bytes
    STALL = "stall"  # send half the body, then go silent for `stall_seconds`, then close
    NOT_FOUND = "not_found"  # answer 404


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    range: str | None
    status: int
    fault: Fault | None


@dataclass
class _Injection:
    fault: Fault
    remaining: int | None  # None: every request from now on
    skip: int  # let this many requests through first
    status: int


class StandinServer:
    """A threaded HTTP server on 127.0.0.1 and an ephemeral port; a context manager."""

    def __init__(
        self,
        root: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stall_seconds: float = 3.0,
        chunk_delay: float = 0.0,
        idle_timeout: float = 10.0,
    ):
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self.stall_seconds = stall_seconds  # how long STALL stays silent (bounded)
        self.chunk_delay = chunk_delay  # seconds to sleep after each 64 KiB: a slow server
        self.idle_timeout = idle_timeout  # an idle keep-alive connection is closed after this
        self._faults: dict[str, deque[_Injection]] = {}
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> StandinServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"owner": self, "timeout": self.idle_timeout})
        httpd = _Server((self.host, self.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-server", daemon=True
        )
        self._thread.start()
        # Stops by itself when the server object goes away or the interpreter exits.
        self._finalizer = weakref.finalize(self, _shutdown, httpd, self._stopping, self._thread)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd = None
        self._finalizer()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the stand-in server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + "/" + urllib.parse.quote(path.lstrip("/"))

    # faults

    def inject(self, path: str, fault: Fault, times: int | None = 1, *, skip: int = 0, status: int | None = None) -> None:
        """Queue `fault` for the next `times` requests of `path` (None: all), after `skip` clean ones."""
        default_status = {Fault.SERVER_ERROR: 500, Fault.NOT_FOUND: 404}.get(fault, 200)
        with self._lock:
            self._faults.setdefault(_norm(path), deque()).append(
                _Injection(fault, times, skip, status or default_status)
            )

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(_norm(path), None)

    def _take_fault(self, path: str) -> _Injection | None:
        with self._lock:
            queue = self._faults.get(path)
            while queue:
                head = queue[0]
                if head.skip > 0:
                    head.skip -= 1
                    return None
                if head.remaining is None:
                    return head
                if head.remaining > 0:
                    head.remaining -= 1
                    if head.remaining == 0:
                        queue.popleft()
                    return head
                queue.popleft()
            return None

    # request log

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def requests_for(self, path: str) -> list[LoggedRequest]:
        path = _norm(path)
        return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _resolve(self, path: str) -> Path | None:
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        if candidate.is_dir():  # a folder's index.html, as a package index's project pages are served
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None


class _Server(ThreadingHTTPServer):
    """A client that hangs up mid-transfer (a cancelled or resumed download) is routine here, not a
    traceback on stderr; anything else is still reported."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def _shutdown(httpd: ThreadingHTTPServer, stopping: threading.Event, thread: threading.Thread) -> None:
    stopping.set()  # wakes stalled and throttled responses
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _norm(path: str) -> str:
    return "/" + urllib.parse.unquote(urllib.parse.urlsplit(path).path).lstrip("/")


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive; None: unsatisfiable; False: not a single byte range (ignore it)."""
    match = re.match(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", header)
    if not match or (not match.group(1) and not match.group(2)):
        return False
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


class _Handler(BaseHTTPRequestHandler):
    owner: StandinServer
    protocol_version = "HTTP/1.1"
    server_version = "facezoo-standin/1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _simple(self, status: int, message: str, path: str, fault: Fault | None, extra: dict | None = None) -> None:
        body = (message + "\n").encode()
        # Logged before anything is sent: a client may act on the status line (and a test read
        # the log) before this thread runs on.
        self.owner._record(LoggedRequest(self.command, path, self.headers.get("Range"), status, fault))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        owner = self.owner
        path = _norm(self.path)
        range_header = self.headers.get("Range")
        injection = owner._take_fault(path)
        fault = injection.fault if injection else None
        file = owner._resolve(path)
        if fault is Fault.NOT_FOUND or file is None:
            self._simple(injection.status if injection else 404, "not found", path, fault)
            return
        if fault is Fault.SERVER_ERROR:
            self._simple(injection.status, "injected server error", path, fault)
            return
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        if range_header and fault is not Fault.IGNORE_RANGE:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                self._simple(416, "range not satisfiable", path, fault, {"Content-Range": f"bytes */{size}"})
                return
            if parsed:
                start, end = parsed
                status = 206
        length = max(0, end - start + 1)
        cutoff = length // 2 if fault in (Fault.DROP_MID_BODY, Fault.STALL) else length
        owner._record(LoggedRequest(self.command, path, range_header, status, fault))  # before sending: see _simple
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if cutoff < length:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return
        try:
            self._send_body(file, start, cutoff, corrupt=fault is Fault.CORRUPT)
            if cutoff < length:
                if fault is Fault.STALL:
                    owner._stopping.wait(owner.stall_seconds)
                self._drop()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    def _send_body(self, file: Path, start: int, count: int, corrupt: bool) -> None:
        owner = self.owner
        with open(file, "rb") as handle:
            handle.seek(start)
            sent = 0
            while sent < count and not owner._stopping.is_set():
                chunk = handle.read(min(CHUNK, count - sent))
                if not chunk:
                    break
                if corrupt:  # flip one byte in every chunk: same length, wrong contents
                    middle = len(chunk) // 2
                    chunk = chunk[:middle] + bytes([chunk[middle] ^ 0xFF]) + chunk[middle + 1 :]
                self.wfile.write(chunk)
                sent += len(chunk)
                if owner.chunk_delay:
                    owner._stopping.wait(owner.chunk_delay)
            self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
