"""The face endpoints' input: multipart images (and landmarks) into the model's prepared batch.

Each image's declared size is read from its header first (at most ``--max-image-pixels``), then
it is decoded with OpenCV (BGR), at most DECODE_SLOTS at once in the whole server, so that memory
per request and in all is bounded; then it goes through the Embedder's checks: without landmarks
only aligned crops of the model's size pass (the raw-photo guard), with landmarks each face is
aligned first. Every refusal is a 4xx naming the form field.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
from starlette.datastructures import UploadFile

from facezoo.errors import FacezooError
from facezoo.serving.errors import BadRequest, Unprocessable
from facezoo.serving.limits import check_image_size, strict_json

MAX_FILES = 256
MAX_LANDMARKS_BYTES = 64 << 10  # 256 images × 5 points, written out generously
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # about 40 MP: a 7000×5700 photo; decoded BGR it takes 120 MB
DECODE_SLOTS = 2  # images decoded at once, over all requests: the peak is this many of the largest
_DECODING = threading.BoundedSemaphore(DECODE_SLOTS)


@dataclass
class FaceInput:
    """Decoded, checked faces ready for the batcher, with the labels errors use."""

    batch: np.ndarray  # float32 NCHW, the model's prepared input
    labels: list[str]
    faces: list = field(default_factory=list)  # photos: the face detected and used in each


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
    if len(raw) > MAX_LANDMARKS_BYTES:
        raise BadRequest(f"landmarks: {len(raw)} characters, more than the {MAX_LANDMARKS_BYTES} 5×2 points need")
    document = strict_json(raw, "landmarks", max_depth=3)
    try:
        points = np.asarray(document, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"landmarks: expected JSON, a list of 5×2 points per image: {exc}") from None
    if points.shape != (count, 5, 2):
        raise BadRequest(f"landmarks: expected shape ({count}, 5, 2), one 5×2 list per image, got {points.shape}")
    if not np.isfinite(points).all():
        raise BadRequest("landmarks: every coordinate must be a finite number")
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


def decode_image(data: bytes, label: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """BGR pixels of an upload whose header declares at most ``max_pixels`` (checked before decoding)."""
    if not data:
        raise BadRequest(f"{label}: empty file")
    check_image_size(data, label, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise BadRequest(f"{label}: cannot decode the image (not a format OpenCV reads, or corrupt)")
    return image


def prepare_faces(embedder, blobs: list[tuple[str, bytes]], landmarks: np.ndarray | None,
                  max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, detector=None) -> FaceInput:
    """Decode each image, align or check it, and stack the model's input batch (runs off the event
    loop). One image is decoded at a time, and each becomes its small crop before the next.

    With a ``detector`` (`facezoo serve --detector`) and no landmarks, each image is a photo: its
    largest face is found and aligned by its landmarks (none found: 422 naming the field)."""
    crops, labels, faces = [], [], []
    for index, (label, data) in enumerate(blobs):
        with _DECODING:
            image = decode_image(data, label, max_pixels)
            points = None if landmarks is None else landmarks[index:index + 1]
            if points is None and detector is not None:
                face = largest_face(detector, image, label.split(" (", 1)[0])  # the field, as clients name it
                faces.append(face)
                points = np.asarray(face.landmarks, np.float32)[None]
            try:
                crop = embedder.prepare([image], points)
            except FacezooError as exc:
                message = str(exc).removeprefix("image 0: ")
                raise BadRequest(f"{label}: {message}") from None
            del image
        crops.append(crop)
        labels.append(label)
    return FaceInput(embedder.model.prepare(np.concatenate(crops)), labels, faces)


def largest_face(detector, image: np.ndarray, label: str):
    """The largest face the detector finds in a photo; 422 naming ``label`` when there is none."""
    found = detector.detect(image)
    if not found:
        raise Unprocessable(f"no face found in {label}")
    return max(found, key=lambda face: face.area)


def detect_photos(detector, blobs: list[tuple[str, bytes]], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> list[dict]:
    """Each photo's faces (the JSON of `facezoo detect`); a photo without faces lists none."""
    photos = []
    for label, data in blobs:
        with _DECODING:
            image = decode_image(data, label, max_pixels)
            height, width = image.shape[:2]
            found = detector.detect(image)
            del image
        photos.append({"path": label, "width": int(width), "height": int(height),
                       "faces": [face.as_dict() for face in found]})
    return photos


async def read_blobs(files: list[tuple[str, UploadFile]]) -> list[tuple[str, bytes]]:
    """(label, bytes) of each upload; the label names the field, its index and the file name."""
    blobs = []
    for label, upload in files:
        blobs.append((f"{label} ({upload.filename!r})" if upload.filename else label, await upload.read()))
    return blobs
