"""The gate an INT8 candidate must pass, as a callable the caller supplies.

``Gate = Callable[[Path], GateVerdict]``: given a written candidate file, run it and say whether
it still computes the original model. The conversion pipeline plugs in its own gate;
:func:`reference_gate` is one built from the converter's validation (every backend that runs
the file, against the original network's outputs on held-out faces) plus a count of flipped
same/different decisions over all pairs of those faces.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facezoo.numerics import flipped_pairs, pair_cosines, pair_indices


@dataclass(frozen=True)
class GateVerdict:
    """Whether one candidate passed, with the numbers it was judged on."""

    passed: bool
    min_cosine: float
    flips: int
    reason: str = ""

    def as_dict(self) -> dict:
        """JSON-ready: a cosine never measured (the candidate could not be built or run) is None."""
        record = asdict(self)
        record["min_cosine"] = self.min_cosine if math.isfinite(self.min_cosine) else None
        return record

    def better_than(self, other: "GateVerdict | None") -> bool:
        """Ranks candidates that missed: passing first, then fewer flips, then higher cosine."""
        if other is None:
            return True
        mine = (self.passed, -self.flips, _finite(self.min_cosine))
        theirs = (other.passed, -other.flips, _finite(other.min_cosine))
        return mine > theirs


Gate = Callable[[Path], GateVerdict]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -2.0


def separating_threshold(reference: np.ndarray, identities: Sequence) -> float:
    """The cosine that best separates the original's same- from different-identity pairs."""
    from facezoo.accuracy.metrics import best_separation

    pairs = pair_indices(len(reference))
    labels = np.asarray(list(identities), dtype=object)
    scores = pair_cosines(reference, pairs)
    threshold, _ = best_separation(scores, labels[pairs[:, 0]] == labels[pairs[:, 1]])
    return float(threshold)


def reference_gate(
    inputs: np.ndarray,
    reference: np.ndarray,
    *,
    min_cosine: float,
    decision_threshold: float,
    precision: str = "INT8",
    backends: dict[str, Sequence[str]] | None = None,
) -> Gate:
    """A gate: the candidate, on every backend that runs its format, against the original.

    ``inputs`` are held-out faces in the converted contract (never calibration or tuning faces),
    ``reference`` the original network's outputs for them. Passes when every backend reaches
    ``min_cosine`` (and the converter's batch check), with no same/different decision flipped
    at ``decision_threshold`` over all pairs.
    """
    from facezoo.formats import BACKENDS_FOR_FORMAT, SUFFIX

    backends_for_suffix = backends or {SUFFIX[fmt]: names for fmt, names in BACKENDS_FOR_FORMAT.items()}
    reference = np.asarray(reference, np.float32).reshape(len(reference), -1)
    inputs = np.ascontiguousarray(inputs, np.float32)

    def gate(path: Path) -> GateVerdict:
        from facezoo.converters.validation import judge, run_batch_and_singles
        from facezoo.gates import gate_for
        from facezoo.runtime.backends import open_backend

        bounds = gate_for(precision, min_cosine)
        worst: GateVerdict | None = None
        for name in backends_for_suffix.get(Path(path).suffix, ()):
            try:
                backend = open_backend(Path(path), name)
                try:
                    outputs, batch = run_batch_and_singles(backend, inputs)
                finally:
                    backend.close()
            except Exception as exc:  # a candidate a backend cannot load or run fails, with why
                return GateVerdict(False, float("nan"), len(pair_indices(len(inputs))), f"{name}: {exc}")
            outputs = outputs.reshape(len(outputs), -1)
            measured, problems = judge(reference, outputs, batch, bounds)
            flips = len(flipped_pairs(reference, outputs, decision_threshold))
            reasons = [f"{name}: {problem}" for problem in problems]
            if flips:
                reasons.append(f"{name}: {flips} same/different decision(s) flipped at cosine {decision_threshold:.4f}")
            cosine = measured.min_cosine if measured else float("nan")
            verdict = GateVerdict(not problems and not flips, cosine, flips, "; ".join(reasons))
            if worst is None or worst.better_than(verdict):
                worst = verdict
        if worst is None:
            return GateVerdict(False, float("nan"), 0, f"{Path(path).name}: no backend runs {Path(path).suffix} files")
        return worst

    return gate
