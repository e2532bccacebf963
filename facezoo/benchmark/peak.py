"""The machine's FP32 peak, measured rather than taken from a data sheet.

Two dense single-precision matrix products that the libraries run at close to the hardware's
FMA rate: numpy's BLAS (sgemm) and an OpenVINO MatMul on the CPU plugin, both on every core the
process may use. The peak is the faster of the two; both are reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PeakMeasurement:
    gflops: float
    method: str
    by_method: dict[str, float]
    matrix_size: int


def measure_fp32_peak(size: int = 2048, seconds: float = 2.0) -> PeakMeasurement:
    flops = 2.0 * size**3
    rates = {
        "numpy sgemm": flops / _best_time(_numpy_sgemm(size), seconds) / 1e9,
        "OpenVINO MatMul (f32)": flops / _best_time(_openvino_matmul(size), seconds) / 1e9,
    }
    best = max(rates, key=rates.get)
    return PeakMeasurement(
        gflops=rates[best],
        method=f"best of {', '.join(rates)}: {size}×{size}×{size} FP32 products on every usable core, best run of {seconds:g} s each",
        by_method=rates,
        matrix_size=size,
    )


def _best_time(step, seconds: float) -> float:
    step()  # warm-up: thread pools, caches, kernel selection
    best = float("inf")
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def _numpy_sgemm(size: int):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), np.float32)
    return lambda: np.matmul(a, b, out=out)


def _openvino_matmul(size: int):
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(1)
    left = ops.parameter([size, size], np.float32, name="left")
    product = ops.matmul(left, ops.constant(rng.standard_normal((size, size), dtype=np.float32)), False, False)
    compiled = ov.Core().compile_model(ov.Model([product], [left]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    data = rng.standard_normal((size, size), dtype=np.float32)
    return lambda: request.infer({0: data}, share_inputs=True, share_outputs=True)
