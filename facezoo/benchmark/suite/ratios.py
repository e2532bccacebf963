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


# ----------------------------------------------------------------------------- INT8 and BF16

LOW_PRECISIONS = ("INT8", "BF16")
MOBILEFACENET = "mobilefacenet"


@dataclass(frozen=True)
class LowPrecisionComparison:
    """INT8 or BF16 against FP32 on the same format, backend, mode and batch."""

    model: str
    precision: str
    path: str  # "IR · openvino"
    mode: str
    batch: int
    fp32: float
    value: float
    p50_ms: float | None = None  # latency mode: the low-precision p50

    @property
    def ratio(self) -> float:
        return self.value / self.fp32


def compare_low_precision(results: list[BenchmarkResult]) -> list[LowPrecisionComparison]:
    by_key: dict[tuple, dict[str, BenchmarkResult]] = {}
    for r in _plain(results):
        key = (r.case.model, f"{r.case.file_kind.split()[0]} · {r.case.backend}", r.case.mode, r.case.batch)
        by_key.setdefault(key, {})[r.case.precision] = r
    rows = []
    for (model, path, mode, batch), values in by_key.items():
        for precision in LOW_PRECISIONS:
            if "FP32" in values and precision in values:
                low = values[precision]
                rows.append(LowPrecisionComparison(model, precision, path, mode, batch, values["FP32"].throughput,
                                                   low.throughput, low.latency.p50 if low.latency else None))
    return rows


def low_precision_efficiencies(results: list[BenchmarkResult], peaks: dict) -> list[Efficiency]:
    """Best INT8 / BF16 case per model against the measured int8 / bf16 MatMul peak (GOP/s)."""
    best: dict[tuple[str, str], BenchmarkResult] = {}
    for r in _plain(results):
        if r.case.precision not in LOW_PRECISIONS or r.case.precision not in peaks or r.achieved_gflops is None:
            continue
        key = (r.case.model, r.case.precision)
        if key not in best or r.achieved_gflops > best[key].achieved_gflops:
            best[key] = r
    return [Efficiency(model, r.case.label, r.achieved_gflops, peaks[precision].gflops) for (model, precision), r in best.items()]


def int8_speedup_target(isa) -> tuple[float | None, str]:
    """The iresnet100 INT8 speed-up this CPU is held to, and why: 8× FP32 with AMX, 3× with VNNI
    only; none without either (INT8 then has no integer dot-product units to run on)."""
    flags = set(isa or ())
    if "amx_int8" in flags:
        return 8.0, "AMX"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return 3.0, "VNNI, no AMX"
    return None, "neither AMX nor VNNI"


def check_low_precision_targets(
    comparisons: list[LowPrecisionComparison],
    efficiency: list[Efficiency],
    quantization: list[dict],
    architectures: dict[str, str],
    peaks: dict,
    isa: list[str] | None = None,
) -> list[TargetCheck]:
    """The issue's INT8/BF16 targets: iresnet100 INT8 ≥ 8× FP32 (AMX) or ≥ 3× (VNNI only) with
    cosine ≥ 0.99, ≥ 50 % of the int8/bf16 peaks, MobileFaceNet INT8 batch 1 ≤ 2 ms."""
    checks = []
    deep = [m for m, a in architectures.items() if a == IRESNET100]
    records = {q.get("model"): q for q in quantization}
    speedups = [c for c in comparisons if c.model in deep and c.precision == "INT8" and c.mode == "throughput"]
    factor, why = int8_speedup_target(isa)
    target = (f"iresnet100 INT8 ≥ {factor:g}× FP32 throughput on this CPU ({why}), with min cosine ≥ 0.99 on "
              "held-out faces" if factor else f"iresnet100 INT8 speed-up: no target on this CPU ({why})")
    if speedups:
        best = max(speedups, key=lambda c: c.ratio)
        cosine = _int8_cosine(records.get(best.model, {}), best.path)
        fast = factor is None or best.ratio >= factor
        met = (fast and cosine is not None and cosine >= 0.99) if factor else None
        note = [] if fast else [f"speed-up missed by {factor - best.ratio:.2f}×"]
        checks.append(TargetCheck(target, f"{best.ratio:.2f}× ({best.value:.1f} vs {best.fp32:.1f} img/s, {best.model} "
                                  f"{best.path} b{best.batch}); min cosine {cosine if cosine is None else round(cosine, 5)}",
                                  met, "; ".join(note)))
    else:
        missed = [records[m]["int8"].get("ladders", [{}])[-1].get("summary", "") for m in deep if m in records and records[m].get("int8")]
        checks.append(TargetCheck(target, "not measured", None,
                                  "no INT8 folder was published" + (f": {missed[0]}" if missed else "")))
    for precision in LOW_PRECISIONS:
        label = f"{precision} at ≥ 50 % of the measured {precision.lower()} MatMul peak (iresnet100, best case)"
        rows = [e for e in efficiency if e.model in deep and e.case.split()[1] == precision]
        if precision not in peaks:
            checks.append(TargetCheck(label, "not measured", None, f"this CPU does not run a {precision.lower()} MatMul"))
        elif not rows:
            checks.append(TargetCheck(label, "not measured", None, f"no {precision} folder for an iresnet100 model"))
        else:
            best = max(rows, key=lambda e: e.fraction)
            checks.append(TargetCheck(label, f"{100 * best.fraction:.1f} % ({best.achieved_gflops:.0f} of "
                                      f"{best.peak_gflops:.0f} G(FL)OP/s, {best.model}: {best.case})",
                                      best.fraction >= 0.5, "" if best.fraction >= 0.5 else
                                      f"missed by {100 * (0.5 - best.fraction):.1f} points"))
    light = [m for m, a in architectures.items() if a == MOBILEFACENET]
    latencies = [c for c in comparisons if c.model in light and c.precision == "INT8" and c.batch == 1 and c.p50_ms]
    label = "MobileFaceNet INT8 at batch 1 ≤ 2 ms (p50)"
    if latencies:
        best = min(latencies, key=lambda c: c.p50_ms)
        checks.append(TargetCheck(label, f"{best.p50_ms:.2f} ms ({best.model} {best.path})", best.p50_ms <= 2.0,
                                  "" if best.p50_ms <= 2.0 else f"missed by {best.p50_ms - 2.0:.2f} ms"))
    else:
        checks.append(TargetCheck(label, "not measured", None, "no INT8 folder for a MobileFaceNet model"))
    return checks


def _int8_cosine(record: dict, path: str) -> float | None:
    """The gate's min cosine of the passing INT8 candidate of the format in ``path``."""
    fmt = "openvino" if path.startswith("IR") else "onnx"
    for ladder in record.get("int8", {}).get("ladders", []):
        if ladder.get("format") == fmt and ladder.get("passed"):
            return next(c["verdict"]["min_cosine"] for c in ladder["candidates"] if c["verdict"]["passed"])
    return None
