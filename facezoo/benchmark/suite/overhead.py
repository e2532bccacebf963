"""facezoo's runtime against the same file called through the library directly.

Both runners stay loaded and take turns, round after round, so that drift in the machine's
speed (turbo, noisy neighbours on a VM) falls on both alike; the ratio is of the medians.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult
from facezoo.benchmark.timing import measure, open_case


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

    @property
    def ratio(self) -> float | None:
        if self.error or not self.direct_throughput:
            return None
        return self.facezoo_throughput / self.direct_throughput


def measure_overhead(case: BenchmarkCase, *, rounds: int = 3, seconds: float = 3.0, warmup: int = 2) -> OverheadFigure:
    cases = {runner: dataclasses.replace(case, runner=runner) for runner in ("facezoo", "direct")}
    opened = {runner: open_case(c) for runner, c in cases.items()}
    runs: dict[str, list[float]] = {"facezoo": [], "direct": []}
    error = next((o.error for o in opened.values() if isinstance(o, BenchmarkResult)), "")
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
    finally:
        for item in opened.values():
            if not isinstance(item, BenchmarkResult):
                item[0].close()
    median = {runner: statistics.median(values) if values and not error else 0.0 for runner, values in runs.items()}
    return OverheadFigure(
        case.model, case.file_kind, case.backend, case.batch, case.mode,
        median["facezoo"], median["direct"], len(runs["direct"]), runs["facezoo"], runs["direct"], error,
    )
