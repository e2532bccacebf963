"""INT8 and BF16 folder contents, built from an FP32 folder and judged on held-out faces.

The conversion pipeline (``facezoo convert --precisions …,INT8,BF16``) and
:func:`facezoo.quantization.quantize_converted` (an existing conversion) both build through
these functions; neither publishes anything here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.quantization.calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_TUNING_SIZE, calibration_inputs, tuning_set
from facezoo.quantization.folders import INT8_FORMATS, quantize_folder, write_bf16
from facezoo.quantization.gate import GateVerdict, reference_gate, separating_threshold
from facezoo.quantization.ladder import LadderOptions
from facezoo.quantization.mindir import MINDIR_INT8_REASON
from facezoo.quantization.precisions import BF16, BF16_GATE_FIELD, INT8, card_fields_for
from facezoo.registry import ModelSpec

GATE_FACES = 16  # held-out faces the gate judges on: check's faces (colour-asymmetric, then pairs)


@dataclass(frozen=True)
class HeldOutFaces:
    """The faces INT8 and BF16 candidates are judged on, with the original model's outputs."""

    inputs: np.ndarray = field(repr=False)  # N×C×H×W float32, the converted contract
    reference: np.ndarray = field(repr=False)  # N×D, the ORIGINAL model
    decision_threshold: float
    sources: list[str]


@dataclass
class QuantizedBuild:
    """What went into one INT8 or BF16 folder, and whether it may be published."""

    precision: str
    passed: bool
    files: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)  # model-card fields: the quantization record, the bf16 hint
    reason: str = ""


def held_out_faces(spec: ModelSpec, original: Callable[[np.ndarray], np.ndarray], count: int = GATE_FACES) -> HeldOutFaces:
    """`facezoo check`'s generated faces (never calibration or tuning faces) and the original's outputs."""
    from facezoo.accuracy.agreement import sample_faces
    from facezoo.preprocessing import to_model_input

    faces = sample_faces((spec.input.height, spec.input.width), None, count)
    reference = np.asarray(original(faces.images), np.float32)
    return HeldOutFaces(
        inputs=to_model_input(faces.images, spec.converted.channel_order),
        reference=reference,
        decision_threshold=separating_threshold(reference, faces.identities),
        sources=faces.sources,
    )


def build_int8(
    spec: ModelSpec,
    original: Callable[[np.ndarray], np.ndarray],
    held: HeldOutFaces,
    fp32_folder: Path,
    folder: Path,
    *,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    calibration_images: Path | None = None,
    formats: tuple[str, ...] = INT8_FORMATS,
    options: LadderOptions | None = None,
    tuning_size: int = DEFAULT_TUNING_SIZE,
    step: Callable[[str], None] = lambda _: None,
) -> QuantizedBuild:
    """INT8 IR and/or QDQ ONNX from the FP32 files, through the gated ladder."""
    size, order = (spec.input.height, spec.input.width), spec.converted.channel_order
    threshold = spec.thresholds()[INT8]
    options = options or LadderOptions()
    options = LadderOptions(**{**options.__dict__, "target_cosine": threshold})
    gate = reference_gate(held.inputs, held.reference, min_cosine=threshold, decision_threshold=held.decision_threshold)
    step("INT8 calibration faces")
    calibration = calibration_inputs(size, order, calibration_size, calibration_images)
    tuning = tuning_set(size, order, original, tuning_size)
    result = quantize_folder(spec.name, fp32_folder, folder, calibration, tuning, gate, formats, options, step)
    record = {**result.record(), "gate_faces": held.sources, "decision_threshold": held.decision_threshold}
    reason = "" if result.passed else f"INT8 missed the gate at every step of the ladder: {result.summary()}"
    files = [Path(f).name for f in result.files] if result.passed else []
    return QuantizedBuild(INT8, result.passed, files, {"quantization": record, "mindir": MINDIR_INT8_REASON}, reason)


def build_bf16(spec: ModelSpec, held: HeldOutFaces, fp32_folder: Path, folder: Path,
               write_card: Callable[[Path, dict], None], step: Callable[[str], None] = lambda _: None) -> QuantizedBuild:
    """The FP32 IR run in bfloat16, judged like FP16; refused on a CPU without bf16 units.

    ``write_card(folder, fields)`` writes the folder's model card: the runtime reads the bf16 hint
    from it, so it exists before the gate runs the file.
    """
    from facezoo.runtime.precision import bf16_problem

    problem = bf16_problem()
    if problem:
        return QuantizedBuild(BF16, False, reason=f"not built: this CPU cannot run bf16 ({problem})")
    xml = write_bf16(Path(fp32_folder) / f"{spec.name}.xml", Path(folder) / f"{spec.name}.xml")
    fields = card_fields_for(BF16)
    write_card(folder, fields)
    threshold = spec.thresholds()[BF16]
    gate = reference_gate(held.inputs, held.reference, min_cosine=threshold,
                          decision_threshold=held.decision_threshold, precision=BF16)
    step("BF16 gate")
    verdict: GateVerdict = gate(xml)
    card = {**fields, BF16_GATE_FIELD: {"threshold": threshold, **verdict.as_dict()}}
    return QuantizedBuild(BF16, verdict.passed, [xml.name, xml.with_suffix(".bin").name], card,
                          "" if verdict.passed else f"BF16 missed the gate: {verdict.reason}")


__all__ = ["GATE_FACES", "HeldOutFaces", "QuantizedBuild", "build_bf16", "build_int8", "held_out_faces"]
