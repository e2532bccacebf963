"""Plain records of what a benchmark measured, as they go into JSON and tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MODES = ("latency", "throughput")
FORMAT_NAMES = {"openvino": "IR", "onnx": "ONNX", "mindir": "MINDIR"}
RUNNERS = ("facezoo", "direct")


@dataclass(frozen=True)
class BenchmarkCase:
    """One configuration to time: a file, a library, a device and how it is driven."""

    model: str
    path: str
    format: str
    precision: str
    backend: str
    device: str = "CPU"
    batch: int = 1
    mode: str = "latency"
    runner: str = "facezoo"  # facezoo's runtime, or the library called directly
    requests: int | None = None  # in flight (throughput mode); None: the library's optimum
    threads: int | None = None  # None: the library's default (every usable core)
    precision_hint: str | None = None  # OpenVINO INFERENCE_PRECISION_HINT; None: f32
    preprocessing: bool = False  # JPEG decode, resize, channel order and L2 norm included

    @property
    def label(self) -> str:
        hint = f" {self.precision_hint}" if self.precision_hint else ""
        pre = " +pre" if self.preprocessing else ""
        runner = " direct" if self.runner == "direct" else ""
        return f"{self.file_kind}{hint} · {self.backend}{runner} · b{self.batch} {self.mode[:3]}{pre}"

    @property
    def file_kind(self) -> str:
        return f"{FORMAT_NAMES.get(self.format, self.format)} {self.precision}"


@dataclass(frozen=True)
class Latency:
    """Milliseconds per batch, from submission to result."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Latency | None":
        if not seconds:
            return None
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(ms.mean()), float(ms.min()), float(ms.max()))


@dataclass
class BenchmarkResult:
    case: BenchmarkCase
    status: str  # ok, unavailable (device/backend missing here), failed
    error: str = ""
    backend_version: str = ""
    device_name: str = ""  # what the library says it runs on
    requests: int = 1
    threads: int = 0
    load_ms: float = 0.0
    first_inference_ms: float = 0.0
    iterations: int = 0
    images: int = 0
    seconds: float = 0.0
    throughput: float = 0.0  # images per second
    latency: Latency | None = None
    gflops_per_image: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def achieved_gflops(self) -> float | None:
        if self.gflops_per_image is None or not self.ok:
            return None
        return self.gflops_per_image * self.throughput

    def to_json(self) -> dict:
        data = asdict(self)
        data["achieved_gflops"] = self.achieved_gflops
        data["label"] = self.case.label
        return data

    @classmethod
    def from_json(cls, data: dict) -> "BenchmarkResult":
        data = {k: v for k, v in data.items() if k not in ("achieved_gflops", "label")}
        case = BenchmarkCase(**data.pop("case"))
        latency = Latency(**data.pop("latency")) if data.get("latency") else None
        data.pop("latency", None)
        return cls(case=case, latency=latency, **data)
