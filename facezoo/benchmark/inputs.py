"""Distinct face inputs for timing: a constant tensor lets caches and branch predictors flatter."""

from __future__ import annotations

import cv2
import numpy as np

from facezoo.faces import synthetic_face

from facezoo.preprocessing import to_model_input
from facezoo.preprocessing import template

POOL = 64  # distinct faces; batches are cut from the pool at shifting offsets
FRAME = (250, 250)  # LFW's image size: what --with-preprocessing decodes and aligns


def tensor_batches(shape: tuple[int, ...], channel_order: str, batch: int, count: int = 8) -> list[np.ndarray]:
    """`count` different float32 NCHW batches of aligned synthetic face crops, 0..255."""
    _, _, height, width = shape
    faces = np.stack([synthetic_face(2000 + i, i % 5, (height, width)) for i in range(POOL)])
    tensors = to_model_input(faces, channel_order)
    return [np.ascontiguousarray(np.take(tensors, range(k * batch, (k + 1) * batch), axis=0, mode="wrap")) for k in range(count)]


def jpeg_batches(batch: int, count: int = 8) -> list[list[np.ndarray]]:
    """`count` batches of JPEG-encoded 250×250 face photos (uint8 buffers for cv2.imdecode)."""
    encoded = []
    for i in range(POOL):
        frame = synthetic_face(3000 + i, i % 5, FRAME)
        ok, blob = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        encoded.append(blob)
    return [[encoded[(k * batch + j) % POOL] for j in range(batch)] for k in range(count)]


def frame_landmarks(count: int) -> np.ndarray:
    """The 5 landmarks of each photo of jpeg_batches (its faces are drawn on the frame's template),
    so --with-preprocessing aligns as a deployment does after its landmark detector."""
    return np.repeat(template(FRAME)[None].astype(np.float32), count, axis=0)
