"""facezoo's runtime against the same file called through the library directly.

Both runners stay loaded and take turns, round after round, so that drift in the machine's
speed (turbo, noisy neighbours on a VM) falls on both alike; the ratio is the median of the
per-round ratios. Beside it, the time facezoo's own code takes per batch (input checks and
layout, on the caller's thread) is timed alone: it says how much of a gap can be overhead at all.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

from facezoo.benchmark.inputs import tensor_batches
from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult
from facezoo.benchmark.timing import measure, open_case
from facezoo.runtime import FaceModel


@dataclass(frozen=True)
class OverheadFigure:
    model: str
    file: str
    backend: str
    batch: int
    mode: str
    facezoo_throughput: float  # median over rounds, images/s
    direct_throughput: float
    rounds: int
    facezoo_runs: list[float]
    direct_runs: list[float]
    error: str = ""
    wrapper_us: float = 0.0  # facezoo's own work per batch, microseconds (median)

    @property
    def ratio(self) -> float | None:
        pairs = [f / d for f, d in zip(self.facezoo_runs, self.direct_runs) if d > 0]
        if self.error or not pairs:
            return None
        return statistics.median(pairs)

    @property
    def wrapper_share(self) -> float | None:
        """facezoo's own work as a fraction of the time one batch takes."""
        if self.error or not self.facezoo_throughput:
            return None
        return self.wrapper_us * 1e-6 * self.facezoo_throughput / self.batch


def measure_overhead(case: BenchmarkCase, *, rounds: int = 5, seconds: float = 3.0, warmup: int = 2) -> OverheadFigure:
    cases = {runner: dataclasses.replace(case, runner=runner) for runner in ("facezoo", "direct")}
    opened = {runner: open_case(c) for runner, c in cases.items()}
    runs: dict[str, list[float]] = {"facezoo": [], "direct": []}
    error = next((o.error for o in opened.values() if isinstance(o, BenchmarkResult)), "")
    wrapper_us = 0.0
    try:
        for round_index in range(rounds if not error else 0):
            order = ("direct", "facezoo") if round_index % 2 else ("facezoo", "direct")
            for runner in order:
                result = measure(opened[runner][0], cases[runner], seconds=seconds, warmup=warmup if round_index == 0 else 0)
                if not result.ok:
                    error = result.error
                    break
                runs[runner].append(result.throughput)
            if error:
                break
        if not error:
            wrapper_us = wrapper_cost_us(opened["facezoo"][0].model, case.batch)
    finally:
        for item in opened.values():
            if not isinstance(item, BenchmarkResult):
                item[0].close()
    median = {runner: statistics.median(values) if values and not error else 0.0 for runner, values in runs.items()}
    return OverheadFigure(
        case.model, case.file_kind, case.backend, case.batch, case.mode,
        median["facezoo"], median["direct"], len(runs["direct"]), runs["facezoo"], runs["direct"], error,
        wrapper_us=wrapper_us,
    )


def wrapper_cost_us(model: FaceModel, batch_size: int, calls: int = 200) -> float:
    """Median time of FaceModel.prepare, the only work facezoo adds to the library's call."""
    spec = model.input_spec
    batch = tensor_batches(spec.shape, spec.channel_order, batch_size, count=1)[0]
    laps = []
    for _ in range(calls):
        start = time.perf_counter()
        model.prepare(batch)
        laps.append(time.perf_counter() - start)
    return statistics.median(laps) * 1e6
