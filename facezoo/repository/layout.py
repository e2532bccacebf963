"""What goes where in a model repository, and moving it into place atomically."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from facezoo.atomic import replace_tree
from facezoo.errors import FacezooError
from facezoo.modelcard import CARD_NAME
from facezoo.runtime.model import load
from facezoo.runtime.resolve import Artifact

#: The file names the servers look for in a version folder.
REPOSITORY_FILES = {"onnx": ("model.onnx",), "openvino": ("model.xml", "model.bin")}


class ExportError(FacezooError):
    """The artifact cannot be exported as asked, or the repository cannot be written."""


@dataclass
class ExportOptions:
    target: str  # triton or ovms
    repository: Path = Path("model_repository")
    max_batch: int = 32
    max_delay_us: int = 5000  # Triton's dynamic batching delay
    instances: int = 1  # Triton instance_group count (KIND_CPU)
    device: str = "CPU"  # OVMS target_device
    version: int = 1


@dataclass(frozen=True)
class ModelIO:
    """Input and output names and shapes (-1 for the batch), as the servers will see them: the
    outputs are the ones the model's task declares (recorded in its model card)."""

    input_name: str
    input_shape: tuple[int, ...]
    outputs: tuple[tuple[str, tuple[int, ...], str], ...]  # (name, shape, dtype) of each


@dataclass
class ExportResult:
    name: str
    target: str
    folder: Path
    files: list[Path] = field(default_factory=list)
    config: Path | None = None


def model_io(artifact: Artifact) -> ModelIO:
    """From the model card; a file without one is loaded to read them."""
    if artifact.card:
        card = artifact.card
        return ModelIO(card.input.name, card.input.shape, tuple((o.name, o.shape, o.dtype) for o in card.outputs))
    with load(artifact.path) as model:
        return ModelIO(model.input_spec.name, (-1, *model.input_spec.shape[1:]),
                       tuple((o.name, (-1, *o.shape[1:]), o.dtype) for o in model.output_specs))


def stage_model_folder(artifact: Artifact, repository: Path, name: str, version: int) -> Path:
    """A temporary folder inside the repository with <version>/model.* and the model card."""
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=repository))
    version_dir = staging / str(version)
    version_dir.mkdir()
    sources = [artifact.path] + ([artifact.path.with_suffix(".bin")] if artifact.format == "openvino" else [])
    for source, target in zip(sources, REPOSITORY_FILES[artifact.format]):
        if not source.is_file():
            shutil.rmtree(staging)
            raise ExportError(f"{source}: missing (an OpenVINO IR needs its .bin beside the .xml)")
        shutil.copyfile(source, version_dir / target)
    card = artifact.path.parent / CARD_NAME
    if card.is_file():  # provenance, beside the version folders (servers ignore it)
        shutil.copyfile(card, staging / CARD_NAME)
    return staging


def publish_folder(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames only: readers see the old folder or the new one."""
    replace_tree(staging, target)


def read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: cannot read it as JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return document
