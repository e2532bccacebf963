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
#: Her five landmarks (x, y) in the ArcFace template's order, measured with the real MTCNN (facezoo
#: detect mtcnn, FP32 IR): what real-face crops are aligned from.
ASTRONAUT_LANDMARKS = ((203.90, 100.85), (246.46, 102.87), (224.54, 128.98), (201.72, 139.66), (245.04, 141.66))


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


def real_face_crops(size: tuple[int, int], count: int, seed: int) -> np.ndarray:
    """``count`` aligned crops (N×H×W×3 BGR uint8) of the one real face facezoo ships, each as a
    camera and an aligner might deliver it: the landmarks off by a few pixels (rotation up to 8°,
    scale ±8 %, shift up to 3 % of the face), mirrored half the time, then exposure, gamma, a colour
    cast, blur, sensor noise and JPEG at quality 35–95, drawn from ``seed``.

    Real pixels, unlike generated faces, have skin texture, hair and a lens's blur: INT8 ranges and
    the gate's faces need some of them (a gate judged on generated faces alone overrated INT8 on
    real faces by 0.01 in cosine)."""
    import cv2

    from facezoo.preprocessing import align_face

    rng = np.random.default_rng(seed)
    photo = astronaut()
    points = np.asarray(ASTRONAUT_LANDMARKS, np.float64)
    centre = points.mean(axis=0)
    eyes = float(np.linalg.norm(points[1] - points[0]))
    crops = []
    for _ in range(count):
        angle = np.deg2rad(rng.uniform(-8.0, 8.0))
        scale = rng.uniform(0.92, 1.08)
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        moved = (points - centre) @ turn.T * scale + centre + rng.uniform(-0.03, 0.03, 2) * 2.5 * eyes
        image = photo
        if rng.random() < 0.5:
            image = photo[:, ::-1]
            moved = moved.copy()
            moved[:, 0] = photo.shape[1] - 1 - moved[:, 0]
            moved = moved[[1, 0, 2, 4, 3]]  # the image's left eye is the other eye now
        crop = align_face(np.ascontiguousarray(image), moved, size).astype(np.float32)
        crop = crop * rng.uniform(0.55, 1.35) + rng.uniform(-25, 25)  # exposure
        crop = 255.0 * (np.clip(crop, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)  # gamma
        crop = crop * rng.uniform(0.85, 1.15, 3)  # colour cast, per channel
        if rng.random() < 0.4:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.5))
        crop = crop + rng.normal(0, rng.uniform(0, 6), crop.shape)
        crop = np.clip(crop, 0, 255).astype(np.uint8)
        encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 96))])[1]
        crops.append(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    return np.stack(crops) if crops else np.zeros((0, *size, 3), np.uint8)


__all__ = ["ASTRONAUT", "ASTRONAUT_FACE", "ASTRONAUT_LANDMARKS", "astronaut", "composite", "gate_photos",
           "generated_photo", "probe_photos", "real_face_crops"]
