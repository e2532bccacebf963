"""The one record of a validated artifact: what ran where, the task's numbers and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ArtifactCheck:
    """How closely one artifact, run by one backend, reproduces the original model.

    ``metrics`` and ``bounds`` are the task's (face recognition: min/mean cosine, max absolute
    and relative error, a batch against its single runs, and with a decision rule the pairs whose
    same/different decision flipped; bounds: the cosine threshold, relative error bound, flips
    allowed). They are written flat into model cards and reports, beside the fields below.
    """

    format: str
    precision: str
    backend: str
    file: str
    samples: int
    metrics: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    passed: bool = False
    reason: str = ""
    model: str = ""

    def metric(self, name: str) -> float:
        """One of the task's numbers; NaN where it was not measured."""
        value = self.metrics.get(name)
        return float("nan") if value is None else value

    def as_dict(self) -> dict:
        head = {"model": self.model} if self.model else {}
        return {**head, "format": self.format, "precision": self.precision, "backend": self.backend,
                "file": self.file, "samples": self.samples, **self.metrics, **self.bounds,
                "passed": self.passed, "reason": self.reason}

    def verdict(self) -> dict:
        """The short form the INT8 ladder records per candidate: passed, min cosine, flips, why."""
        cosine = self.metric("min_cosine")
        return {"passed": self.passed, "min_cosine": cosine if math.isfinite(cosine) else None,
                "flips": int(self.metrics.get("flipped", 0)),
                "reason": f"{self.backend}: {self.reason}" if self.reason and self.backend != "-" else self.reason}


__all__ = ["ArtifactCheck"]
