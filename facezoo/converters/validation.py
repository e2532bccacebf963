"""Run each converted artifact on probe faces and judge it against the original model.

The bounds are :mod:`facezoo.gates`'; this module measures and applies them, for the converter
and for `facezoo check` alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facezoo.gates import Gate, gate_for
from facezoo.numerics import cosine_rows
from facezoo.runtime.backends import open_backend


@dataclass(frozen=True)
class Closeness:
    """How close one set of embeddings is to another, row by row."""

    min_cosine: float
    mean_cosine: float
    max_abs_error: float
    max_relative_error: float  # max |a - b| over max |a|


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
    batch_min_cosine: float  # a batch's rows against the same images run one at a time
    batch_relative_diff: float
    cosine_threshold: float
    relative_error_bound: float | None
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def closeness(reference: np.ndarray, outputs: np.ndarray) -> Closeness:
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    cosines = cosine_rows(reference, outputs)
    abs_error = float(np.max(np.abs(reference - outputs)))
    scale = float(np.max(np.abs(reference))) or 1.0
    return Closeness(float(cosines.min()), float(cosines.mean()), abs_error, abs_error / scale)


def closeness_fields(measured: Closeness | None) -> dict[str, float]:
    """The four closeness numbers by field name, NaN when nothing could be measured."""
    if measured is None:
        nan = float("nan")
        return {"min_cosine": nan, "mean_cosine": nan, "max_abs_error": nan, "max_relative_error": nan}
    return asdict(measured)


def gate_reasons(measured: Closeness, gate: Gate, against: str = "") -> list[str]:
    """Why ``measured`` misses ``gate`` (empty: it meets it)."""
    suffix = f" {against}" if against else ""
    reasons = []
    if not measured.min_cosine >= gate.min_cosine:  # also catches NaN
        reasons.append(f"min cosine {measured.min_cosine:.7f} < {gate.min_cosine}{suffix}")
    bound = gate.max_relative_error
    if bound is not None and not measured.max_relative_error <= bound:
        reasons.append(f"max relative error {measured.max_relative_error:.2e} > {bound:g}{suffix}")
    return reasons


def compare(reference: np.ndarray, outputs: np.ndarray, gate: Gate) -> tuple[Closeness | None, list[str]]:
    """Closeness of an artifact's outputs to the original's, and why it misses the gate."""
    if outputs.shape != reference.shape:
        return None, [f"output shape {outputs.shape} != original {reference.shape}"]
    if not np.all(np.isfinite(outputs)):
        return None, ["non-finite outputs"]
    measured = closeness(reference, outputs)
    return measured, gate_reasons(measured, gate)


# MindSpore's CPU kernels are slow enough that its batch-identity check re-runs only the first
# rows one at a time.
SINGLE_RUNS = {"mindspore": 2}


def run_batch_and_singles(backend, batch: np.ndarray) -> tuple[np.ndarray, Closeness]:
    """Outputs for the whole batch, and how close its first rows are to one-at-a-time runs."""
    outputs = np.asarray(backend.infer(batch), np.float32)
    rows = min(len(batch), SINGLE_RUNS.get(backend.name, len(batch)))
    singles = np.concatenate([np.asarray(backend.infer(batch[i : i + 1]), np.float32) for i in range(rows)])
    if singles.shape[1:] != outputs.shape[1:] or len(outputs) < rows:
        nan = float("nan")
        return outputs, Closeness(nan, nan, nan, nan)
    return outputs, closeness(singles, outputs[:rows])


def judge(reference: np.ndarray, outputs: np.ndarray, batch: Closeness, gate: Gate) -> tuple[Closeness | None, list[str]]:
    """The gate on the outputs against the original, and on the batch against its single runs."""
    measured, reasons = compare(reference, outputs, gate)
    batch_reasons = gate_reasons(batch, gate, against="between a batch and its single runs")
    if batch_reasons:
        reasons.append(f"batch of {len(outputs)} differs from single runs: " + ", ".join(
            r.replace(" between a batch and its single runs", "") for r in batch_reasons))
    return measured, reasons


def check_artifact(
    path: Path,
    *,
    fmt: str,
    precision: str,
    backend_name: str | None,
    inputs: np.ndarray,
    reference: np.ndarray,
    threshold: float | None = None,
) -> ArtifactCheck:
    """Run one artifact on one backend and judge it with its precision's gate (``threshold``
    overrides the gate's minimum cosine)."""
    gate = gate_for(precision, threshold)
    backend = open_backend(path, backend_name)
    try:
        outputs, batch = run_batch_and_singles(backend, inputs)
    finally:
        backend.close()
    outputs = outputs.reshape(len(outputs), -1) if outputs.ndim > 2 else outputs
    measured, reasons = judge(reference, outputs, batch, gate)
    return ArtifactCheck(
        format=fmt,
        precision=precision,
        backend=backend.name,
        file=path.name,
        samples=len(inputs),
        **closeness_fields(measured),
        batch_min_cosine=batch.min_cosine,
        batch_relative_diff=batch.max_relative_error,
        cosine_threshold=gate.min_cosine,
        relative_error_bound=gate.max_relative_error,
        passed=not reasons,
        reason="; ".join(reasons),
    )
