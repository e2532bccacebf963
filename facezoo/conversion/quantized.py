"""INT8 and BF16 folders: the one path that builds, gates, validates and records them.

``facezoo convert --precisions …,INT8,BF16`` takes it right after the FP32 folder is made;
:func:`quantize_converted` takes it beside a conversion made earlier. Either way each candidate
is judged on held-out faces (`facezoo check`'s faces, never calibration or tuning faces), the
files that pass are validated like every artifact, and each folder gets its model card here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facezoo.conversion.request import QuantizationSettings
from facezoo.conversion.work import Work, publish_precisions
from facezoo.formats import SUFFIX
from facezoo.modelcard import read_card
from facezoo.quantization.build import HeldOutFaces, QuantizedBuild, build_bf16, build_int8, held_out_faces
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.folders import INT8_FORMATS
from facezoo.quantization.mindir import MINDIR_INT8_REASON
from facezoo.quantization.precisions import BF16, INT8, QUANTIZED_PRECISIONS
from facezoo.registry import ModelSpec
from facezoo.sources import open_source

#: The formats each quantized precision is made in (from the FP32 folder's files of that format).
FORMATS_FOR = {INT8: INT8_FORMATS, BF16: ("openvino",)}
NO_MINDIR = {INT8: MINDIR_INT8_REASON, BF16: "bf16 is an OpenVINO inference setting"}


def quantized_formats(precision: str, formats: list[str]) -> list[str]:
    return [f for f in formats if f in FORMATS_FOR[precision]]


def build_precisions(work: Work, precisions: list[str], fp32: Path) -> dict[str, QuantizedBuild]:
    """Each of ``precisions`` (INT8, BF16) into ``work.scratch/<precision>`` from the FP32 folder ``fp32``."""
    if work.parts != ("",):
        return _build_nets(work, precisions, fp32)
    built: dict[str, QuantizedBuild] = {}
    held: HeldOutFaces | None = None
    for precision in precisions:
        folder = work.scratch / precision
        folder.mkdir()
        formats = quantized_formats(precision, work.formats)
        if "mindir" in work.formats:
            work.notes.append(f"no {precision} MINDIR: {NO_MINDIR[precision]}")
        blocked = ("the FP32 artifacts it is made from failed" if work.failed("FP32") else
                   "" if formats else f"{precision} is made for {'/'.join(FORMATS_FOR[precision])}, none of which "
                   "was asked for in --formats")
        if blocked:
            work.fail(folder / work.spec.name, "-", precision, blocked)
            continue
        if held is None:
            work.step("running the original model on held-out faces")
            held = held_out_faces(work.spec, work.task, work.source.reference, work.settings.gate_faces)
        build = _build(work, precision, held, fp32, folder, formats)
        built[precision] = build
        judged_on = build.card.get("quantization", {}).get("judged_on")
        if judged_on:
            work.notes.append(f"{precision} {judged_on}")
        if not build.passed:
            work.fail(folder / work.spec.name, "/".join(formats), precision, build.reason, len(held.inputs))
        for name in build.files:
            path = folder / name
            fmt = next((f for f in formats if SUFFIX[f] == path.suffix), None)
            if fmt is not None:
                work.validate(path, fmt, precision)
        work.write_card(precision, derived_from="FP32", **build.card)
    missed = {p: {"reason": b.reason, **b.card} for p, b in built.items() if not b.passed}
    if missed and Path(fp32) == work.scratch / "FP32":  # the FP32 folder published with them says why they are not
        work.write_card("FP32", not_published=missed)
    return built


def _build(work: Work, precision: str, held: HeldOutFaces, fp32: Path, folder: Path, formats: list[str]) -> QuantizedBuild:
    settings, threshold = work.settings, work.thresholds[precision]
    if precision == INT8:
        return build_int8(work.spec, work.task, work.source.reference, held, fp32, folder, threshold=threshold,
                          formats=tuple(formats), calibration_size=settings.calibration_size,
                          calibration_images=settings.calibration_images, options=settings.ladder,
                          tuning_size=settings.tuning_size, step=work.step)
    return build_bf16(work.spec, work.task, held, fp32, folder, threshold=threshold,
                      write_card=lambda fields: work.write_card(precision, derived_from="FP32", **fields), step=work.step)


def _build_nets(work: Work, precisions: list[str], fp32: Path) -> dict[str, QuantizedBuild]:
    """INT8 of a model of several nets (a detector): each net quantized with calibration inputs the
    original records on calibration photos, then every file validated (each net, and the whole model
    on the task's photos) like any artifact. BF16 is not made for such models."""
    from facezoo.quantization.nets import calibration_photos, quantize_net, record_inputs

    built: dict[str, QuantizedBuild] = {}
    for precision in precisions:
        folder = work.scratch / precision
        folder.mkdir()
        if precision != INT8:
            work.fail(folder / work.spec.name, "-", precision, f"{precision} is not made for a model of several nets")
            continue
        formats = quantized_formats(precision, work.formats)
        if "mindir" in work.formats:
            work.notes.append(f"no {precision} MINDIR: {NO_MINDIR[precision]}")
        if work.failed("FP32") or not formats:
            work.fail(folder / work.spec.name, "-", precision, "the FP32 artifacts it is made from failed"
                      if work.failed("FP32") else f"INT8 is made for {'/'.join(FORMATS_FOR[precision])}")
            continue
        work.step("recording each net's calibration inputs")
        recorded = record_inputs(lambda photo, run: work.task.decode(work.spec, photo, run), work.source.run_part,
                                 calibration_photos())
        files = []
        for fmt in formats:
            paths = {}
            for part in work.parts:
                work.step(f"INT8 {fmt} {part}")
                name = work.stem(part) + SUFFIX[fmt]
                try:
                    quantize_net(fp32 / name, recorded.get(part, []), folder / name)
                except QuantizationError as exc:
                    work.fail(folder / name, fmt, precision, str(exc))
                    continue
                work.validate(folder / name, fmt, precision, part)
                paths[part] = folder / name
                files.append(name)
            if len(paths) == len(work.parts):
                work.validate_model(paths, fmt, precision)
        calibration = {part: len(inputs) for part, inputs in recorded.items()}
        record = {"method": "NNCF post-training quantization per net", "calibration_inputs": calibration,
                  "calibration_photos": len(calibration_photos())}
        work.write_card(precision, derived_from="FP32", quantization=record)
        built[precision] = QuantizedBuild(precision, passed=not work.failed(precision), files=files,
                                          card={"quantization": record})
    return built


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
    precisions: tuple[str, ...] = QUANTIZED_PRECISIONS,
    settings: QuantizationSettings = QuantizationSettings(),
    formats: tuple[str, ...] = INT8_FORMATS,
    step: Callable[[str], None] = lambda _: None,
) -> QuantizedFolders:
    """INT8 and BF16 folders beside an existing converted FP32 folder, each published whole when it passed."""
    name = spec.name
    fp32 = Path(converted_dir) / name / "FP32"
    card = read_card(fp32)
    if card is None:
        raise QuantizationError(f"{fp32}: no converted FP32 folder; run `facezoo convert {name}` first")
    step("loading the original model")
    source = open_source(spec, Path(download_dir) / name, card.original_path)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.quantize.", dir=Path(converted_dir) / name))
    try:
        work = Work(spec, source, scratch, list(formats), step, settings, card.source.get("original"))
        built = build_precisions(work, [p for p in QUANTIZED_PRECISIONS if p in precisions], fp32)
        done = QuantizedFolders(name)
        if INT8 in built:
            done.int8 = built[INT8].card.get("quantization", {})
        if BF16 in built:
            done.bf16 = {"passed": built[BF16].passed, "reason": built[BF16].reason, **built[BF16].card}
        ready = [p for p in built if built[p].passed and not work.failed(p)]
        if ready:
            publish_precisions(scratch, Path(converted_dir) / name, ready)
            done.published = ready
        return done
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["FORMATS_FOR", "QuantizedFolders", "build_precisions", "quantize_converted", "quantized_formats"]
