"""The converted formats: file suffix and the backends that run each. One table for all of facezoo.

The first backend of a format is the one that runs its files by default; every backend listed
must reproduce the original for an artifact to pass (the converter and `facezoo check` run each).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    backends: tuple[str, ...]  # the default first


_TABLE = (
    Format("mindir", ".mindir", ("mindspore",)),
    Format("onnx", ".onnx", ("onnxruntime", "openvino")),
    Format("openvino", ".xml", ("openvino",)),
)

FORMATS: tuple[str, ...] = tuple(f.name for f in _TABLE)
SUFFIX: dict[str, str] = {f.name: f.suffix for f in _TABLE}
FORMAT_FOR_SUFFIX: dict[str, str] = {f.suffix: f.name for f in _TABLE}
BACKENDS_FOR_FORMAT: dict[str, tuple[str, ...]] = {f.name: f.backends for f in _TABLE}
DEFAULT_BACKEND_FOR_SUFFIX: dict[str, str] = {f.suffix: f.backends[0] for f in _TABLE}
SUFFIXES_FOR_BACKEND: dict[str, tuple[str, ...]] = {
    backend: tuple(f.suffix for f in sorted(_TABLE, key=lambda f: f.backends.index(backend) if backend in f.backends else 9)
                   if backend in f.backends)
    for backend in dict.fromkeys(b for f in _TABLE for b in f.backends)
}

#: The format a zoo model name runs by default, best first (OpenVINO IR, then ONNX, then MINDIR).
PREFERRED: tuple[str, ...] = ("openvino", "onnx", "mindir")

__all__ = ["PREFERRED", "BACKENDS_FOR_FORMAT", "DEFAULT_BACKEND_FOR_SUFFIX", "FORMATS", "FORMAT_FOR_SUFFIX", "Format", "SUFFIX",
           "SUFFIXES_FOR_BACKEND"]
