"""The conversion layer: drives a source (facezoo.sources) and the graph tools (facezoo.converters)
into validated MINDIR, ONNX and OpenVINO IR folders, INT8/BF16 included, and publishes them.

    from facezoo.conversion import ConversionRequest, convert_model
    result = convert_model(ConversionRequest(spec, Path("models"), Path("converted"), ["onnx"], ["FP32"]))
"""

from facezoo.conversion.pipeline import convert_model, plan
from facezoo.conversion.quantized import QuantizedFolders, quantize_converted
from facezoo.conversion.request import ConversionRequest, ConversionResult, QuantizationSettings
from facezoo.conversion.work import publish_precisions

__all__ = ["ConversionRequest", "ConversionResult", "QuantizationSettings", "QuantizedFolders", "convert_model",
           "plan", "publish_precisions", "quantize_converted"]
