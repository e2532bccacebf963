"""INT8 and BF16 folders beside an existing conversion, each gated and published whole.

Until the conversion pipeline makes these precisions itself, the benchmark suite (and anyone
with a converted FP32 folder) calls :func:`quantize_converted`. It reads the original model, as
`facezoo check` does, judges every candidate on held-out faces (`facezoo check`'s faces, never
calibration or tuning faces), writes a model card derived from the FP32 folder's, and moves a
folder into place only when everything in it passed. A folder that misses is not published.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.quantization.calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_TUNING_SIZE, calibration_inputs, tuning_set
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.folders import INT8_FORMATS, quantize_folder, write_bf16
from facezoo.quantization.gate import reference_gate, separating_threshold
from facezoo.quantization.ladder import LadderOptions
from facezoo.quantization.precisions import BF16, INT8, card_fields_for
from facezoo.registry import ModelSpec

GATE_FACES = 16  # held-out faces the gate judges on: check's faces (colour-asymmetric, then pairs)


@dataclass
class QuantizedFolders:
    """What quantize_converted did for one model (JSON-able through record())."""

    model: str
    int8: dict = field(default_factory=dict)
    bf16: dict = field(default_factory=dict)
    published: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"model": self.model, "int8": self.int8, "bf16": self.bf16, "published": self.published}


def quantize_converted(
    spec: ModelSpec,
    download_dir: Path,
    converted_dir: Path,
    precisions: tuple[str, ...] = (INT8, BF16),
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    calibration_images: Path | None = None,
    formats: tuple[str, ...] = INT8_FORMATS,
    options: LadderOptions | None = None,
    step: Callable[[str], None] = lambda _: None,
    tuning_size: int = DEFAULT_TUNING_SIZE,
    gate_faces: int = GATE_FACES,
) -> QuantizedFolders:
    from facezoo.accuracy.agreement import sample_faces
    from facezoo.converters.pipeline import ConversionRequest, open_source, publish_precisions
    from facezoo.preprocessing import to_model_input
    from facezoo.runtime.precision import bf16_problem

    name, size = spec.name, (spec.input.height, spec.input.width)
    order = spec.converted.channel_order
    fp32 = Path(converted_dir) / name / "FP32"
    if not (fp32 / "model_card.json").is_file():
        raise QuantizationError(f"{fp32}: no converted FP32 folder; run `facezoo convert {name}` first")
    step("loading the original model")
    source = open_source(ConversionRequest(spec, Path(download_dir), Path(converted_dir), [], []))
    faces = sample_faces(size, None, gate_faces)
    reference = np.asarray(source.reference(faces.images), np.float32)
    decision = separating_threshold(reference, faces.identities)
    inputs = to_model_input(faces.images, order)
    done = QuantizedFolders(name)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.quantize.", dir=Path(converted_dir) / name))
    try:
        ready = []
        if INT8 in precisions:
            threshold = spec.check_thresholds.get(INT8, 0.99)
            options = options or LadderOptions()
            options = LadderOptions(**{**options.__dict__, "target_cosine": threshold})
            gate = reference_gate(inputs, reference, min_cosine=threshold, decision_threshold=decision)
            step("calibration faces")
            calibration = calibration_inputs(size, order, calibration_size, calibration_images)
            tuning = tuning_set(size, order, source.reference, tuning_size)
            result = quantize_folder(name, fp32, scratch / INT8, calibration, tuning, gate, formats, options, step)
            done.int8 = {**result.record(), "gate_faces": faces.sources, "decision_threshold": decision}
            if result.passed:
                _write_card(fp32, scratch / INT8, INT8, {"quantization": done.int8})
                ready.append(INT8)
        if BF16 in precisions:
            problem = bf16_problem()
            if problem:
                done.bf16 = {"passed": False, "reason": f"not built: this CPU cannot run bf16 ({problem})"}
            else:
                threshold = spec.check_thresholds.get("FP16", 0.999)
                folder = scratch / BF16
                write_bf16(fp32 / f"{name}.xml", folder / f"{name}.xml")
                _write_card(fp32, folder, BF16, card_fields_for(BF16))  # before the gate: the runtime reads it
                gate = reference_gate(inputs, reference, min_cosine=threshold, decision_threshold=decision, precision=BF16)
                step("BF16 gate")
                verdict = gate(folder / f"{name}.xml")
                done.bf16 = {"passed": verdict.passed, "threshold": threshold, "verdict": verdict.as_dict()}
                if verdict.passed:
                    _write_card(fp32, folder, BF16, {**card_fields_for(BF16), "validation": [verdict.as_dict()]})
                    ready.append(BF16)
        if ready:
            publish_precisions(scratch, Path(converted_dir) / name, ready)
            done.published = ready
        return done
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_card(fp32: Path, folder: Path, precision: str, extra: dict) -> Path:
    """The FP32 folder's card with this folder's precision, files and results."""
    from facezoo.atomic import write_bytes_atomic
    from facezoo.converters.model_card import CARD_NAME, file_sha256

    card = json.loads((fp32 / CARD_NAME).read_text(encoding="utf-8"))
    card["precision"] = precision
    card["files"] = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                     for p in sorted(folder.iterdir()) if p.is_file() and p.name != CARD_NAME and not p.name.startswith(".")}
    card["validation"] = []
    card["derived_from"] = str(fp32)
    card.update(extra)
    return write_bytes_atomic(folder / CARD_NAME, (json.dumps(card, indent=2, default=_json_default) + "\n").encode())


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
