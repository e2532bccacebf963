"""The two precisions facezoo.quantization adds, and what each asks of the runtime.

INT8 folders hold quantized files that need nothing special at load time. BF16 folders hold an
FP32 IR that OpenVINO is asked to run in bfloat16; the model card carries that request.
"""

from __future__ import annotations

INT8 = "INT8"
BF16 = "BF16"
QUANTIZED_PRECISIONS = (INT8, BF16)  # the registry's precisions that are made from the FP32 artifacts
BF16_GATE_FIELD = "bf16_gate"  # where a BF16 card (and the suite's record) keeps its gate's verdict

#: OpenVINO compile properties each precision folder is meant to be run with.
RUNTIME_CONFIG: dict[str, dict[str, str]] = {
    "FP32": {"INFERENCE_PRECISION_HINT": "f32"},
    "FP16": {"INFERENCE_PRECISION_HINT": "f32"},
    INT8: {},
    BF16: {"INFERENCE_PRECISION_HINT": "bf16"},
}


def runtime_config_for(precision: str) -> dict[str, str]:
    """OpenVINO properties for a precision folder, e.g. BF16 → {"INFERENCE_PRECISION_HINT": "bf16"}."""
    from facezoo.quantization.errors import QuantizationError

    if precision not in RUNTIME_CONFIG:
        raise QuantizationError(f"unknown precision {precision!r}; expected one of {', '.join(RUNTIME_CONFIG)}")
    return dict(RUNTIME_CONFIG[precision])


def card_fields_for(precision: str) -> dict[str, str]:
    """Model-card fields the runtime reads for a precision folder (BF16: its inference precision hint)."""
    hint = runtime_config_for(precision).get("INFERENCE_PRECISION_HINT")
    return {"inference_precision_hint": hint} if precision == BF16 and hint else {}
