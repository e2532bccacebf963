"""ONNX files as conversion sources (``framework: onnx``).

One graph with an embedding (:class:`OnnxSource`), or the nets of a detector with their raw heads
(:class:`OnnxDetectorSource`, for an entry with ``parts``): the entry's shape picks the source.
"""

from pathlib import Path

from facezoo.registry import ModelSpec
from facezoo.sources import register_source
from facezoo.sources.onnx.detector import OnnxDetectorSource, detector_files
from facezoo.sources.onnx.source import OnnxSource, load_onnx, onnx_file


def source_files(spec: ModelSpec, folder: Path, override: Path | None) -> list[Path]:
    return (detector_files if spec.parts else onnx_file)(spec, folder, override)


@register_source("onnx", files=source_files, standin_writer="facezoo.sources.onnx.standin:write_standin")
def open_onnx(spec: ModelSpec, *paths: Path):
    """The source of an ONNX entry: a detector's nets when it has parts, else one graph."""
    return (OnnxDetectorSource if spec.parts else OnnxSource)(spec, *paths)


__all__ = ["OnnxDetectorSource", "OnnxSource", "load_onnx", "open_onnx", "source_files"]
