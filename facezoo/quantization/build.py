"""INT8 and BF16 folder contents, built from an FP32 folder and judged on held-out faces.

The conversion layer (:mod:`facezoo.conversion.quantized`: ``facezoo convert --precisions
…,INT8,BF16`` and ``quantize_converted`` alike) builds through these functions; nothing here
writes a model card or publishes a folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.photos import real_face_crops
from facezoo.preprocessing import to_model_input
from facezoo.quantization.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    DEFAULT_SET_NOTE,
    DEFAULT_TUNING_SIZE,
    REAL_CROP_SEEDS,
    calibration_inputs,
    tuning_set,
)
from facezoo.quantization.folders import INT8_FORMATS, quantize_folder, write_bf16
from facezoo.quantization.gate import reference_gate
from facezoo.quantization.ladder import LadderOptions, default_budget_s
from facezoo.quantization.mindir import MINDIR_INT8_REASON
from facezoo.quantization.precisions import BF16, BF16_GATE_FIELD, INT8, card_fields_for
from facezoo.registry import ModelSpec
from facezoo.runtime.precision import bf16_problem
from facezoo.tasks import DecisionRule, Outputs, Samples, Task

GATE_FACES = 16  # held-out faces the gate judges on: check's faces (colour-asymmetric, then pairs)
GATE_REAL_CROPS = 8  # and crops of the real photo, another person to the generated ones (see calibration)
REAL_IDENTITY = "astronaut"


@dataclass(frozen=True)
class HeldOutFaces:
    """The faces INT8 and BF16 candidates are judged on, with the original model's outputs."""

    inputs: np.ndarray = field(repr=False)  # N×C×H×W float32, the converted contract
    reference: Outputs = field(repr=False)  # the ORIGINAL model's outputs, by name
    rule: DecisionRule
    sources: list[str]

    @property
    def decision_threshold(self) -> float:
        return self.rule.threshold


@dataclass
class QuantizedBuild:
    """What went into one INT8 or BF16 folder, and whether it may be published."""

    precision: str
    passed: bool
    files: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)  # model-card fields: the quantization record, the bf16 hint and gate
    reason: str = ""


def held_out_faces(spec: ModelSpec, task: Task, original: Callable[[np.ndarray], Outputs],
                   count: int = GATE_FACES, real_crops: int = GATE_REAL_CROPS) -> HeldOutFaces:
    """`facezoo check`'s generated faces and ``real_crops`` crops of the real photo (never
    calibration or tuning faces), and the original's outputs.

    The decision threshold is the one that best separates the original's own outputs on the
    generated faces, not the registry's (that one is set for real faces); decisions are judged over
    their pairs, and the real crops (one person, no stranger of real pixels to tell apart) on
    closeness alone.
    """
    size = (spec.input.height, spec.input.width)
    generated = task.samples(size, None, count)
    samples = generated
    if real_crops:
        crops = real_face_crops(size, real_crops, REAL_CROP_SEEDS["gate"])
        samples = Samples(np.concatenate([generated.images, crops]), [*generated.identities, *[REAL_IDENTITY] * real_crops],
                          [*generated.sources, *[f"astronaut crop {k} (seed {REAL_CROP_SEEDS['gate']})"
                                                 for k in range(real_crops)]], generated.real)
    reference = {name: np.asarray(values, np.float32) for name, values in original(samples.images).items()}
    decided = len(generated.images)
    rule = task.decision_rule(spec, {name: values[:decided] for name, values in reference.items()}, generated,
                              from_registry=False)
    return HeldOutFaces(
        inputs=to_model_input(samples.images, spec.converted.channel_order),
        reference=reference,
        rule=dataclasses.replace(rule, decided_samples=decided),
        sources=samples.sources,
    )


def build_int8(
    spec: ModelSpec,
    task: Task,
    original: Callable[[np.ndarray], Outputs],
    held: HeldOutFaces,
    fp32_folder: Path,
    folder: Path,
    *,
    threshold: float,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    calibration_images: Path | None = None,
    formats: tuple[str, ...] = INT8_FORMATS,
    options: LadderOptions | None = None,
    tuning_size: int = DEFAULT_TUNING_SIZE,
    step: Callable[[str], None] = lambda _: None,
) -> QuantizedBuild:
    """INT8 IR and/or QDQ ONNX from the FP32 files, through the gated ladder, within
    ``options.budget_s`` (default: :func:`~facezoo.quantization.ladder.default_budget_s` of the model)."""
    size, order = (spec.input.height, spec.input.width), spec.converted.channel_order
    options = options or LadderOptions()
    budget = options.budget_s if options.budget_s is not None else default_budget_s(spec.gflops)
    options = LadderOptions(**{**options.__dict__, "target_cosine": threshold, "budget_s": budget})
    gate = reference_gate(held.inputs, held.reference, task=task, min_cosine=threshold, rule=held.rule)
    step("INT8 calibration faces")
    calibration = calibration_inputs(size, order, calibration_size, calibration_images)
    tuning = tuning_set(size, order, lambda images: _one_output(original(images)), tuning_size)
    result = quantize_folder(spec.name, fp32_folder, folder, calibration, tuning, gate, formats, options, step)
    record = {**result.record(), "gate_faces": held.sources, "decision_threshold": held.decision_threshold}
    if calibration.kind == "synthetic":
        record["judged_on"] = DEFAULT_SET_NOTE
    spent = any(ladder.out_of_budget for ladder in result.ladders)
    reason = "" if result.passed else (f"INT8 missed the gate at every step "
                                       f"{'tried within its budget (--int8-budget-s)' if spent else 'of the ladder'}: "
                                       f"{result.summary()}")
    files = [Path(f).name for f in result.files] if result.passed else []
    return QuantizedBuild(INT8, result.passed, files, {"quantization": record, "mindir": MINDIR_INT8_REASON}, reason)


def build_bf16(spec: ModelSpec, task: Task, held: HeldOutFaces, fp32_folder: Path, folder: Path, *, threshold: float,
               write_card: Callable[[dict], None], step: Callable[[str], None] = lambda _: None) -> QuantizedBuild:
    """The FP32 IR run in bfloat16, judged like FP16; refused on a CPU without bf16 units.

    ``write_card(fields)`` writes the folder's model card: the runtime reads the bf16 hint from it,
    so it exists before the gate runs the file.
    """
    problem = bf16_problem()
    if problem:
        return QuantizedBuild(BF16, False, reason=f"not built: this CPU cannot run bf16 ({problem})")
    xml = write_bf16(Path(fp32_folder) / f"{spec.name}.xml", Path(folder) / f"{spec.name}.xml")
    fields = card_fields_for(BF16)
    write_card(fields)
    gate = reference_gate(held.inputs, held.reference, task=task, min_cosine=threshold, rule=held.rule,
                          precision=BF16)
    step("BF16 gate")
    verdict = gate(xml).verdict()
    card = {**fields, BF16_GATE_FIELD: {"threshold": threshold, **verdict}}
    return QuantizedBuild(BF16, verdict["passed"], [xml.name, xml.with_suffix(".bin").name], card,
                          "" if verdict["passed"] else f"BF16 missed the gate: {verdict['reason']}")


def _one_output(outputs: Outputs) -> np.ndarray:
    """NNCF's accuracy control tunes on one output: the model's only one."""
    (values,) = outputs.values()
    return values


__all__ = ["GATE_FACES", "HeldOutFaces", "QuantizedBuild", "build_bf16", "build_int8", "held_out_faces"]
