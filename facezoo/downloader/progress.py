"""Telling the user what the downloader is doing: rich bars, JSON lines, or nothing.

Every reporter is thread-safe: with `--jobs N` several files report at once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

JSON_INTERVAL = 0.25  # seconds between two progress events of one file


class Reporter(Protocol):
    def start(self, model: str, file: str, total: int | None, source: str) -> None: ...
    def progress(self, model: str, file: str, done: int, total: int | None) -> None: ...
    def done(self, model: str, file: str, size: int, status: str, source: str | None) -> None: ...
    def error(self, model: str, file: str, message: str, *, final: bool) -> None: ...
    def note(self, model: str, file: str, message: str) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    def start(self, model, file, total, source): pass
    def progress(self, model, file, done, total): pass
    def done(self, model, file, size, status, source): pass
    def error(self, model, file, message, *, final): pass
    def note(self, model, file, message): pass
    def close(self): pass


class JsonReporter:
    """One JSON object per line: start, progress (throttled), done, error (and retry notes)."""

    def __init__(self, stream: TextIO | None = None, interval: float = JSON_INTERVAL):
        self.stream = stream or sys.stdout
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}

    def emit(self, event: str, model: str, file: str, **fields) -> None:
        line = json.dumps({"event": event, "model": model, "file": file, **fields})
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, model, file, total, source):
        self._last[(model, file)] = 0.0
        self.emit("start", model, file, bytes=0, total=total, source=source)

    def progress(self, model, file, done, total):
        now = time.monotonic()
        if now - self._last.get((model, file), 0.0) < self.interval:
            return
        self._last[(model, file)] = now
        self.emit("progress", model, file, bytes=done, total=total)

    def done(self, model, file, size, status, source):
        self.emit("done", model, file, bytes=size, total=size, status=status, source=source)

    def error(self, model, file, message, *, final):
        self.emit("error", model, file, message=message, final=final)

    def note(self, model, file, message):
        self.emit("note", model, file, message=message)

    def close(self):
        pass


class RichReporter:
    """A progress bar per file in flight, one line per finished file, on stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._lock = threading.Lock()
        self._started = False

    def _ensure_started(self) -> None:
        if not self._started:
            self._progress.start()
            self._started = True

    def start(self, model, file, total, source):
        with self._lock:
            self._ensure_started()
            key = (model, file)
            if key in self._tasks:
                self._progress.update(self._tasks[key], total=total, completed=0)
            else:
                self._tasks[key] = self._progress.add_task(f"{model}/{file}", total=total)

    def progress(self, model, file, done, total):
        task = self._tasks.get((model, file))
        if task is not None:
            self._progress.update(task, completed=done, total=total)

    def _finish(self, model, file):
        task = self._tasks.pop((model, file), None)
        if task is not None:
            self._progress.remove_task(task)

    def done(self, model, file, size, status, source):
        with self._lock:
            self._finish(model, file)
            where = f" from {source}" if source and status == "downloaded" else ""
            self._print(f"[green]{status}[/] {escape(f'{model}/{file}')} ({size:,} bytes){escape(where)}")

    def error(self, model, file, message, *, final):
        with self._lock:
            if final:
                self._finish(model, file)
                self._print(f"[bold red]error:[/] {escape(message)}")
            else:
                self._print(f"[yellow]warning:[/] {escape(message)}")

    def note(self, model, file, message):
        with self._lock:
            self._print(f"[dim]{escape(f'{model}/{file}')}:[/] {escape(message)}")

    def _print(self, markup: str) -> None:
        self._progress.console.print(markup, highlight=False, soft_wrap=True)

    def close(self):
        with self._lock:
            if self._started:
                self._progress.stop()
                self._started = False


def make_reporter(kind: str | Reporter) -> Reporter:
    if not isinstance(kind, str):
        return kind
    if kind in ("rich", "text"):
        return RichReporter()
    if kind == "json":
        return JsonReporter()
    if kind == "none":
        return NullReporter()
    raise ValueError(f"unknown progress format {kind!r}: expected rich, json or none")
