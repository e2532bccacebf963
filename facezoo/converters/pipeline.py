"""Convert one registry model into every requested format and precision, validated.

Artifacts are built in a temporary folder beside the output. Each precision folder is moved
into place only when every artifact in it passed validation; a precision that fails is reported
with its numbers and leaves the earlier folder of that precision (if any) untouched, while the
precisions that passed are published.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.converters.model_card import write_model_card
from facezoo.converters.validation import ArtifactCheck, check_artifact
from facezoo.errors import ConversionError, FacezooError
from facezoo.quantization.precisions import QUANTIZED_PRECISIONS
from facezoo.formats import BACKENDS_FOR_FORMAT, SUFFIX
from facezoo.registry import FORMATS, PRECISIONS, ModelSpec

PROBE_COUNT = 4  # synthetic faces, one of them colour-asymmetric (faces.probe_images)


@dataclass(frozen=True)
class QuantizationSettings:
    """How INT8 is calibrated: the user's aligned crops, or facezoo's synthetic faces."""

    calibration_images: Path | None = None
    calibration_size: int = 300  # NNCF's default subset size
    ladder: object | None = None  # facezoo.quantization.LadderOptions; None: every step, defaults


@dataclass
class ConversionRequest:
    spec: ModelSpec
    download_dir: Path
    output_dir: Path
    formats: list[str]
    precisions: list[str]
    checkpoint: Path | None = None  # the original file to use instead of the downloaded one
    original: dict | None = None  # recorded in the model card: where the original lives (no download folder)
    quantization: QuantizationSettings = field(default_factory=lambda: QuantizationSettings())


@dataclass
class ConversionResult:
    model: str
    passed: bool  # every requested precision passed (and was published)
    folder: str = ""  # where the published precisions are ("" when none was)
    artifacts: list[str] = field(default_factory=list)
    checks: list[ArtifactCheck] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # precisions moved into place
    failed_precisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was deliberately not made, and why
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    error: str = ""


def plan(request: ConversionRequest) -> list[str]:
    """The steps a conversion would take, for --dry-run."""
    spec = request.spec
    steps = [f"load {spec.framework} source {', '.join(str(p) for p in source_paths(request))}"]
    for precision in request.precisions:
        folder = request.output_dir / spec.name / precision
        if precision in QUANTIZED_PRECISIONS:
            formats = [f for f in request.formats if f in (("openvino", "onnx") if precision == "INT8" else ("openvino",))]
            how = ("quantize the FP32 files with NNCF (gated ladder)" if precision == "INT8"
                   else "the FP32 IR, run in bfloat16")
            for fmt in formats:
                steps.append(f"{how}: {fmt} → {folder / (spec.name + SUFFIX[fmt])}")
            steps.append(f"gate against the original on held-out faces; write {folder / 'model_card.json'}")
            continue
        for fmt in request.formats:
            steps.append(f"export {fmt} {precision} → {folder / (spec.name + SUFFIX[fmt])}")
        steps.append(f"validate against the original on {PROBE_COUNT} probe faces; write {folder / 'model_card.json'}")
    return steps


def source_paths(request: ConversionRequest) -> list[Path]:
    """The original's files: in the download folder, or the one the request names instead."""
    from facezoo.sources import source_paths as paths

    return paths(request.spec, request.download_dir / request.spec.name, request.checkpoint)


def open_source(request: ConversionRequest):
    from facezoo.sources import open_source as opened

    return opened(request.spec, request.download_dir / request.spec.name, request.checkpoint)


@dataclass
class _Work:
    """What one conversion shares between its steps."""

    request: ConversionRequest
    source: object
    scratch: Path
    inputs: np.ndarray  # probe faces in the converted contract
    reference: np.ndarray  # the original model's outputs for them
    onnx_fp32: Path
    step: Callable[[str], None]
    checks: list[ArtifactCheck] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> ModelSpec:
        return self.request.spec

    def failed(self, precision: str) -> bool:
        return any(not c.passed for c in self.checks if c.precision == precision)


