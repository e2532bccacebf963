"""Find converted artifacts: a file path as given, or a zoo name under the converted folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facezoo.formats import FORMAT_FOR_SUFFIX, PREFERRED, SUFFIX
from facezoo.modelcard import ModelCard, card_beside
from facezoo.registry import PRECISIONS
from facezoo.tasks import DEFAULT_TASK, Task, task_named
from facezoo.runtime.errors import ModelNotFoundError

DEFAULT_CONVERTED_DIR = Path("converted")


@dataclass(frozen=True)
class Artifact:
    """One converted file with what its folder says about it."""

    path: Path  # a model of several nets: the file named (find_artifacts: its first net's)
    model: str
    format: str
    precision: str
    card: ModelCard | None
    parts: dict[str, Path] = field(default_factory=dict)  # a model of several nets: each net's file of this format

    @property
    def files(self) -> dict[str, Path]:
        """Every file of the artifact by part ("" for a model of one graph)."""
        return dict(self.parts) or {"": self.path}

    @property
    def label(self) -> str:
        return f"{self.model} {self.format} {self.precision}"

    @property
    def task(self) -> Task:
        """The card's task; a file without a card is taken as what facezoo made before tasks."""
        return task_named(self.card.task if self.card else DEFAULT_TASK)


def artifact_from_path(path: Path) -> Artifact:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file")
    fmt = FORMAT_FOR_SUFFIX.get(path.suffix)
    if fmt is None:
        raise ModelNotFoundError(f"{path}: not a converted model (expected {', '.join(FORMAT_FOR_SUFFIX)})")
    card = card_beside(path)
    precision = card.precision if card else (path.parent.name if path.parent.name in PRECISIONS else "FP32")
    model = card.model if card else path.stem
    parts = {}
    if card is not None and card.parts and card.part_of(path):  # one net of several: the artifact is the set
        parts = {part: path.with_name(facts["file_stem"] + path.suffix) for part, facts in card.parts.items()}
        missing = [str(p) for p in parts.values() if not p.is_file()]
        if missing:
            raise ModelNotFoundError(f"{path}: {model} is made of {len(parts)} nets; missing {', '.join(missing)}")
    return Artifact(path, model, fmt, precision, card, parts)


def find_artifacts(model: str, converted_dir: Path = DEFAULT_CONVERTED_DIR, formats=None, precisions=None) -> list[Artifact]:
    """Every converted file of `model` under converted_dir/<model>/<PRECISION>/, best first."""
    folder = Path(converted_dir) / model
    found = []
    for precision in precisions or PRECISIONS:
        card = None
        for fmt in formats or PREFERRED:
            path = folder / precision / f"{model}{SUFFIX[fmt]}"
            if not path.is_file():  # a model of several nets: its card names their files
                card = card or card_beside(path) if (folder / precision).is_dir() else None
                first = next(iter((card.parts or {}).values()), None) if card else None
                path = folder / precision / f"{first['file_stem']}{SUFFIX[fmt]}" if first else path
            if path.is_file():
                found.append(artifact_from_path(path))
    return found


def resolve_artifact(
    model: str, converted_dir: Path = DEFAULT_CONVERTED_DIR, fmt: str | None = None, precision: str | None = None
) -> Artifact:
    """A path is taken as is; a name picks the converted file (default: OpenVINO IR, FP32)."""
    candidate = Path(model)
    if candidate.suffix in FORMAT_FOR_SUFFIX and (candidate.exists() or "/" in model):
        return artifact_from_path(candidate)
    formats = [fmt] if fmt else list(PREFERRED)
    precisions = [precision] if precision else list(PRECISIONS)
    found = find_artifacts(model, converted_dir, formats, precisions)
    if not found:
        raise ModelNotFoundError(
            f"no converted {fmt or 'model'} {precision or ''} for {model!r} under {Path(converted_dir) / model}; "
            f"run `facezoo convert {model} -o {converted_dir}` or give a file path"
        )
    return found[0]
