"""Errors of facezoo.quantization."""

from facezoo.errors import ConversionError


class QuantizationError(ConversionError):
    """Quantization cannot run: bad calibration input, an unusable graph, a bad option."""
