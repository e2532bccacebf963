"""ONNX → OpenVINO IR, with the precision always explicit."""

from __future__ import annotations

from pathlib import Path

from facezoo.errors import ConversionError


def export_ir(onnx_path: Path, xml_path: Path, precision: str) -> None:
    """FP32 keeps FP32 weights; FP16 stores weights compressed to FP16 (decompressed at load)."""
    import openvino as ov

    if precision not in ("FP32", "FP16"):
        raise ConversionError(f"{xml_path.name}: OpenVINO IR precision must be FP32 or FP16, not {precision!r}")
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpenVINO raises OpConversionFailure and friends
        raise ConversionError(f"{onnx_path.name}: OpenVINO cannot convert the ONNX graph: {exc}") from None
    model.set_rt_info("facezoo", ["framework", "name"])
    model.set_rt_info(precision, ["facezoo", "precision"])
    ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "FP16"))
