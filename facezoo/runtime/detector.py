"""`Detector`: the face-detection task's wrapper, built from a file, a folder or a zoo name."""

from __future__ import annotations

from pathlib import Path

from facezoo.runtime.errors import ModelNotFoundError
from facezoo.runtime.model import FaceModel, load
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR, Artifact, resolve_artifact
from facezoo.tasks.detection import TASK as DETECTION_TASK
from facezoo.tasks.detection import FaceDetector
from facezoo.tasks.detectors import DetectorArchitecture, Face

DETECTION = DETECTION_TASK.name


def is_detector(artifact: Artifact) -> bool:
    """Whether a converted artifact is a face detector (its model card says so)."""
    return artifact.card is not None and artifact.card.task == DETECTION


def detector_design(artifact: Artifact) -> tuple[DetectorArchitecture, dict]:
    """A converted detector's architecture and decoding settings (the card's entry over the
    architecture's defaults); ModelNotFoundError naming the file when it is no detector."""
    card = artifact.card
    if not is_detector(artifact):
        raise ModelNotFoundError(f"{artifact.path}: not a converted face detector (its model card says task "
                                 f"{card.task if card else 'none: no model_card.json beside it'})")
    spec = card.spec(str(artifact.path.parent))
    return DETECTION_TASK.architecture(spec), DETECTION_TASK.settings(spec)


class Detector(FaceDetector):
    """BGR photos in, faces out: ``Detector("converted/yunet/FP32/yunet.xml").detect(bgr)``.

    ``model``: a converted file (any net of a detector made of several: its siblings are loaded
    too), a zoo name under ``converted_dir`` (default: OpenVINO IR, FP32), or an :class:`Artifact`.
    ``settings`` override the model card's decoding settings (score_threshold, nms_threshold,
    top_k, min_face).
    """

    def __init__(
        self,
        model: str | Path | Artifact,
        *,
        converted_dir: Path = DEFAULT_CONVERTED_DIR,
        format: str | None = None,
        precision: str | None = None,
        device: str = "CPU",
        backend: str | None = None,
        threads: int | None = None,
        **settings,
    ):
        artifact = model if isinstance(model, Artifact) else resolve_artifact(str(model), converted_dir, format, precision)
        arch, defaults = detector_design(artifact)
        models: dict[str, FaceModel] = {}
        try:
            for part, path in artifact.files.items():
                models[part or arch.parts[0]] = load(path, device=device, backend=backend, threads=threads)
        except Exception:
            for loaded in models.values():
                loaded.close()
            raise
        self.artifact = artifact
        super().__init__(models, arch, **{**defaults, **settings})


__all__ = ["Detector", "Face", "detector_design", "is_detector"]
