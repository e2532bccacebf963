"""Face detector architectures: the table a detection entry's ``architecture`` selects.

Each architecture decodes its nets' raw outputs into :class:`~facezoo.tasks.detectors.face.Face`
records. Its nets are called through one :data:`~facezoo.tasks.detectors.face.RunPart` in the
converted contract (N×3×H×W float32 BGR 0..255), so the same decoder runs the original file, a
converted artifact on any backend, or a served model. Adding a detector is one module here and
one row in ``ARCHITECTURES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from facezoo.errors import RegistryError
from facezoo.tasks.detectors.face import LANDMARK_NAMES, Face, RunPart


@dataclass(frozen=True)
class DetectorArchitecture:
    """What facezoo knows of one detector design."""

    name: str
    module: str  # facezoo.tasks.detectors.<module>: PARTS and detect(image, run, **settings)
    parts: tuple[str, ...]  # its nets, in the order they run
    defaults: dict  # decoding settings (score_threshold, nms_threshold, top_k, min_face) it uses unless told
    score_setting: str  # which setting is the final score threshold (the gate's "near the threshold")
    probe_sizes: dict[str, tuple[int, int]]  # per part: the H×W its raw-head probes are run at
    size_policy: str  # how a photo meets each net's input, in words (the model card says it)
    settings: tuple[str, ...] = field(default=())  # the keyword arguments its detect() takes

    def decoder(self):
        return importlib.import_module(f"facezoo.tasks.detectors.{self.module}")

    def detect(self, image: np.ndarray, run: RunPart, **settings) -> list[Face]:
        chosen = {key: value for key, value in {**self.defaults, **settings}.items()
                  if key in self.settings and value is not None}
        return self.decoder().detect(image, run, **chosen)


ARCHITECTURES: dict[str, DetectorArchitecture] = {
    arch.name: arch
    for arch in (
        DetectorArchitecture(
            name="yunet",
            module="yunet",
            parts=("net",),
            defaults={"score_threshold": 0.9, "nms_threshold": 0.3, "top_k": 5000},
            score_setting="score_threshold",
            probe_sizes={"net": (160, 192)},
            size_policy="any H×W: the photo is padded right and bottom with zeros to a multiple of 32 "
                        "(as OpenCV's FaceDetectorYN does); no resize",
            settings=("score_threshold", "nms_threshold", "top_k"),
        ),
        DetectorArchitecture(
            name="mtcnn",
            module="mtcnn",
            parts=("pnet", "rnet", "onet"),
            defaults={"score_threshold": 0.7, "min_face": 20},
            score_setting="score_threshold",
            probe_sizes={"pnet": (60, 80), "rnet": (24, 24), "onet": (48, 48)},
            size_policy="P-Net runs on a scale pyramid of the photo (factor 0.709 from the smallest "
                        "face, 20 px by default); R-Net and O-Net on candidate boxes resized to 24×24 "
                        "and 48×48",
            settings=("score_threshold", "min_face"),
        ),
        DetectorArchitecture(
            name="scrfd",
            module="scrfd",
            parts=("net",),
            defaults={"score_threshold": 0.5, "nms_threshold": 0.4},
            score_setting="score_threshold",
            probe_sizes={"net": (640, 640)},
            size_policy="letterbox into 640×640: resized (bilinear) keeping the aspect ratio until one "
                        "side fills it, placed top-left on black (as insightface's SCRFD does)",
            settings=("score_threshold", "nms_threshold"),
        ),
    )
}


def architecture_named(name: str) -> DetectorArchitecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise RegistryError(f"unknown detector architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


__all__ = ["ARCHITECTURES", "DetectorArchitecture", "Face", "LANDMARK_NAMES", "RunPart", "architecture_named"]
