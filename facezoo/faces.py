"""Deterministic synthetic face crops: probes, stand-in calibration, LFW-style test sets.

Every image is a 5-point aligned crop drawn with OpenCV: the eyes, nose tip and mouth corners sit
at the alignment template of :mod:`facezoo.preprocessing` (``template``/``template_frame``). ``identity`` fixes face shape, proportions and colours; ``variation`` adds a
small pose change, lighting, expression and sensor noise. Same arguments, same pixels.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from facezoo.preprocessing import TEMPLATE_112, template_frame

_SHIFT = 4  # sub-pixel bits for cv2 drawing
#: Identities of the converter's probe faces (1000, 1001, ...) and of the colour-asymmetric face.
PROBE_IDENTITY = 1000
COLOUR_ASYMMETRIC_IDENTITY = 7
_ONE = 1 << _SHIFT


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(b"facezoo-faces"), *[int(k) & 0xFFFFFFFF for k in keys]])


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _ax(a: float, b: float) -> tuple[int, int]:
    return int(round(max(a, 0.5) * _ONE)), int(round(max(b, 0.5) * _ONE))


def _ellipse(img, center, axes, angle, color, thickness=-1, start=0, end=360):
    cv2.ellipse(img, _pt(*center), _ax(*axes), angle, start, end, color, thickness, cv2.LINE_AA, _SHIFT)


def _traits(identity: int) -> dict:
    r = _rng(identity, 0)
    tone = r.uniform(0, 1)  # dark .. light
    red = 95 + 150 * tone + r.uniform(-10, 10)
    green = red * r.uniform(0.68, 0.86)
    skin = np.clip(np.array([green * r.uniform(0.7, 0.92), green, red]), 0, 255)  # BGR
    hair_tone = r.uniform(0, 1)
    hair = np.array([20 + 60 * hair_tone, 30 + 90 * hair_tone, 35 + 150 * hair_tone]) * r.uniform(0.6, 1.2)
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "iris": np.array([r.uniform(20, 160), r.uniform(30, 130), r.uniform(10, 90)]),
        "lips": np.clip(skin * np.array([0.55, 0.5, 0.85]) + r.uniform(-15, 15, 3), 0, 255),
        "background": r.uniform(30, 230, 3),
        "background2": r.uniform(30, 230, 3),
        "face_w": r.uniform(34, 44),
        "face_h": r.uniform(47, 58),
        "chin": r.uniform(-4, 5),
        "hairline": r.uniform(16, 30),
        "hair_volume": r.uniform(2, 9),
        "fringe": r.uniform(0, 1) < 0.4,
        "eye_w": r.uniform(5.0, 8.0),
        "eye_h": r.uniform(2.2, 3.8),
        "eye_dx": r.uniform(-2.0, 2.0),
        "eye_dy": r.uniform(-2.0, 2.0),
        "brow_gap": r.uniform(6, 11),
        "brow_thick": r.uniform(1.2, 3.2),
        "brow_tilt": r.uniform(-12, 12),
        "nose_w": r.uniform(5, 10),
        "nose_dy": r.uniform(-2.5, 2.5),
        "mouth_dw": r.uniform(-4, 4),
        "mouth_dy": r.uniform(-2, 2),
        "lip_h": r.uniform(1.5, 4.0),
        "beard": r.uniform(0, 1) < 0.25,
        "glasses": r.uniform(0, 1) < 0.2,
        "ears": r.uniform(4, 8),
    }


def synthetic_face(identity: int, variation: int = 0, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """One aligned face crop, H x W x 3 uint8 BGR; ``size`` is (H, W)."""
    t = _traits(identity)
    v = _rng(identity, variation, 1)
    height, width = size
    scale, dx = template_frame(size)
    # Draw in template space at 2x resolution and resample once (with the pose change) at the end.
    s = 2.0
    canvas_h, canvas_w = int(round(112 * s)), int(round(112 * s))
    img = np.empty((canvas_h, canvas_w, 3), np.uint8)
    ramp = np.linspace(0.0, 1.0, canvas_h)[:, None, None]
    img[:] = np.clip(t["background"] * (1 - ramp) + t["background2"] * ramp, 0, 255).astype(np.uint8)

    def P(x, y):
        return x * s, y * s

    def A(a, b):
        return a * s, b * s

    skin = tuple(float(c) for c in t["skin"])
    hair = tuple(float(c) for c in t["hair"])
    cx, cy = 56.0, 66.0
    # hair behind the head
    _ellipse(img, P(cx, cy - 6), A(t["face_w"] + t["hair_volume"], t["face_h"] + t["hair_volume"] - 4), 0, hair)
    # ears, face
    for side in (-1, 1):
        _ellipse(img, P(cx + side * (t["face_w"] - 1), 58), A(t["ears"], 9), 0, tuple(0.9 * c for c in skin))
    _ellipse(img, P(cx, cy + t["chin"] / 2), A(t["face_w"], t["face_h"] + t["chin"] / 2), 0, skin)
    # hair cap over the forehead
    _ellipse(img, P(cx, cy - t["face_h"] + t["hairline"] - 4), A(t["face_w"] + 2, t["hairline"] + 2), 0, hair,
             start=180, end=360)
    if t["fringe"]:
        _ellipse(img, P(cx - 10, cy - t["face_h"] + t["hairline"] + 2), A(18, 9), -20, hair)
    if t["beard"]:
        beard = tuple(0.8 * c for c in hair)
        _ellipse(img, P(cx, 98), A(t["face_w"] - 8, 16), 0, beard, start=0, end=180)

    pts = TEMPLATE_112 + np.array([[-t["eye_dx"], t["eye_dy"]], [t["eye_dx"], t["eye_dy"]],
                                   [0, t["nose_dy"]], [-t["mouth_dw"], t["mouth_dy"]], [t["mouth_dw"], t["mouth_dy"]]])
    pts = pts + v.normal(0, 0.4, pts.shape)  # landmark detector / alignment jitter
    blink = v.uniform(0.75, 1.1)
    for (ex, ey), side in zip(pts[:2], (-1, 1)):
        brow = tuple(0.7 * c for c in hair)
        _ellipse(img, P(ex, ey - t["brow_gap"]), A(t["eye_w"] + 2, t["brow_thick"]), side * t["brow_tilt"], brow)
        _ellipse(img, P(ex, ey), A(t["eye_w"], t["eye_h"] * blink), 0, (235, 238, 240))
        _ellipse(img, P(ex + v.normal(0, 0.5), ey), A(t["eye_h"] * 0.95 * blink, t["eye_h"] * 0.95 * blink), 0,
                 tuple(float(c) for c in t["iris"]))
        _ellipse(img, P(ex, ey), A(1.0, 1.0), 0, (15, 15, 15))
        if t["glasses"]:
            _ellipse(img, P(ex, ey), A(t["eye_w"] + 4, t["eye_h"] + 5), 0, (30, 30, 30), thickness=max(1, int(s)))
    if t["glasses"]:
        cv2.line(img, _pt(*P(pts[0, 0] + t["eye_w"] + 4, pts[0, 1])), _pt(*P(pts[1, 0] - t["eye_w"] - 4, pts[1, 1])),
                 (30, 30, 30), max(1, int(s)), cv2.LINE_AA, _SHIFT)
    # nose: a shaded ridge down to the tip, nostrils either side
    nx, ny = pts[2]
    shade = tuple(0.78 * c for c in skin)
    ridge = np.array([P(nx - 2, (pts[0, 1] + pts[1, 1]) / 2 + 3), P(nx - t["nose_w"] / 2, ny + 2),
                      P(nx + t["nose_w"] / 2, ny + 2)])
    cv2.fillConvexPoly(img, np.round(ridge * _ONE).astype(np.int32), shade, cv2.LINE_AA, _SHIFT)
    for side in (-1, 1):
        _ellipse(img, P(nx + side * t["nose_w"] / 3, ny + 2), A(1.6, 1.0), 0, tuple(0.45 * c for c in skin))
    # mouth between the corners; the expression opens it a little
    (mlx, mly), (mrx, mry) = pts[3], pts[4]
    mcx, mcy = (mlx + mrx) / 2, (mly + mry) / 2
    half = (mrx - mlx) / 2
    smile = v.uniform(-1.0, 2.5)
    lips = tuple(float(c) for c in t["lips"])
    _ellipse(img, P(mcx, mcy), A(half, t["lip_h"] + smile / 2), 0, lips)
    _ellipse(img, P(mcx, mcy - 0.3), A(half * 0.9, max(0.6, smile * 0.6)), 0, (40, 30, 60))

    # pose: small rotation, scale and shift about the face centre, then into the (H, W) crop
    angle = v.normal(0, 2.0)
    zoom = 1.0 + v.normal(0, 0.015)
    shift = v.normal(0, 0.8, 2)
    m = cv2.getRotationMatrix2D((cx * s, 64 * s), angle, zoom)
    m[:, 2] += shift * s
    to_crop = np.array([[scale / s, 0, dx], [0, scale / s, 0]])
    full = to_crop @ np.vstack([m, [0, 0, 1]])
    out = cv2.warpAffine(img, full, (width, height), flags=cv2.INTER_AREA if scale < s else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    # lighting: gain, offset and a side light; then sensor noise
    out = out.astype(np.float32)
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    gain = v.uniform(0.9, 1.1) * (1.0 + v.uniform(-0.08, 0.08) * xs)
    out = out * gain + v.uniform(-8, 8)
    out += v.normal(0, 2.0, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def face_batch(identities, variations, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """N x H x W x 3 uint8 BGR for the pairs (identities[i], variations[i])."""
    return np.stack([synthetic_face(int(i), int(v), size) for i, v in zip(identities, variations)])


def colour_asymmetric_face(size: tuple[int, int] = (112, 112), identity: int = COLOUR_ASYMMETRIC_IDENTITY) -> np.ndarray:
    """A face whose red and blue channels differ strongly: swapping them changes the image a lot."""
    img = synthetic_face(identity, 0, size).astype(np.float32)
    gray = img.mean(axis=2)
    height, width = size
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    out = np.empty_like(img)
    out[..., 0] = 0.25 * gray + 25 * ramp  # B: dark
    out[..., 1] = gray
    out[..., 2] = np.minimum(255, 0.6 * gray + 110)  # R: bright
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def probe_images(count: int = 4, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """``count`` probe crops (N x H x W x 3 uint8 BGR); index 1 (or 0 if count == 1) is colour-asymmetric."""
    if count < 1:
        raise ValueError("count must be at least 1")
    images = [synthetic_face(PROBE_IDENTITY + i, i, size) for i in range(count)]
    images[min(1, count - 1)] = colour_asymmetric_face(size)
    return np.stack(images)


__all__ = [
    "COLOUR_ASYMMETRIC_IDENTITY",
    "PROBE_IDENTITY",
    "TEMPLATE_112",
    "colour_asymmetric_face",
    "face_batch",
    "probe_images",
    "synthetic_face",
]
