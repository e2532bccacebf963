"""The face endpoints' input: multipart images (and landmarks) into the model's prepared batch.

Images are decoded with OpenCV (BGR) and go through the Embedder's checks: without landmarks
only aligned crops of the model's size pass (the raw-photo guard), with landmarks each face is
aligned first. Every refusal is a BadRequest naming the form field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
from starlette.datastructures import UploadFile

from facezoo.errors import FacezooError
from facezoo.serving.errors import BadRequest

MAX_FILES = 256


@dataclass
class FaceInput:
    """Decoded, checked faces ready for the batcher, with the labels errors use."""

    batch: np.ndarray  # float32 NCHW, the model's prepared input
    labels: list[str]


def form_files(form, field: str) -> list[UploadFile]:
    values = form.getlist(field)
    for value in values:
        if not isinstance(value, UploadFile):
            raise BadRequest(f"{field}: expected an uploaded image file, got a text field")
    return values


def read_landmarks(form, count: int) -> np.ndarray | None:
    """Optional `landmarks` field: JSON, one 5×2 list of (x, y) points per image, in order."""
    raw = form.get("landmarks")
    if raw is None or raw == "":
        return None
    if isinstance(raw, UploadFile):
        raise BadRequest("landmarks: expected a JSON text field, got a file")
    try:
        points = np.asarray(json.loads(raw), dtype=np.float64)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise BadRequest(f"landmarks: expected JSON, a list of 5×2 points per image: {exc}") from None
    if points.shape != (count, 5, 2):
        raise BadRequest(f"landmarks: expected shape ({count}, 5, 2), one 5×2 list per image, got {points.shape}")
    return points


def read_threshold(form, query: str | None) -> float | None:
    raw = query if query is not None else form.get("threshold")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"threshold: expected a number (a cosine), got {str(raw)[:40]!r}") from None
    if not -1.0 <= value <= 1.0:
        raise BadRequest(f"threshold: {value:g} is not a cosine in [-1, 1]")
    return value


def decode_image(data: bytes, label: str) -> np.ndarray:
    if not data:
        raise BadRequest(f"{label}: empty file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadRequest(f"{label}: cannot decode the image (not a format OpenCV reads, or corrupt)")
    return image


def prepare_faces(embedder, blobs: list[tuple[str, bytes]], landmarks: np.ndarray | None) -> FaceInput:
    """Decode each image, align or check it, and stack the model's input batch (runs off the event loop)."""
    crops, labels = [], []
    for index, (label, data) in enumerate(blobs):
        image = decode_image(data, label)
        try:
            crop = embedder.prepare([image], None if landmarks is None else landmarks[index:index + 1])
        except FacezooError as exc:
            message = str(exc).removeprefix("image 0: ")
            raise BadRequest(f"{label}: {message}") from None
        crops.append(crop)
        labels.append(label)
    return FaceInput(embedder.model.prepare(np.concatenate(crops)), labels)


async def read_blobs(files: list[tuple[str, UploadFile]]) -> list[tuple[str, bytes]]:
    """(label, bytes) of each upload; the label names the field, its index and the file name."""
    blobs = []
    for label, upload in files:
        blobs.append((f"{label} ({upload.filename!r})" if upload.filename else label, await upload.read()))
    return blobs
