"""ONNX files as conversion sources (``framework: onnx``)."""

from facezoo.sources.onnx.source import OnnxSource, load_onnx

__all__ = ["OnnxSource", "load_onnx"]
