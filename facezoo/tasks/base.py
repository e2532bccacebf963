"""What every task declares: its outputs, how a converted model is judged, and how it is used.

A task is one kind of model (face recognition now, face detection next). The pipeline, the
checker, the quantization gate, the runtime, the server and the repository export never ask
which task a model has: they call its :class:`Task` through :func:`facezoo.tasks.task_for`.
"""

from __future__ import annotations

import abc
import math
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

Outputs = dict[str, np.ndarray]  # a model's outputs by name, each with the batch first


@dataclass(frozen=True)
class TensorDecl:
    """One named tensor of the converted contract (-1: a dynamic dimension)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    attributes: dict = field(default_factory=dict)  # what else a reader needs (recognition: l2_normalized)

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, **self.attributes}


@dataclass(frozen=True)
class Samples:
    """Inputs the checker and the quantization gate judge on: real files first, then generated ones."""

    images: np.ndarray = field(repr=False)  # N×H×W×3 uint8 BGR, the model's input size
    identities: list[str]
    sources: list[str]
    real: int

    @property
    def synthetic(self) -> int:
        return len(self.images) - self.real


@dataclass(frozen=True)
class DecisionRule:
    """The decision a user of the model takes from its outputs, whose flips an artifact must not cause."""

    threshold: float
    source: str  # where the threshold comes from, in words
    separation_accuracy: float  # how well it separates the original's own samples
    allowed_flips: int = 0
    #: decisions are taken over the pairs of the first this many samples (None: all); samples after
    #: them are judged on closeness alone (the INT8 gate's real-photo crops: one person, no strangers)
    decided_samples: int | None = None


@dataclass(frozen=True)
class Comparison:
    """An artifact's outputs against the original's: the task's numbers, its bounds, and why it misses."""

    metrics: dict[str, Any]  # NaN where nothing could be measured
    bounds: dict[str, Any]
    reasons: list[str]

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Column:
    """One column of the tables convert and check print: a heading, and a str.format template over
    a validation record's fields ("{min_cosine:.7f}"); "-" where a field it uses was not measured."""

    heading: str
    template: str

    def render(self, record: dict) -> str:
        fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        values = [record.get(name) for name in fields]
        if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in values):
            return "-"
        return self.template.format(**record)


class Task(abc.ABC):
    """The interface of a task; :mod:`facezoo.tasks.recognition` is the reference implementation.
    A task that leaves a method out cannot be instantiated."""

    name: ClassVar[str]
    #: KServe/Triton outputs are the declared ones; these are the task's own routes on `facezoo serve`
    #: (``/v1/models/NAME/<route>``), implemented by facezoo.serving for every task that lists them.
    serving_routes: ClassVar[tuple[str, ...]] = ()
    convert_columns: ClassVar[tuple[Column, ...]] = ()  # `facezoo convert`'s table
    check_columns: ClassVar[tuple[Column, ...]] = ()  # `facezoo check`'s table

    def check_entry(self, spec) -> list[tuple[str, str]]:
        """(field, problem) for what a registry entry of this task must say beyond every entry."""
        return []

    def parts(self, spec) -> tuple[str, ...]:
        """The nets of a model, each converted to its own artifact ("": the model is one graph)."""
        return ("",)

    def part_outputs(self, spec, part: str) -> tuple[str, ...]:
        """The outputs one part's artifact gives (a one-graph model: all of :meth:`outputs`)."""
        return tuple(output.name for output in self.outputs(spec))

    def size_policy(self, spec) -> str | None:
        """How an image meets the model's input, where it is not simply the input size."""
        return None

    def photos(self, spec, images_dir: Path | None = None, count: int = 8) -> list[tuple[str, np.ndarray]]:
        """Named photos the whole model is also judged on after its parts (detection: decoded
        faces); empty where the task judges its outputs only."""
        return []

    def decode(self, spec, image: np.ndarray, run, **settings) -> list:
        """The model's decoded results for one photo, its nets called through ``run(part, batch)``."""
        raise NotImplementedError(f"{self.name} decodes nothing")

    def compare_faces(self, reference, found, gate, rule: DecisionRule | None, names=()) -> Comparison:
        """The model's decoded results on :meth:`photos` against the original's."""
        raise NotImplementedError(f"{self.name} judges no decoded results")

    @abc.abstractmethod
    def outputs(self, spec) -> tuple[TensorDecl, ...]:
        """The converted contract's outputs of a registry entry."""

    @abc.abstractmethod
    def probe_images(self, spec, part: str = "") -> np.ndarray:
        """The inputs every converted artifact (of one part) is validated on while it is converted."""

    @abc.abstractmethod
    def samples(self, size: tuple[int, int], images_dir: Path | None, count: int) -> Samples:
        """The inputs `facezoo check` and the quantization gate judge on."""

    @abc.abstractmethod
    def decision_rule(self, spec, reference: Outputs, samples: Samples, allowed_flips: int = 0,
                      from_registry: bool = True) -> DecisionRule:
        """The decision users take from the outputs, at the entry's threshold (``from_registry``) or
        at the one the original's own outputs on ``samples`` suggest."""

    @abc.abstractmethod
    def gate(self, precision: str, overrides: dict | None = None):
        """The precision's bounds, with the entry's (or the user's) own where given."""

    @abc.abstractmethod
    def compare(self, reference: Outputs, outputs: Outputs, singles: Outputs, gate, rule: DecisionRule | None) -> Comparison:
        """``outputs`` of a batch against the original's, ``singles`` (its first rows run one at a
        time) against that batch, and the rule's decisions, by the gate's bounds."""

    @abc.abstractmethod
    def unmeasured(self, gate, rule: DecisionRule | None, samples: int, reason: str = "") -> Comparison:
        """The comparison of an artifact that could not be made, loaded or run (``reason``: why)."""

    @abc.abstractmethod
    def rank(self, metrics: dict, passed: bool) -> tuple:
        """Orders candidates that were judged: higher is better (the INT8 ladder keeps the best)."""

    @abc.abstractmethod
    def wrapper(self, model, **options):
        """The object users call on a loaded model (recognition: an Embedder)."""


__all__ = ["Column", "Comparison", "DecisionRule", "Outputs", "Samples", "Task", "TensorDecl"]
