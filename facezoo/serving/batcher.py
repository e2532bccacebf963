"""Dynamic batching: images of concurrent requests gathered into one inference per lane.

A request's images wait until `max_batch` images are queued or the oldest has waited
`max_delay`, then go to an idle lane: one OpenVINO asynchronous request (a stream) each, so
several batches run side by side. When several lanes are idle, what is queued is shared between
them instead of all going to the first. Each request gets its own rows back, in order; a request
larger than `max_batch` is split and put together again. Admission is bounded: more than
`max_queue` images waiting or running is refused at once (503), never queued without limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from facezoo.serving.errors import PayloadTooLarge, Unavailable


class Lane(Protocol):
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class BatchingOptions:
    max_batch: int = 32
    max_delay_s: float = 0.005
    max_queue: int = 1024  # images admitted (waiting or running) before new requests get 503


@dataclass(eq=False)
class _Ticket:
    """One request's images and where its rows come back."""

    images: np.ndarray
    future: Future
    enqueued: float
    taken: int = 0  # rows handed to lanes
    finished: int = 0
    output: dict[str, np.ndarray] | None = None  # every output of the model, by name
    released: bool = False  # its images no longer count against max_queue

    @property
    def left(self) -> int:
        return len(self.images) - self.taken


@dataclass
class _Piece:
    ticket: _Ticket
    start: int
    stop: int


@dataclass
class BatchStats:
    """What the batcher has done, for /metrics and the benchmarks."""

    batches: int = 0
    images: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