def convert_model(request: ConversionRequest, step: Callable[[str], None] = lambda _: None) -> ConversionResult:
    """Convert and validate one model; never leaves a partial result under the final name."""
    spec = request.spec
    started = time.perf_counter()
    _check_request(request)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=request.output_dir))
    try:
        step("loading the original model")
        source = open_source(request)
        from facezoo.faces import probe_images
        from facezoo.preprocessing import to_model_input

        probes = probe_images(PROBE_COUNT, (spec.input.height, spec.input.width))
        step("running the original model")
        reference = source.reference(probes)
        inputs = np.ascontiguousarray(to_model_input(probes, spec.converted.channel_order), np.float32)
        work = _Work(request, source, scratch, inputs, reference, scratch / "fp32-source.onnx", step)
        if any(f in request.formats for f in ("onnx", "openvino")):
            step("exporting ONNX")
            source.export_onnx(work.onnx_fp32)
        quantized = [p for p in request.precisions if p in QUANTIZED_PRECISIONS]
        floats = [p for p in request.precisions if p not in QUANTIZED_PRECISIONS]
        if quantized and "FP32" not in floats:
            floats.insert(0, "FP32")  # INT8 and BF16 are made from the FP32 artifacts
        for precision in floats:
            _float_precision(work, precision)
        if quantized:
            _quantized_precisions(work, quantized)
        return _publish(work, started)
    except FacezooError as exc:
        return ConversionResult(model=spec.name, passed=False, error=str(exc), seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _validate(work: _Work, path: Path, fmt: str, precision: str) -> None:
    """Every backend that runs the format, against the original, by the precision's gate."""
    spec = work.spec
    for backend in BACKENDS_FOR_FORMAT[fmt]:
        work.step(f"validating {fmt} {precision} with {backend}")
        try:
            work.checks.append(check_artifact(path, fmt=fmt, precision=precision, backend_name=backend,
                                              inputs=work.inputs, reference=work.reference,
                                              threshold=work.thresholds[precision]))
        except FacezooError as exc:
            work.checks.append(failed_check(path, fmt, precision, backend, len(work.inputs), spec, f"cannot run: {exc}"))


def _float_precision(work: _Work, precision: str) -> None:
    """FP32 or FP16: every requested format exported by the source and validated."""
    spec = work.spec
    folder = work.scratch / precision
    folder.mkdir()
    for fmt in work.request.formats:
        work.step(f"{fmt} {precision}")
        path = folder / (spec.name + SUFFIX[fmt])
        try:
            _export(work.source, fmt, precision, work.onnx_fp32, path)
        except FacezooError as exc:  # this artifact fails; the other precisions go on
            work.checks.append(failed_check(path, fmt, precision, "-", len(work.inputs), spec, f"export failed: {exc}"))
            continue
        work.artifacts.append(str(path.relative_to(work.scratch)))
        _validate(work, path, fmt, precision)
    _card(work, precision)


def _card(work: _Work, precision: str, extra: dict | None = None) -> None:
    checks = [c for c in work.checks if c.precision == precision]
    write_model_card(work.scratch / precision, work.spec, precision, work.source.source_files, checks,
                     original=work.request.original, extra=extra)


def _quantized_precisions(work: _Work, precisions: list[str]) -> None:
    """INT8 and BF16 from the FP32 folder, through facezoo.quantization's gated builds."""
    from facezoo.quantization import MINDIR_INT8_REASON, build_bf16, build_int8, held_out_faces

    spec, request = work.spec, work.request
    fp32 = work.scratch / "FP32"
    held = None
    for precision in precisions:
        folder = work.scratch / precision
        folder.mkdir()
        formats = [f for f in request.formats if f in (("openvino", "onnx") if precision == "INT8" else ("openvino",))]
        if "mindir" in request.formats:
            work.notes.append(f"no {precision} MINDIR: " + (MINDIR_INT8_REASON if precision == "INT8" else
                                                              "bf16 is an OpenVINO inference setting"))
        blocked = ("the FP32 artifacts it is made from failed" if work.failed("FP32") else
                   "" if formats else f"{precision} is made for {'openvino/onnx' if precision == 'INT8' else 'openvino'}, "
                   "none of which was asked for in --formats")
        if blocked:
            work.checks.append(failed_check(folder / spec.name, "-", precision, "-", len(work.inputs), spec, blocked))
            continue
        if held is None:
            work.step("running the original model on held-out faces")
            held = held_out_faces(spec, work.source.reference)
        if precision == "INT8":
            settings = request.quantization
            built = build_int8(spec, work.source.reference, held, fp32, folder, formats=tuple(formats),
                               calibration_size=settings.calibration_size,
                               calibration_images=settings.calibration_images, options=settings.ladder,
                               step=work.step)
        else:
            built = build_bf16(spec, held, fp32, folder, lambda where, fields: _card(work, precision, fields), work.step)
        if not built.passed:
            work.checks.append(failed_check(folder / spec.name, "/".join(formats), precision, "-", len(held.inputs),
                                            spec, built.reason))
        for name in built.files:
            path = folder / name
            fmt = next((f for f in formats if SUFFIX[f] == path.suffix), None)
            if fmt is not None:
                work.artifacts.append(str(path.relative_to(work.scratch)))
                _validate(work, path, fmt, precision)
        _card(work, precision, built.card)


def _publish(work: _Work, started: float) -> ConversionResult:
    """Move every requested precision whose artifacts all passed into place; report the others."""
    request = work.request
    failed = [c for c in work.checks if not c.passed]
    failed_precisions = [p for p in request.precisions if work.failed(p)]
    passed_precisions = [p for p in request.precisions if p not in failed_precisions]
    result = ConversionResult(model=work.spec.name, passed=not failed_precisions, artifacts=work.artifacts,
                              checks=work.checks, failed_precisions=failed_precisions, notes=work.notes,
                              peak_rss_mib=_peak_rss_mib())
    if failed:
        result.error = "; ".join(f"{c.format} {c.precision} on {c.backend}: {c.reason}" for c in failed)
        result.error += f" ({', '.join(failed_precisions) or 'the FP32 basis'} not published)"
    if passed_precisions:
        work.step("moving into place")
        result.folder = str(publish_precisions(work.scratch, request.output_dir / work.spec.name, passed_precisions))
        result.published = passed_precisions
    result.seconds = time.perf_counter() - started
    return result


def failed_check(path: Path, fmt: str, precision: str, backend: str, samples: int, spec: ModelSpec,
                 reason: str) -> ArtifactCheck:
    """The check of an artifact that could not be made or run."""
    from facezoo.gates import gate_for

    from facezoo.sources import thresholds_for

    gate = gate_for(precision, thresholds_for(spec).get(precision))
    nan = float("nan")
    return ArtifactCheck(fmt, precision, backend, path.name, samples, nan, nan, nan, nan, nan, nan,
                         gate.min_cosine, gate.max_relative_error, False, reason)


def _check_request(request: ConversionRequest) -> None:
    for fmt in request.formats:
        if fmt not in FORMATS:
            raise ConversionError(f"unknown format {fmt!r}; expected {', '.join(FORMATS)}")
    for precision in request.precisions:
        if precision not in PRECISIONS:
            raise ConversionError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")


def _export(source, fmt: str, precision: str, onnx_fp32: Path, path: Path) -> None:
    if fmt == "mindir":
        source.export_mindir(path, precision)
    elif fmt == "onnx":
        if precision == "FP32":
            shutil.copyfile(onnx_fp32, path)
        else:
            import onnx

            from facezoo.converters.onnx_graph import check_and_save, to_fp16

            check_and_save(to_fp16(onnx.load(str(onnx_fp32))), path)
    else:
        from facezoo.converters.openvino_ir import export_ir

        export_ir(onnx_fp32, path, precision)


def publish_precisions(scratch: Path, final: Path, precisions: list[str]) -> Path:
    """Swap each precision folder into place; a folder is either old or new, never half."""
    from facezoo.atomic import replace_tree

    final.mkdir(parents=True, exist_ok=True)
    for precision in precisions:
        replace_tree(scratch / precision, final / precision)
    return final


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
