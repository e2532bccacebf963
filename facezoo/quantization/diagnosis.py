"""``facezoo check --int8-report``: the per-layer report of a zoo model's converted INT8 files,
on the gate's own held-out faces, against the original network."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from facezoo.accuracy.agreement import original_outputs
from facezoo.modelcard import read_card
from facezoo.quantization.build import held_out_faces
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.precisions import INT8
from facezoo.quantization.report import Int8Report, quantizer_report
from facezoo.registry import ModelSpec
from facezoo.runtime.resolve import find_artifacts
from facezoo.tasks import task_for


def int8_reports(spec: ModelSpec, download_dir: Path, converted_dir: Path, formats: list[str] | None = None,
                 original: Path | None = None, step: Callable[[str], None] = lambda _: None) -> list[Int8Report]:
    """One report per converted INT8 file of ``spec``; a QuantizationError saying what to do where
    there is none (and, where INT8 was tried and not published, what the FP32 card records)."""
    task = task_for(spec)
    if task.parts(spec) != ("",):
        raise QuantizationError(f"--int8-report: {spec.name} is a model of several nets ({spec.task_type}); "
                                "the per-quantizer report is for models of one net")
    artifacts = [a for a in find_artifacts(spec.name, Path(converted_dir), formats, [INT8]) if a.format != "mindir"]
    if not artifacts:
        card = read_card(Path(converted_dir) / spec.name / "FP32")
        missed = ((card.not_published or {}).get(INT8) if card is not None else None) or {}
        recorded = missed.get("quantization", {}).get("ladders", [])
        hint = (f"; INT8 was tried and not published: {missed.get('reason', '')} (the FP32 model card's "
                f"not_published.INT8 keeps each ladder's noisiest quantizers)" if missed else
                f"; run `facezoo convert {spec.name} --precisions FP32,INT8 -o {converted_dir}`")
        raise QuantizationError(f"--int8-report: no INT8 IR or ONNX of {spec.name} under "
                                f"{Path(converted_dir) / spec.name / INT8}{hint}"
                                + (f" ({len(recorded)} ladder record(s))" if recorded else ""))
    step("running the original model on the gate's held-out faces")
    held = held_out_faces(spec, task, lambda images: original_outputs(spec, download_dir, images, original))
    (reference,) = held.reference.values()
    reports = []
    for artifact in artifacts:
        step(f"INT8 report: {artifact.path.name}")
        reports.append(quantizer_report(artifact.path, held.inputs, reference))
    return reports


__all__ = ["int8_reports"]
