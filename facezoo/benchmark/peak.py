"""The machine's FP32, bf16 and int8 peaks, measured rather than taken from a data sheet.

FP32: two dense single-precision matrix products that the libraries run at close to the
hardware's FMA rate: numpy's BLAS (sgemm) and an OpenVINO MatMul on the CPU plugin, both on every
core the process may use. The peak is the faster of the two; both are reported.

bf16 and int8: the same OpenVINO MatMul, once with INFERENCE_PRECISION_HINT=bf16 (AVX512_BF16 or
AMX) and once wrapped in FakeQuantize nodes (u8 activations, i8 weights), which the CPU plugin's
low-precision transformations turn into an integer MatMul. The compiled model's runtime graph
must show the MatMul running in that precision, or the peak is reported as not measured.
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


# Precisions of the MatMul in OpenVINO's runtime graph that count as each peak's.
RUNTIME_PRECISIONS = {"BF16": ("bf16",), "INT8": ("u8", "i8")}


def measure_low_precision_peaks(size: int = 2048, seconds: float = 2.0) -> dict[str, PeakMeasurement]:
    """bf16 and int8 MatMul peaks through OpenVINO; a precision the CPU does not run is left out."""
    flops = 2.0 * size**3
    peaks = {}
    for precision in RUNTIME_PRECISIONS:
        step, runs_as = _openvino_low_precision_matmul(size, precision)
        if runs_as.split(" ")[0] not in RUNTIME_PRECISIONS[precision]:
            continue
        rate = flops / _best_time(step, seconds) / 1e9
        name = f"OpenVINO MatMul ({precision.lower()}, runtime graph: {runs_as})"
        peaks[precision] = PeakMeasurement(
            gflops=rate,
            method=f"{name}: {size}×{size}×{size} product on every usable core, best run of {seconds:g} s",
            by_method={name: rate},
            matrix_size=size,
        )
    return peaks


def _openvino_low_precision_matmul(size: int, precision: str):
    """A compiled MatMul asked to run in ``precision``, and what its runtime graph says it runs in."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(2)
    left = ops.parameter([size, size], np.float32, name="left")
    weights = ops.constant(rng.standard_normal((size, size), dtype=np.float32))
    if precision == "INT8":
        def fake_quantize(node, low: float, high: float, levels: int):
            low_c, high_c = ops.constant(np.float32(low)), ops.constant(np.float32(high))
            return ops.fake_quantize(node, low_c, high_c, low_c, high_c, levels)

        product = ops.matmul(fake_quantize(left, 0.0, 4.0, 256), fake_quantize(weights, -4.0, 4.0, 255), False, True)
        config = {"INFERENCE_PRECISION_HINT": "f32"}
    else:
        product = ops.matmul(left, weights, False, True)
        config = {"INFERENCE_PRECISION_HINT": "bf16"}
    compiled = ov.Core().compile_model(ov.Model([product], [left]), "CPU", config)
    runs_as = "not found"
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in ("FullyConnected", "MatMul"):
            primitive = info["primitiveType"].astype(str) if "primitiveType" in info else "?"
            runs_as = f"{info['runtimePrecision'].astype(str)} {primitive}"
    request = compiled.create_infer_request()
    data = np.abs(rng.standard_normal((size, size), dtype=np.float32))
    return (lambda: request.infer({0: data}, share_inputs=True, share_outputs=True)), runs_as


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
