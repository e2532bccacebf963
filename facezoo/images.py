"""Image files: which suffixes count as images, listing and reading them, and whom a file shows.

One place for the check's real faces, INT8 calibration folders, verification sets and the
runtime's ``read_image``; every error names the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facezoo.errors import FacezooError
from facezoo.preprocessing import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_TRAILING_NUMBER = re.compile(r"[_-]?\d+$")


def decode_image(data: bytes, where: str, error: type[FacezooError] = ImageError) -> np.ndarray:
    """BGR uint8 pixels of an encoded image; ``error`` (naming ``where``) if it does not decode."""
    import cv2

    array = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR) if array.size else None
    if image is None:
        raise error(f"{where}: not a decodable image ({len(data)} bytes)")
    return image


def read_image(path: str | Path, error: type[FacezooError] = ImageError) -> np.ndarray:
    """BGR uint8 pixels of an image file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read image: {exc.strerror or exc}") from None
    return decode_image(data, str(path), error)


def list_images(folder: str | Path, error: type[FacezooError] = ImageError) -> list[Path]:
    """Image files under `folder` (recursive), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise error(f"{folder}: not a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def identity_of(path: Path, folder: Path) -> str:
    """The person an image shows: its sub-folder, else the file name without a trailing number."""
    relative = Path(path).relative_to(folder)
    if len(relative.parts) > 1:
        return str(relative.parent)
    return _TRAILING_NUMBER.sub("", Path(path).stem) or Path(path).stem


__all__ = ["IMAGE_SUFFIXES", "decode_image", "identity_of", "list_images", "read_image"]
