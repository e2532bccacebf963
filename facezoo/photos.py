"""Photos for the detectors: the one real photo facezoo ships, and photos made from it.

scikit-image's ``astronaut`` (Eileen Collins, a NASA photo in the public domain) ships as
``facezoo/data/astronaut.jpg``. The detection gate and the probes of detector nets use it and
composites of it (scaled, mirrored, several faces on one canvas, a face cut by the border) plus a
generated face on a plain background, so that both real pixels and faces at other sizes and places
are judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.images import read_image

ASTRONAUT = Path(__file__).with_name("data") / "astronaut.jpg"
#: The astronaut's face in the 512×512 photo (x1, y1, x2, y2), measured with MTCNN: where crops for
#: the probes of nets that take one face (R-Net, O-Net) come from.
ASTRONAUT_FACE = (170, 40, 270, 170)


def astronaut() -> np.ndarray:
    """The shipped photo, BGR uint8 (512×512)."""
    return read_image(ASTRONAUT)


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _paste(canvas: np.ndarray, image: np.ndarray, x: int, y: int) -> None:
    """Paste ``image`` with its top-left corner at (x, y); what falls outside the canvas is cut."""
    height, width = canvas.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + image.shape[1], width), min(y + image.shape[0], height)
    if x1 < x2 and y1 < y2:
        canvas[y1:y2, x1:x2] = image[y1 - y : y2 - y, x1 - x : x2 - x]


def generated_photo(size: tuple[int, int] = (360, 480), identity: int = 4100) -> np.ndarray:
    """A generated face (facezoo.faces) at 2.5× on a gray gradient, off centre."""
    from facezoo.faces import synthetic_face

    height, width = size
    ramp = np.linspace(60, 190, width, dtype=np.float32)[None, :, None]
    canvas = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
    face = _resized(synthetic_face(identity, 0, (112, 112)), 2.5)
    _paste(canvas, face, width // 3, height // 5)
    return canvas


def composite(size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Several faces on one canvas: the astronaut at 0.5× and mirrored at 0.35×, one cut by the
    right border, and a generated face."""
    from facezoo.faces import synthetic_face

    height, width = size
    canvas = np.full((height, width, 3), 96, np.uint8)
    photo = astronaut()
    _paste(canvas, _resized(photo, 0.5), 10, 10)
    _paste(canvas, _resized(photo[:, ::-1], 0.35), 300, 250)
    _paste(canvas, _resized(photo, 0.45), width - 120, 40)  # the face is cut by the border
    _paste(canvas, _resized(synthetic_face(4101, 1, (112, 112)), 1.2), 330, 40)
    return canvas


def gate_photos() -> list[tuple[str, np.ndarray]]:
    """The photos converted detectors are judged on, with their names: real first."""
    photo = astronaut()
    return [
        ("astronaut", photo),
        ("astronaut-mirrored-0.6", _resized(photo[:, ::-1].copy(), 0.6)),
        ("composite", composite()),
        ("generated", generated_photo()),
    ]


def probe_photos(size: tuple[int, int]) -> np.ndarray:
    """Probes of one detector net at a fixed input size (N×H×W×3 BGR uint8): the astronaut's face
    region, the whole photo, the composite and the generated photo, each resized to ``size``."""
    import cv2

    height, width = size
    x1, y1, x2, y2 = ASTRONAUT_FACE
    photo = astronaut()
    sources = [photo[y1:y2, x1:x2], photo, composite(), generated_photo()]
    return np.stack([cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in sources])


__all__ = ["ASTRONAUT", "ASTRONAUT_FACE", "astronaut", "composite", "gate_photos", "generated_photo", "probe_photos"]
