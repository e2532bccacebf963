"""Time one benchmark case: load, first inference, warm-up, then timed runs."""

from __future__ import annotations

import itertools
import time
from typing import Iterator

from facezoo.benchmark.inputs import jpeg_batches, tensor_batches
from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult, Latency
from facezoo.benchmark.runners import Runner, open_runner
from facezoo.errors import FacezooError
from facezoo.runtime.errors import DeviceUnavailableError

MIN_ITERATIONS = 3


def run_case(
    case: BenchmarkCase,
    *,
    seconds: float | None = 5.0,
    iterations: int | None = None,
    warmup: int = 2,
    gflops_per_image: float | None = None,
) -> BenchmarkResult:
    """Load, measure and close one case. Stops after `iterations` batches, else after `seconds`."""
    opened = open_case(case)
    if isinstance(opened, BenchmarkResult):
        return opened
    runner, load_ms = opened
    try:
        return measure(runner, case, seconds=seconds, iterations=iterations, warmup=warmup,
                       gflops_per_image=gflops_per_image, load_ms=load_ms)
    finally:
        runner.close()


def open_case(case: BenchmarkCase) -> tuple[Runner, float] | BenchmarkResult:
    """The loaded runner and its load time, or the result saying why it could not load."""
    try:
        start = time.perf_counter()
        runner = open_runner(case)
        return runner, (time.perf_counter() - start) * 1e3
    except DeviceUnavailableError as exc:
        return BenchmarkResult(case, "unavailable", error=str(exc))
    except (FacezooError, RuntimeError, ValueError, OSError) as exc:
        return BenchmarkResult(case, "failed", error=_one_line(exc))


def measure(
    runner: Runner,
    case: BenchmarkCase,
    *,
    seconds: float | None = 5.0,
    iterations: int | None = None,
    warmup: int = 2,
    gflops_per_image: float | None = None,
    load_ms: float = 0.0,
) -> BenchmarkResult:
    """First inference, warm-up, then timed batches on an open runner (which stays open)."""
    try:
        if case.preprocessing:
            payloads = jpeg_batches(case.batch)
        else:
            payloads = tensor_batches(runner.input_shape, runner.channel_order, case.batch)
        result = BenchmarkResult(
            case,
            "ok",
            backend_version=runner.backend_version,
            device_name=runner.device_name,
            requests=runner.requests,
            threads=runner.threads,
            load_ms=load_ms,
            gflops_per_image=gflops_per_image,
        )
        start = time.perf_counter()
        runner.once(payloads[0])
        result.first_inference_ms = (time.perf_counter() - start) * 1e3
        for index in range(warmup):
            runner.once(payloads[(index + 1) % len(payloads)])
        if case.mode == "latency":
            laps = [end - begin for begin, end in _time_sync(runner, payloads, seconds, iterations)]
            result.latency = Latency.of(laps)
            result.iterations, total = len(laps), sum(laps)
        else:
            result.iterations, total = _time_stream(runner, payloads, seconds, iterations)
        result.images = result.iterations * case.batch
        result.seconds = total
        result.throughput = result.images / total if total > 0 else 0.0
        return result
    except (FacezooError, RuntimeError, ValueError) as exc:
        return BenchmarkResult(case, "failed", error=_one_line(exc))


def _enough(done: int, elapsed: float, seconds: float | None, iterations: int | None) -> bool:
    if iterations is not None:
        return done >= iterations
    return done >= MIN_ITERATIONS and elapsed >= (seconds or 0.0)


def _time_sync(runner, payloads, seconds, iterations) -> list[tuple[float, float]]:
    stamps: list[tuple[float, float]] = []
    origin = time.perf_counter()
    while not stamps or not _enough(len(stamps), stamps[-1][1] - origin, seconds, iterations):
        begin = time.perf_counter()
        runner.once(payloads[len(stamps) % len(payloads)])
        stamps.append((begin, time.perf_counter()))
    return stamps


def _time_stream(runner, payloads, seconds, iterations) -> tuple[int, float]:
    """Feed batches as fast as the runner takes them (it keeps `requests` in flight).

    Only throughput is measured here: results come back in order, so the time a caller waits
    for one batch also holds the batches queued before it, and is not a per-request latency.
    """
    handed = 0

    def feed() -> Iterator:
        nonlocal handed
        origin = time.perf_counter()
        for payload in itertools.cycle(payloads):
            if _enough(handed, time.perf_counter() - origin, seconds, iterations):
                return
            handed += 1
            yield payload

    begin = time.perf_counter()
    runner.stream(feed())
    return handed, time.perf_counter() - begin


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    named = first if isinstance(exc, FacezooError) else f"{type(exc).__name__}: {first}"
    return named[:500]
