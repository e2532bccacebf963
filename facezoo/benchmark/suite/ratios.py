"""The comparisons the suite exists for, computed from its results, and the targets they meet."""

from __future__ import annotations

from dataclasses import dataclass

from facezoo.benchmark.results import BenchmarkResult
from facezoo.benchmark.suite.conversion import ConversionFigure
from facezoo.benchmark.suite.overhead import OverheadFigure

# (format, backend) paths compared across libraries, in table order.
PATHS = (("openvino", "openvino"), ("onnx", "openvino"), ("onnx", "onnxruntime"), ("mindir", "mindspore"))
IRESNET100 = "iresnet100"


@dataclass(frozen=True)
class BackendComparison:
    model: str
    mode: str
    batch: int
    throughput: dict[str, float]  # "IR FP32 · openvino" → images/s
    best: str

    def relative(self, path: str) -> float:
        return self.throughput[path] / self.throughput[self.best]


@dataclass(frozen=True)
class PrecisionComparison:
    model: str
    path: str  # "IR · openvino"
    mode: str
    batch: int
    fp32: float
    fp16: float

    @property
    def ratio(self) -> float:
        return self.fp16 / self.fp32


@dataclass(frozen=True)
class Efficiency:
    model: str
    case: str  # the fastest FP32 case
    achieved_gflops: float
    peak_gflops: float

    @property
    def fraction(self) -> float:
        return self.achieved_gflops / self.peak_gflops


@dataclass(frozen=True)
class TargetCheck:
    target: str
    measured: str
    met: bool | None  # None: not measured here
    note: str = ""


def _plain(results: list[BenchmarkResult]) -> list[BenchmarkResult]:
    """facezoo-runner cases without bf16 hints or preprocessing: the like-for-like matrix."""
    return [
        r for r in results
        if r.ok and r.case.runner == "facezoo" and not r.case.precision_hint and not r.case.preprocessing and r.case.device == "CPU"
    ]


def compare_backends(results: list[BenchmarkResult]) -> list[BackendComparison]:
    groups: dict[tuple, dict[str, float]] = {}
    for r in _plain(results):
        if r.case.precision != "FP32" or (r.case.format, r.case.backend) not in PATHS:
            continue
        groups.setdefault((r.case.model, r.case.mode, r.case.batch), {})[f"{r.case.file_kind} · {r.case.backend}"] = r.throughput
    return [
        BackendComparison(model, mode, batch, values, max(values, key=values.get))
        for (model, mode, batch), values in groups.items()
    ]


def compare_precisions(results: list[BenchmarkResult]) -> list[PrecisionComparison]:
    by_key: dict[tuple, dict[str, float]] = {}
    for r in _plain(results):
        key = (r.case.model, f"{r.case.file_kind.split()[0]} · {r.case.backend}", r.case.mode, r.case.batch)
        by_key.setdefault(key, {})[r.case.precision] = r.throughput
    return [
        PrecisionComparison(model, path, mode, batch, values["FP32"], values["FP16"])
        for (model, path, mode, batch), values in by_key.items()
        if "FP32" in values and "FP16" in values
    ]


def efficiencies(results: list[BenchmarkResult], peak_gflops: float) -> list[Efficiency]:
    best: dict[str, BenchmarkResult] = {}
    for r in _plain(results):
        if r.case.precision != "FP32" or r.achieved_gflops is None:
            continue
        if r.case.model not in best or r.achieved_gflops > best[r.case.model].achieved_gflops:
            best[r.case.model] = r
    return [Efficiency(model, r.case.label, r.achieved_gflops, peak_gflops) for model, r in best.items()]


def check_targets(
    overhead: list[OverheadFigure],
    efficiency: list[Efficiency],
    conversions: list[ConversionFigure],
    architectures: dict[str, str],
    gpu: dict,
) -> list[TargetCheck]:
    checks = [_overhead_target(overhead)]
    deep = [e for e in efficiency if architectures.get(e.model) == IRESNET100]
    if deep:
        best = max(deep, key=lambda e: e.fraction)
        checks.append(TargetCheck(
            "CPU: best FP32 path on iresnet100 ≥ 40 % of the measured FP32 peak",
            f"{100 * best.fraction:.1f} % ({best.achieved_gflops:.0f} of {best.peak_gflops:.0f} GFLOP/s, {best.model}: {best.case})",
            best.fraction >= 0.40,
            "" if best.fraction >= 0.40 else f"missed by {100 * (0.40 - best.fraction):.1f} points",
        ))
    if gpu.get("measured"):
        checks.extend(TargetCheck(**target) for target in gpu.get("targets", []))
    else:
        checks.append(TargetCheck(
            "GPU: ≤ 1.5 ms at batch 1 and ≥ 15 k img/s at batch 256, FP16 (iresnet100)",
            "not measured", None, gpu.get("reason", "no GPU"),
        ))
    if conversions:
        total = sum(c.seconds for c in conversions)
        checks.append(TargetCheck(
            "conversion: whole zoo, all formats and precisions, ≤ 5 minutes",
            f"{total:.0f} s for {len(conversions)} models ({sum(c.artifacts for c in conversions)} files)",
            total <= 300 and all(c.passed for c in conversions),
            "" if total <= 300 else f"missed by {total - 300:.0f} s",
        ))
        for c in conversions:
            if architectures.get(c.model) == IRESNET100:
                gigabytes = c.peak_rss_mib * 2**20 / 1e9
                checks.append(TargetCheck(
                    f"conversion peak memory, {c.model} (iresnet100) ≤ 4 GB",
                    f"{gigabytes:.2f} GB (peak resident set of the converter process)",
                    gigabytes <= 4.0,
                    "" if gigabytes <= 4.0 else f"over by {gigabytes - 4.0:.2f} GB",
                ))
    return checks


def _overhead_target(overhead: list[OverheadFigure]) -> TargetCheck:
    target = "runtime overhead: facezoo ≥ 98 % of the library called directly, batch 1 and 32"
    ratios = [(o.ratio, o) for o in overhead if o.ratio is not None]
    failed = [o for o in overhead if o.ratio is None]
    if not ratios:
        return TargetCheck(target, "not measured", None, failed[0].error if failed else "no overhead pair ran")
    worst, figure = min(ratios, key=lambda item: item[0])
    notes = []
    if worst < 0.98:
        notes.append(f"missed by {100 * (0.98 - worst):.1f} points")
        rounds = [f / d for f, d in zip(figure.facezoo_runs, figure.direct_runs) if d > 0]
        if len(rounds) > 1:
            notes.append(f"that pair's rounds ranged {100 * min(rounds):.1f}–{100 * max(rounds):.1f} %")
        if figure.wrapper_us > 0 and figure.wrapper_share is not None:
            notes.append(f"facezoo's own code takes {figure.wrapper_us:.1f} µs per batch "
                         f"({100 * figure.wrapper_share:.3f} % of a batch's time)")
    if failed:
        notes.append(f"{len(failed)} pair(s) did not run: {failed[0].error}")
    measured = (f"worst {100 * worst:.1f} % ({figure.model} {figure.file} {figure.backend} b{figure.batch}); "
                f"all: {', '.join(f'{100 * r:.1f}' for r, _ in ratios)} %")
    return TargetCheck(target, measured, worst >= 0.98 and not failed, "; ".join(notes))
