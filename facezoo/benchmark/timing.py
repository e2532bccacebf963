"""Time one benchmark case: load, first inference, warm-up, then timed runs."""

from __future__ import annotations

import itertools
import time
from typing import Iterator

from facezoo.benchmark.inputs import jpeg_batches, tensor_batches
from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult, Latency
from facezoo.benchmark.runners import open_runner
from facezoo.errors import FacezooError
from facezoo.runtime.backends import DeviceUnavailableError

MIN_ITERATIONS = 3


def run_case(
    case: BenchmarkCase,
    *,
    seconds: float | None = 5.0,
    iterations: int | None = None,
    warmup: int = 2,
    gflops_per_image: float | None = None,
) -> BenchmarkResult:
    """Measure one case. Stops after `iterations` batches, else after `seconds` (at least 3 batches)."""
    try:
        start = time.perf_counter()
        runner = open_runner(case)
        load_ms = (time.perf_counter() - start) * 1e3
    except DeviceUnavailableError as exc:
        return BenchmarkResult(case, "unavailable", error=str(exc))
    except (FacezooError, RuntimeError, ValueError, OSError) as exc:
        return BenchmarkResult(case, "failed", error=_one_line(exc))
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
            stamps = _time_sync(runner, payloads, seconds, iterations)
            laps = [end - begin for begin, end in stamps]
            total = sum(laps)
        else:
            laps, total = _time_stream(runner, payloads, seconds, iterations)
        result.iterations = len(laps)
        result.images = len(laps) * case.batch
        result.seconds = total
        result.throughput = result.images / total if total > 0 else 0.0
        result.latency = Latency.of(laps)
        return result
    except (FacezooError, RuntimeError, ValueError) as exc:
        return BenchmarkResult(case, "failed", error=_one_line(exc))
    finally:
        runner.close()


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


def _time_stream(runner, payloads, seconds, iterations) -> tuple[list[float], float]:
    """Feed batches as fast as the runner takes them; it keeps `requests` of them in flight.

    A runner takes batch i+R only once batch i's result is back (R = requests), so the time
    between handing over batch i and batch i+R is batch i's latency as the caller sees it.
    """
    handed: list[float] = []

    def feed() -> Iterator:
        origin = time.perf_counter()
        for payload in itertools.cycle(payloads):
            now = time.perf_counter()
            if _enough(len(handed), now - origin, seconds, iterations):
                return
            handed.append(now)
            yield payload

    begin = time.perf_counter()
    runner.stream(feed())
    end = time.perf_counter()
    lag = max(runner.requests, 1)
    marks = handed + [end] * lag
    laps = [marks[i + lag] - marks[i] for i in range(len(handed))]
    return laps, end - begin


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    named = first if isinstance(exc, FacezooError) else f"{type(exc).__name__}: {first}"
    return named[:500]
