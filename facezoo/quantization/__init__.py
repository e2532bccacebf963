"""INT8 and BF16 for converted face embedders, refused when they no longer match the original.

    from facezoo.quantization import calibration_inputs, tuning_set, reference_gate, quantize_folder
    calibration = calibration_inputs((112, 112), "BGR", count=300)          # synthetic faces 20000+
    result = quantize_folder(name, fp32_dir, scratch / "INT8", calibration, tuning, gate)
    result.passed, result.summary(), result.record()                      # which ladder step passed

Folders are built and published by facezoo.conversion (`facezoo convert --precisions …,INT8,BF16`,
or ``facezoo.conversion.quantize_converted`` beside an existing conversion). Names are imported
lazily: `import facezoo.quantization` loads neither NNCF nor OpenVINO.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build": ("GATE_FACES", "HeldOutFaces", "QuantizedBuild", "build_bf16", "build_int8", "held_out_faces"),
    "calibration": ("CALIBRATION_IDENTITY", "DEFAULT_CALIBRATION_SIZE", "TUNING_IDENTITY", "CalibrationSet",
                    "TuningSet", "calibration_inputs", "ensure_disjoint", "synthetic_ranges", "tuning_faces",
                    "tuning_set"),
    "errors": ("QuantizationError",),
    "folders": ("INT8_FORMATS", "Int8Result", "quantize_folder", "write_bf16"),
    "gate": ("Judge", "reference_gate"),
    "ladder": ("STEPS", "Candidate", "LadderOptions", "LadderResult", "run_ladder"),
    "mindir": ("MINDIR_INT8_REASON", "MINDIR_INT8_SUPPORTED"),
    "precisions": ("BF16", "INT8", "QUANTIZED_PRECISIONS", "RUNTIME_CONFIG", "card_fields_for", "runtime_config_for"),
    "recipes": ("Recipe",),
    "scopes": ("FieldScope", "field_scope"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'facezoo.quantization' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"facezoo.quantization.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
