"""A detected face, and the one signature every detector architecture's decoder is called with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Runs one of a detector's nets: (part name, N×3×H×W float32 BGR 0..255 batch in the converted
#: contract) → the net's raw outputs by name. Original, converted file, any backend: same call.
RunPart = Callable[[str, np.ndarray], dict[str, np.ndarray]]

#: The ArcFace template's landmark order, which every decoder returns.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left: the image's left


@dataclass(frozen=True)
class Face:
    """One face in pixels of the image it was found in: box (x1, y1, x2, y2), score, 5×2 landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)  # 5×2 float32, LANDMARK_NAMES order
    #: the candidates the detector's last NMS merged into this face (best first): where two score
    #: almost the same, another precision may keep the other, and the detection gate allows that
    alternatives: tuple["Face", ...] = field(default=(), repr=False, compare=False)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def as_dict(self) -> dict:
        return {"box": [float(v) for v in self.box], "score": float(self.score),
                "landmarks": [[float(x), float(y)] for x, y in np.asarray(self.landmarks).reshape(5, 2)]}


__all__ = ["Face", "LANDMARK_NAMES", "RunPart"]
