"""Run each converted artifact on probe faces and compare it with the original model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facezoo.runtime.backends import open_backend

# FP32 artifacts must also stay close in absolute terms (relative to the output's scale).
FP32_MAX_RELATIVE_ERROR = 1e-3
# Rows of a batch must equal the same images run one at a time (up to kernel rounding).
BATCH_RELATIVE_TOLERANCE = {"FP32": 1e-4, "FP16": 2e-3}


@dataclass(frozen=True)
class ArtifactCheck:
    """How closely one artifact, run by one backend, reproduces the original."""

    format: str
    precision: str
    backend: str
    file: str
    samples: int
    min_cosine: float
    mean_cosine: float
    max_abs_error: float
    max_relative_error: float
    batch_relative_diff: float
    cosine_threshold: float
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64).reshape(len(a), -1)
    b = b.astype(np.float64).reshape(len(b), -1)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denominator, 1e-30)


def compare(
    reference: np.ndarray,
    outputs: np.ndarray,
    *,
    threshold: float,
    precision: str,
    batch_diff: float,
) -> tuple[dict, bool, str]:
    """Metrics of outputs against reference, and whether they pass the precision's bounds."""
    cosines = cosine_rows(reference, outputs)
    abs_error = float(np.max(np.abs(reference.astype(np.float64) - outputs)))
    scale = float(np.max(np.abs(reference))) or 1.0
    metrics = {
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "max_abs_error": abs_error,
        "max_relative_error": abs_error / scale,
        "batch_relative_diff": batch_diff,
    }
    reasons = []
    if outputs.shape != reference.shape:
        reasons.append(f"output shape {outputs.shape} != reference {reference.shape}")
    if not np.all(np.isfinite(outputs)):
        reasons.append("non-finite outputs")
    if metrics["min_cosine"] < threshold:
        reasons.append(f"min cosine {metrics['min_cosine']:.6f} < {threshold}")
    if precision == "FP32" and metrics["max_relative_error"] > FP32_MAX_RELATIVE_ERROR:
        reasons.append(f"max relative error {metrics['max_relative_error']:.2e} > {FP32_MAX_RELATIVE_ERROR}")
    tolerance = BATCH_RELATIVE_TOLERANCE.get(precision, 1e-2)
    if batch_diff > tolerance:
        reasons.append(f"batch of {len(reference)} differs from single runs by {batch_diff:.2e} > {tolerance}")
    return metrics, not reasons, "; ".join(reasons)


# MindSpore's CPU kernels run convolutions at about 1 GFLOP/s on this class of machine (ONNX
# Runtime: ~100), so its batch-identity check re-runs only the first rows one at a time.
SINGLE_RUNS = {"mindspore": 2}


def run_batch_and_singles(backend, batch: np.ndarray) -> tuple[np.ndarray, float]:
    """Outputs for the whole batch, and the largest relative gap to one-at-a-time runs."""
    outputs = np.asarray(backend.infer(batch), np.float32)
    rows = min(len(batch), SINGLE_RUNS.get(backend.name, len(batch)))
    singles = np.concatenate([np.asarray(backend.infer(batch[i : i + 1]), np.float32) for i in range(rows)])
    scale = float(np.max(np.abs(singles))) or 1.0
    return outputs, float(np.max(np.abs(outputs[:rows] - singles))) / scale


def check_artifact(
    path: Path,
    *,
    fmt: str,
    precision: str,
    backend_name: str | None,
    inputs: np.ndarray,
    reference: np.ndarray,
    threshold: float,
) -> ArtifactCheck:
    backend = open_backend(path, backend_name)
    try:
        outputs, batch_diff = run_batch_and_singles(backend, inputs)
    finally:
        backend.close()
    metrics, passed, reason = compare(
        reference, outputs, threshold=threshold, precision=precision, batch_diff=batch_diff
    )
    return ArtifactCheck(
        format=fmt,
        precision=precision,
        backend=backend.name,
        file=path.name,
        samples=len(inputs),
        cosine_threshold=threshold,
        passed=passed,
        reason=reason,
        **metrics,
    )
