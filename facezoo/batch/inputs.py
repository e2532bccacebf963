"""What the job reads: the image files under INPUT_DIR and, optionally, their faces' landmarks."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np

from facezoo.errors import FacezooError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp")


class JobInputError(FacezooError):
    """The input folder or the landmarks file cannot be used."""


def is_uri(location: str) -> bool:
    return "://" in str(location)


def root_key(location: str) -> str:
    """The input root as Ray Data spells file paths (absolute, or a URI without its scheme)."""
    text = str(location)
    if is_uri(text):
        return text.split("://", 1)[1].rstrip("/")
    return str(Path(text).resolve())


def relative_path(path: str, root: str) -> str:
    """`path` relative to the input root (POSIX), or as given when it lies elsewhere."""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def list_images(input_dir: str) -> list[str]:
    """Every image file under a local folder, sorted; a URI is left to Ray to list."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise JobInputError(f"{input_dir}: not a folder")
    found = sorted(str(p.resolve()) for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    if not found:
        raise JobInputError(f"{input_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) under it")
    return found


def read_landmarks(path: Path, root: str) -> dict[str, np.ndarray]:
    """{relative image path: F×5×2 float32} from JSON {path: [[x, y] × 5] per face}.

    Keys may be relative to INPUT_DIR or absolute paths under it; a single 5×2 entry is one face.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobInputError(f"{path}: cannot read landmarks JSON: {exc}") from None
    if not isinstance(document, dict):
        raise JobInputError(f"{path}: expected a JSON object {{image path: list of 5×2 points per face}}")
    faces: dict[str, np.ndarray] = {}
    for key, value in document.items():
        try:
            points = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise JobInputError(f"{path}: {key!r}: expected numbers, a list of 5×2 points per face") from None
        if points.shape == (5, 2):
            points = points[None]
        if points.ndim != 3 or points.shape[1:] != (5, 2):
            if points.size != 0:
                raise JobInputError(f"{path}: {key!r}: expected a list of 5×2 points per face, got shape {points.shape}")
            points = np.zeros((0, 5, 2), np.float32)
        name = relative_path(str(Path(key).resolve()) if Path(key).is_absolute() else key, root)
        faces[str(PurePosixPath(name))] = points
    return faces
