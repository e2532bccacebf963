"""Fetching one file from one source (HTTP(S) or local), with retries and resumption.

The bytes go into a StagedFile; verification and publishing are the caller's job.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable

import httpx

from facezoo.downloader import pypi
from facezoo.downloader.sources import Candidate
from facezoo.downloader.staging import StagedFile, copy_stream
from facezoo.downloader.verify import too_long
from facezoo.registry import ModelFile

USER_AGENT = "facezoo-downloader/1"
MAX_BACKOFF = 30.0


class SourceFailed(Exception):
    """This source cannot deliver the file; str() is the reason, without model/file/location."""

    def __init__(self, reason: str, *, quiet: bool = False):
        super().__init__(reason)
        self.quiet = quiet  # an expected miss (a local mirror without the file)


class _Retry(Exception):
    """A failure worth another attempt at the same source."""


@dataclass
class Listener:
    """What a transfer tells the outside world (all optional)."""

    start: Callable[[int | None], None] = lambda total: None
    progress: Callable[[int, int | None], None] = lambda done, total: None
    retry: Callable[[int, int, str], None] = lambda attempt, attempts, reason: None


@dataclass
class Settings:
    attempts: int = 3
    retry_delay: float = 1.0
    timeout: float = 60.0


def make_client(timeout: float) -> httpx.Client:
    # trust_env: proxies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) and CA bundles from the environment.
    return httpx.Client(
        follow_redirects=True,
        trust_env=True,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


def fetch(
    candidate: Candidate,
    staged: StagedFile,
    expected: ModelFile,
    *,
    client: Callable[[], httpx.Client],
    settings: Settings,
    listener: Listener,
    allow_resume: bool = True,
) -> bool:
    """Fill `staged` from `candidate`. Returns whether the transfer was resumed.

    Raises SourceFailed when this source is exhausted.
    """
    staged.reset()
    if candidate.local:
        _copy_local(candidate, staged, listener)
        return False
    url, http = candidate.location, client()
    if pypi.is_pypi(url):  # a release file, found through the user's package index
        index = pypi.settings()
        http = pypi.client_for(index, http)
        try:
            url = pypi.resolve(candidate.location, expected.name, http, index)
        except pypi.PackageIndexError as exc:
            raise SourceFailed(str(exc)) from None
    return _HttpTransfer(url, staged, expected, http, settings, listener, allow_resume).run()


def _copy_local(candidate: Candidate, staged: StagedFile, listener: Listener) -> None:
    path = candidate.path
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise SourceFailed("no such file", quiet=candidate.kind == "mirror") from None
    except OSError as exc:
        raise SourceFailed(f"cannot read ({exc.strerror or exc})") from None
    with handle:
        try:
            total = os.fstat(handle.fileno()).st_size
            listener.start(total)
            copy_stream(handle, staged, lambda done: listener.progress(done, total))
        except OSError as exc:
            raise SourceFailed(f"cannot read ({exc.strerror or exc})") from None


def _reason(exc: Exception) -> str:
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


class _HttpTransfer:
    def __init__(self, url, staged, expected, client, settings, listener, allow_resume):
        self.url = url
        self.staged: StagedFile = staged
        self.expected: ModelFile = expected
        self.client: httpx.Client = client
        self.settings: Settings = settings
        self.listener: Listener = listener
        self.allow_resume = allow_resume
        self.resumable = False  # the server said Accept-Ranges: bytes (or answered 206)
        self.resumed = False

    def run(self) -> bool:
        attempts = max(1, self.settings.attempts)
        last = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.listener.retry(attempt, attempts, last)
                time.sleep(min(self.settings.retry_delay * 2 ** (attempt - 2), MAX_BACKOFF))
            try:
                self._attempt()
                return self.resumed
            except _Retry as exc:
                last = str(exc)
        if attempts > 1:
            last += f" (gave up after {attempts} attempts)"
        raise SourceFailed(last)

    def _attempt(self) -> None:
        staged = self.staged
        headers = {}
        if staged.size and self.resumable and self.allow_resume:
            headers["Range"] = f"bytes={staged.size}-"
        elif staged.size:
            staged.reset()
        try:
            with self.client.stream("GET", self.url, headers=headers) as response:
                total = self._check_response(response, bool(headers))
                self.listener.start(total)
                for chunk in response.iter_bytes():
                    staged.write(chunk)
                    problem = too_long(self.expected, staged.size)
                    if problem:
                        raise SourceFailed(problem)
                    self.listener.progress(staged.size, total)
        except httpx.TimeoutException as exc:
            kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for data"
            raise _Retry(f"timed out {kind} ({self.settings.timeout:g} s) after {staged.size} bytes") from None
        except httpx.ConnectError as exc:
            raise _Retry(f"connection failed ({_reason(exc)})") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise SourceFailed(f"unsupported URL ({_reason(exc)})") from None
        except httpx.TooManyRedirects as exc:
            raise SourceFailed(f"too many redirects ({_reason(exc)})") from None
        except httpx.ProxyError as exc:
            raise _Retry(f"proxy error ({_reason(exc)})") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection dropped after {staged.size} bytes ({_reason(exc)})") from None
        except httpx.DecodingError as exc:
            raise _Retry(f"undecodable response ({_reason(exc)})") from None
        if self.expected.size is not None and staged.size < self.expected.size:
            raise _Retry(f"short body: got {staged.size} of {self.expected.size} bytes")

    def _check_response(self, response: httpx.Response, sent_range: bool) -> int | None:
        """Decide what to do with the status; returns the file's total size if known."""
        status = response.status_code
        if response.headers.get("accept-ranges", "").strip().lower() == "bytes":
            self.resumable = True
        announced: int | None = None
        if status == 206:
            content_range = _content_range(response.headers.get("content-range"))
            start = content_range[0] if content_range else -1
            if start != (self.staged.size if sent_range else 0):
                self.staged.reset()
                self.resumable = False
                raise _Retry(f"server answered an unexpected range ({response.headers.get('content-range')})")
            self.resumable = True
            self.resumed = self.resumed or sent_range
            announced = content_range[1] if content_range else None
        elif status == 200:
            if sent_range:  # the server ignored Range: start again from byte 0
                self.staged.reset()
            length = response.headers.get("content-length")
            announced = int(length) if length and length.isdigit() else None
        elif status == 416 and sent_range:
            self.staged.reset()
            self.resumable = False
            raise _Retry("server refused the range request (HTTP 416)")
        else:
            reason = f"HTTP {status} {response.reason_phrase}".strip()
            if status >= 500 or status in (408, 429):
                raise _Retry(reason)
            raise SourceFailed(reason)
        expected = self.expected.size
        if expected is not None and announced is not None and announced != expected:
            raise SourceFailed(f"size mismatch: expected {expected} bytes, the server announces {announced}")
        return expected if expected is not None else announced
