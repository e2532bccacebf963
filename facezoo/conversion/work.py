"""What one conversion shares between its steps: the original, the probes, the records, the cards.

Both ways INT8/BF16 folders are made (while converting, and beside an existing conversion) run
through a :class:`Work`, so both validate, record and write model cards the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.atomic import replace_tree
from facezoo.conversion.request import QuantizationSettings
from facezoo.formats import BACKENDS_FOR_FORMAT
from facezoo.modelcard import new_card, write_card
from facezoo.preprocessing import to_model_input
from facezoo.registry import ModelSpec
from facezoo.sources import thresholds_for
from facezoo.tasks import Outputs, Task, task_for
from facezoo.validation import ArtifactCheck, failed_check, validate_artifact


@dataclass
class Work:
    spec: ModelSpec
    source: object  # facezoo.sources: the original model
    scratch: Path  # precision folders are built here, then moved into place
    formats: list[str]
    step: Callable[[str], None]
    settings: QuantizationSettings = field(default_factory=QuantizationSettings)
    original: dict | None = None  # the model card's record of an original outside a download folder
    task: Task = field(init=False)
    thresholds: dict[str, float] = field(init=False)
    inputs: np.ndarray = field(init=False, repr=False)  # the task's probes, in the converted contract
    reference: Outputs = field(init=False, repr=False)  # the original's outputs for them
    checks: list[ArtifactCheck] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = task_for(self.spec)
        self.thresholds = thresholds_for(self.spec)
        probes = self.task.probe_images(self.spec)
        self.step("running the original model")
        self.reference = self.source.reference(probes)
        self.inputs = np.ascontiguousarray(to_model_input(probes, self.spec.converted.channel_order), np.float32)

    def gate(self, precision: str):
        return self.task.gate(precision, self.thresholds)

    def failed(self, precision: str) -> bool:
        return any(not c.passed for c in self.checks if c.precision == precision)

    def fail(self, path: Path, fmt: str, precision: str, reason: str, samples: int | None = None) -> None:
        """Record an artifact that could not be made or run."""
        self.checks.append(failed_check(Path(path).name, fmt, precision, "-", len(self.inputs) if samples is None else samples,
                                        self.task, self.gate(precision), None, reason))

    def validate(self, path: Path, fmt: str, precision: str) -> None:
        """Every backend that runs the format, against the original on the probes, by the precision's gate."""
        self.artifacts.append(str(path.relative_to(self.scratch)))
        for backend in BACKENDS_FOR_FORMAT[fmt]:
            self.step(f"validating {fmt} {precision} with {backend}")
            self.checks.append(validate_artifact(path, fmt=fmt, precision=precision, backend=backend, inputs=self.inputs,
                                                 reference=self.reference, task=self.task, gate=self.gate(precision),
                                                 file_label=path.name))

    def write_card(self, precision: str, **fields) -> Path:
        """The precision folder's model card, with the records of its artifacts so far."""
        folder = self.scratch / precision
        records = [c.as_dict() for c in self.checks if c.precision == precision]
        card = new_card(folder, self.spec, precision, self.source.source_files, records, self.original, **fields)
        return write_card(folder, card)


def publish_precisions(scratch: Path, final: Path, precisions: list[str]) -> Path:
    """Swap each precision folder into place; a folder is either old or new, never half."""
    final.mkdir(parents=True, exist_ok=True)
    for precision in precisions:
        replace_tree(scratch / precision, final / precision)
    return final


__all__ = ["Work", "publish_precisions"]
