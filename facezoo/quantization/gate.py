"""The gate an INT8 or BF16 candidate must pass, as a callable the ladder is given.

``Judge``: given a written candidate file, run it on every backend that runs its format, through
the one validation loop (:func:`facezoo.validation.validate_artifact`) against the ORIGINAL
network's outputs on held-out faces, with the task's decision rule (recognition: no same/different
decision over the pairs of faces may flip), and return the worst backend's record.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from facezoo.formats import BACKENDS_FOR_FORMAT, FORMAT_FOR_SUFFIX
from facezoo.tasks import DecisionRule, Outputs, Task
from facezoo.validation import ArtifactCheck, failed_check, validate_artifact


SCREEN_FACES = 8  # faces a candidate is screened on before the full gate


class Judge:
    """``judge(path) -> ArtifactCheck`` (the worst backend's) and ``judge.rank(check)`` (higher is better)."""

    def __init__(self, inputs: np.ndarray, reference: Outputs, *, task: Task, bounds, rule: DecisionRule,
                 precision: str, backends: dict[str, Sequence[str]] | None = None):
        self.inputs = np.ascontiguousarray(inputs, np.float32)
        self.reference = reference
        self.task, self.bounds, self.rule, self.precision = task, bounds, rule, precision
        self.backends = backends or dict(BACKENDS_FOR_FORMAT)
        self.screen_faces: np.ndarray | None = None  # None: the first SCREEN_FACES

    def focus(self, faces: Sequence[int]) -> None:
        """Screen on these faces from now on: the ones the best candidate so far does worst on, where
        the gate's min is found (screening on easy faces would pass what the gate then refuses)."""
        self.screen_faces = np.asarray(sorted(int(i) for i in faces), np.int64)

    def rank(self, check: ArtifactCheck) -> tuple:
        """Passing first; a candidate no backend judged (it could not be built) below every judged one."""
        return (check.passed, check.backend != "-", *self.task.rank(check.metrics, check.passed))

    def unbuilt(self, reason: str) -> ArtifactCheck:
        """The record of a candidate that could not be built, so never judged."""
        return failed_check("-", "-", self.precision, "-", len(self.inputs), self.task, self.bounds, self.rule, reason)

    def screen(self, path: Path, faces: int = SCREEN_FACES) -> ArtifactCheck | None:
        """The gate on the faces :meth:`focus` chose (before that, the first ``faces``) and the
        format's first backend, or None where that would be the whole gate. A candidate that fails here fails the gate too (a min over fewer
        faces and backends is never lower, nor are fewer decisions flipped), so the full gate is
        run only for one that passes."""
        fmt = FORMAT_FOR_SUFFIX.get(Path(path).suffix, "-")
        backends = self.backends.get(fmt, ())
        chosen = self.screen_faces if self.screen_faces is not None else np.arange(min(faces, len(self.inputs)))
        if len(chosen) >= len(self.inputs) or not backends:
            return None
        # faces whose pairs are decided first, as the rule counts them
        decided = len(self.inputs) if self.rule.decided_samples is None else self.rule.decided_samples
        chosen = np.asarray(sorted(chosen, key=lambda i: (i >= decided, i)))
        rule = dataclasses.replace(self.rule, decided_samples=int(np.sum(chosen < decided)))
        reference = {name: values[chosen] for name, values in self.reference.items()}
        return validate_artifact(Path(path), fmt=fmt, precision=self.precision, backend=backends[0],
                                 inputs=self.inputs[chosen], reference=reference, task=self.task, gate=self.bounds,
                                 rule=rule, file_label=Path(path).name)

    def __call__(self, path: Path) -> ArtifactCheck:
        path = Path(path)
        fmt = FORMAT_FOR_SUFFIX.get(path.suffix, "-")
        worst: ArtifactCheck | None = None
        for backend in self.backends.get(fmt, ()):
            check = validate_artifact(path, fmt=fmt, precision=self.precision, backend=backend, inputs=self.inputs,
                                      reference=self.reference, task=self.task, gate=self.bounds, rule=self.rule,
                                      file_label=path.name)
            if worst is None or self.rank(check) < self.rank(worst):
                worst = check
        if worst is None:
            return failed_check(path.name, fmt, self.precision, "-", len(self.inputs), self.task, self.bounds,
                                self.rule, f"{path.name}: no backend runs {path.suffix} files")
        return worst


def reference_gate(inputs: np.ndarray, reference: Outputs, *, task: Task, min_cosine: float, rule: DecisionRule,
                   precision: str = "INT8", backends: dict[str, Sequence[str]] | None = None) -> Judge:
    """A gate: the candidate on every backend that runs its format, against the original.

    ``inputs`` are held-out faces in the converted contract (never calibration or tuning faces),
    ``reference`` the original network's outputs for them. Passes when every backend meets the
    precision's bounds at ``min_cosine`` (and the batch check), with no more decisions flipped
    than ``rule`` allows.
    """
    return Judge(inputs, reference, task=task, bounds=task.gate(precision, {precision: min_cosine}), rule=rule,
                 precision=precision, backends=backends)


__all__ = ["Judge", "SCREEN_FACES", "reference_gate"]
