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
from facezoo.validation import ArtifactCheck, failed_check, validate_artifact, validate_decoded


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
    parts: tuple[str, ...] = field(init=False)  # the model's nets ("": one graph)
    inputs: dict[str, np.ndarray] = field(init=False, repr=False)  # per part: the task's probes, converted contract
    reference: dict[str, Outputs] = field(init=False, repr=False)  # per part: the original's outputs for them
    photos: list[tuple[str, np.ndarray]] = field(init=False, repr=False)  # what the whole model is judged on
    photo_reference: list = field(init=False, repr=False)  # the original's decoded results on them
    checks: list[ArtifactCheck] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = task_for(self.spec)
        self.thresholds = thresholds_for(self.spec)
        self.parts = self.task.parts(self.spec)
        self.step("running the original model")
        self.inputs, self.reference = {}, {}
        for part in self.parts:
            probes = self.task.probe_images(self.spec, part)
            self.reference[part] = self.source.reference(probes, part) if part else self.source.reference(probes)
            self.inputs[part] = np.ascontiguousarray(to_model_input(probes, self.spec.converted.channel_order),
                                                     np.float32)
        self.photos = self.task.photos(self.spec)
        self.photo_reference = [self.task.decode(self.spec, photo, self.source.run_part) for _, photo in self.photos]

    def gate(self, precision: str):
        return self.task.gate(precision, self.thresholds)

    def failed(self, precision: str) -> bool:
        return any(not c.passed for c in self.checks if c.precision == precision)

    def fail(self, path: Path, fmt: str, precision: str, reason: str, samples: int | None = None) -> None:
        """Record an artifact that could not be made or run."""
        count = len(next(iter(self.inputs.values()))) if samples is None else samples
        self.checks.append(failed_check(Path(path).name, fmt, precision, "-", count, self.task, self.gate(precision),
                                        None, reason))

    def part_facts(self) -> dict:
        """Each part's file stem, input (any H×W: -1) and raw outputs, for the model card."""
        facts = {}
        for part in self.parts:
            size = self.source.size(part)
            height, width = size if size is not None else (-1, -1)
            facts[part] = {"file_stem": self.stem(part), "input_shape": [-1, 3, height, width],
                           "outputs": list(self.task.part_outputs(self.spec, part)),
                           "output_shapes": self._output_shapes(part)}
        return facts

    def _output_shapes(self, part: str) -> dict[str, list[int]]:
        """Each raw output's shape as the converted graph declares it (-1: follows the batch or H×W)."""
        graph = self.source.converted_model(part).graph
        return {value.name: [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
                for value in graph.output}

    def stem(self, part: str) -> str:
        """The file name of one part's artifacts, without suffix."""
        return self.spec.artifact_stem(part)

    def validate(self, path: Path, fmt: str, precision: str, part: str = "") -> None:
        """Every backend that runs the format, against the original on the part's probes, by the precision's gate."""
        self.artifacts.append(str(path.relative_to(self.scratch)))
        for backend in BACKENDS_FOR_FORMAT[fmt]:
            self.step(f"validating {path.name} {precision} with {backend}")
            self.checks.append(validate_artifact(path, fmt=fmt, precision=precision, backend=backend,
                                                 inputs=self.inputs[part], reference=self.reference[part],
                                                 task=self.task, gate=self.gate(precision), file_label=path.name))

    def validate_model(self, paths: dict[str, Path], fmt: str, precision: str) -> None:
        """The whole model (every part of one format) on the task's photos, where the task judges
        decoded results (detection: the faces)."""
        if not self.photos:
            return
        for backend in BACKENDS_FOR_FORMAT[fmt]:
            self.step(f"validating {self.spec.name} {fmt} {precision} on photos with {backend}")
            self.checks.append(validate_decoded(paths, fmt=fmt, precision=precision, backend=backend,
                                                photos=self.photos, reference=self.photo_reference, spec=self.spec,
                                                task=self.task, gate=self.gate(precision)))

    def write_card(self, precision: str, **fields) -> Path:
        """The precision folder's model card, with the records of its artifacts so far."""
        folder = self.scratch / precision
        records = [c.as_dict() for c in self.checks if c.precision == precision]
        if self.parts != ("",):
            fields.setdefault("parts", self.part_facts())
            fields.setdefault("size_policy", self.task.size_policy(self.spec))
        card = new_card(folder, self.spec, precision, self.source.source_files, records, self.original, **fields)
        return write_card(folder, card)


def publish_precisions(scratch: Path, final: Path, precisions: list[str]) -> Path:
    """Swap each precision folder into place; a folder is either old or new, never half."""
    final.mkdir(parents=True, exist_ok=True)
    for precision in precisions:
        replace_tree(scratch / precision, final / precision)
    return final


__all__ = ["Work", "publish_precisions"]