class DynamicBatcher:
    """Gathers rows of concurrent `submit` calls into batches run on `lanes` in their own threads."""

    def __init__(self, lanes: list[Lane], options: BatchingOptions, name: str = "model",
                 on_batch: Callable[[int, float], None] | None = None):
        if not lanes:
            raise ValueError("a batcher needs at least one lane")
        self.options = options
        self.name = name
        self.on_batch = on_batch
        self.stats = BatchStats()
        # One lock, and a condition per thread that waits on it: each change wakes only the thread
        # it concerns (one shared condition woke every lane on every request).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the dispatcher: queue, idle lanes, closing
        self._lane_wake = [threading.Condition(self._lock) for _ in lanes]
        self._queue: deque[_Ticket] = deque()
        self._queued_rows = 0  # rows not yet handed to a lane
        self._admitted = 0  # rows of unfinished tickets
        self._idle: list[int] = list(range(len(lanes)))
        self._work: list[list[_Piece] | None] = [None] * len(lanes)
        self._closing = False
        self._threads = [threading.Thread(target=self._lane_loop, args=(i, lane), name=f"{name}-lane-{i}", daemon=True)
                         for i, lane in enumerate(lanes)]
        self._threads.append(threading.Thread(target=self._dispatch_loop, name=f"{name}-batcher", daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def admitted_images(self) -> int:
        return self._admitted

    @property
    def lanes(self) -> int:
        return len(self._work)

    def submit(self, images: np.ndarray) -> Future:
        """Rows of `images` (a prepared batch) in; a Future of the model's rows for them out (every
        output, by name)."""
        future: Future = Future()
        count = len(images)
        with self._lock:
            if self._closing:
                raise Unavailable(f"model {self.name!r} is shutting down")
            if count > self.options.max_queue:
                raise PayloadTooLarge(f"images: {count} in one request, more than model {self.name!r} admits at once "
                                      f"(--max-queue {self.options.max_queue})")
            if self._admitted + count > self.options.max_queue:
                raise Unavailable(f"model {self.name!r} is overloaded: {self._admitted} images queued or running "
                                  f"(--max-queue {self.options.max_queue}); retry later")
            ticket = _Ticket(images, future, time.monotonic())
            self._queue.append(ticket)
            self._queued_rows += count
            self._admitted += count
            self._wake.notify()
        future.add_done_callback(lambda done: done.cancelled() and self._cancel(ticket))
        return future

    def close(self) -> None:
        """Finish what was admitted, then stop the threads."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        for thread in self._threads:
            thread.join()

    def _cancel(self, ticket: _Ticket) -> None:
        """A caller gave up (timeout): rows not yet handed out are dropped."""
        with self._lock:
            if ticket in self._queue:
                self._queue.remove(ticket)
                self._queued_rows -= ticket.left
                ticket.taken = len(ticket.images)
            self._release(ticket)
            self._wake.notify()

    def _release(self, ticket: _Ticket) -> None:
        if not ticket.released:
            ticket.released = True
            self._admitted -= len(ticket.images)

    def _dispatch_loop(self) -> None:
        with self._lock:
            while True:
                while not (self._queue and self._idle) and not (self._closing and not self._queue):
                    self._wake.wait()
                if not self._queue:  # closing and drained
                    break
                deadline = self._queue[0].enqueued + self.options.max_delay_s
                while not self._closing and self._queued_rows < self.options.max_batch and self._queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if not self._queue:  # every waiting request was cancelled
                    continue
                share = math.ceil(self._queued_rows / len(self._idle))
                pieces = self._take(min(self.options.max_batch, share))
                lane = self._idle.pop(0)
                self._work[lane] = pieces
                self._lane_wake[lane].notify()
            for lane in range(len(self._work)):
                while self._work[lane] is not None:
                    self._wake.wait()
                self._work[lane] = []  # an empty batch tells the lane to stop
                self._lane_wake[lane].notify()

    def _take(self, size: int) -> list[_Piece]:
        """Up to ``size`` rows from the head of the queue, all of one image size (a detector's
        requests come in any H×W; only rows of one size share a batch)."""
        pieces = []
        shape = None
        while size > 0 and self._queue:
            ticket = self._queue[0]
            if shape is not None and ticket.images.shape[1:] != shape:
                break
            shape = ticket.images.shape[1:]
            count = min(size, ticket.left)
            pieces.append(_Piece(ticket, ticket.taken, ticket.taken + count))
            ticket.taken += count
            self._queued_rows -= count
            size -= count
            if ticket.left == 0:
                self._queue.popleft()
        return pieces

    def _lane_loop(self, index: int, lane: Lane) -> None:
        while True:
            with self._lock:
                while self._work[index] is None:
                    self._lane_wake[index].wait()
                pieces = self._work[index]
            if not pieces:
                return
            self._run(lane, pieces)
            with self._lock:
                self._work[index] = None
                self._idle.append(index)
                self._wake.notify()

    def _run(self, lane: Lane, pieces: list[_Piece]) -> None:
        parts = [piece.ticket.images[piece.start:piece.stop] for piece in pieces]
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        start = time.perf_counter()
        try:
            rows = lane.infer(batch)
            if any(len(values) != len(batch) for values in rows.values()):
                raise RuntimeError(f"the model gave {', '.join(f'{n}: {len(v)}' for n, v in rows.items())} rows "
                                   f"for a batch of {len(batch)}")
        except Exception as exc:  # a failing library call fails its requests, never the lane
            self._fail(pieces, exc)
            return
        elapsed = time.perf_counter() - start
        finished = []
        with self._lock:
            self.stats.batches += 1
            self.stats.images += len(batch)
            self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
            offset = 0
            for piece in pieces:
                ticket = piece.ticket
                count = piece.stop - piece.start
                if ticket.output is None:
                    ticket.output = {name: np.empty((len(ticket.images), *values.shape[1:]), values.dtype)
                                     for name, values in rows.items()}
                for name, values in rows.items():
                    ticket.output[name][piece.start:piece.stop] = values[offset:offset + count]
                offset += count
                ticket.finished += count
                if ticket.finished == len(ticket.images):
                    self._release(ticket)
                    finished.append(ticket)
        if self.on_batch:
            self.on_batch(len(batch), elapsed)
        for ticket in finished:
            _settle(ticket.future, result=ticket.output)

    def _fail(self, pieces: list[_Piece], exc: Exception) -> None:
        with self._lock:
            for piece in pieces:
                self._release(piece.ticket)
        for piece in pieces:
            _settle(piece.ticket.future, error=exc)


def _settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Set a future unless its caller already gave up on it."""
    if future.cancelled():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except Exception:  # cancelled between the check and the set (InvalidStateError)
        pass
