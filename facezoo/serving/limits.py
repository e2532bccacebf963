"""Bounds checked before anything is allocated for a request: JSON nesting, element counts,
declared image sizes, bytes buffered for requests in flight.

Each bound refuses with a 4xx (or a 503 for a busy server) naming the field; none lets a client's
numbers reach numpy, OpenCV or the allocator unchecked.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import threading

import numpy as np

from facezoo.serving.errors import BadRequest, PayloadTooLarge, Unavailable

MAX_JSON_DEPTH = 32  # a KServe tensor nested by dimension needs rank + 3; landmarks 3
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STEP = np.zeros(256, np.int8)  # +1 for [ and {, -1 for ] and }, 0 for every other byte
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def json_depth(data: bytes) -> int:
    """How deeply ``data`` nests arrays and objects (brackets inside strings do not count), in one
    vectorized pass: a parser is never asked to recurse into a body deeper than allowed."""
    step = _STEP[np.frombuffer(_STRING.sub(b'""', data) if b'"' in data else data, np.uint8)]
    brackets = step[step != 0]
    return int(np.cumsum(brackets, dtype=np.int64).max(initial=0))


def _no_constants(token: str):
    raise ValueError(f"{token} is not a JSON number (JSON has no NaN or Infinity)")


def strict_json(data: bytes | str, where: str, max_depth: int = MAX_JSON_DEPTH):
    """Parse JSON that nests at most ``max_depth`` deep and has no NaN/Infinity tokens."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = json_depth(raw)
    if depth > max_depth:
        raise BadRequest(f"{where}: JSON nested {depth} deep, more than the {max_depth} allowed")
    try:
        return json.loads(data, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"{where}: not valid JSON: {exc}") from None


def element_count(shape: list[int]) -> int:
    """The number of elements, in Python integers: a shape of huge dimensions cannot wrap around."""
    return math.prod(shape)


def require_finite(array: np.ndarray, where: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        index = int(np.flatnonzero(~np.isfinite(array.ravel()))[0])
        raise BadRequest(f"{where}: non-finite value (NaN or Inf) at flat index {index}; inputs must be finite")


#: The image formats the face endpoints take (Pillow's names), each also decoded by OpenCV.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")


def declared_pixels(data: bytes, label: str) -> tuple[int, int]:
    """Width and height the image's header declares, read by Pillow's format parsers without
    decoding a pixel (and without Pillow's own size guard, which this module replaces)."""
    from PIL import Image

    Image.init()
    prefix = data[:16]
    for name in IMAGE_FORMATS:
        factory, accept = Image.OPEN[name]
        if accept is not None and not accept(prefix):
            continue
        try:
            with factory(io.BytesIO(data), "") as image:
                return image.size
        except (SyntaxError, ValueError, OSError, EOFError, IndexError, TypeError, struct.error):
            continue
    raise BadRequest(f"{label}: not an image facezoo serve reads ({', '.join(IMAGE_FORMATS)})")


def check_image_size(data: bytes, label: str, max_pixels: int) -> None:
    width, height = declared_pixels(data, label)
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{label}: {width}×{height} pixels declared, more than --max-image-pixels {max_pixels}")


class Budget:
    """Bytes held for requests whose bodies are being read or parsed; over the bound, new ones get 503."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> None:
        with self._lock:
            if self.held + amount > self.limit:
                raise Unavailable(f"body: the server holds {self.held} bytes of requests in flight "
                                  f"(--max-pending-mb {self.limit / 2**20:g}); retry later")
            self.held += amount

    def give(self, amount: int) -> None:
        with self._lock:
            self.held -= amount


__all__ = ["Budget", "IMAGE_FORMATS", "MAX_JSON_DEPTH", "check_image_size", "declared_pixels", "element_count", "json_depth",
           "require_finite", "strict_json"]
