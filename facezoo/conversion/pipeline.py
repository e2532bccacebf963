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
from pathlib import Path
from typing import Callable

from facezoo.conversion.quantized import build_precisions, quantized_formats
from facezoo.conversion.request import ConversionRequest, ConversionResult
from facezoo.conversion.work import Work, publish_precisions
from facezoo.errors import ConversionError, FacezooError
from facezoo.formats import FORMATS, SUFFIX
from facezoo.modelcard import CARD_NAME
from facezoo.quantization.precisions import INT8, QUANTIZED_PRECISIONS
from facezoo.registry import PRECISIONS
from facezoo.sources import open_source, source_paths
from facezoo.tasks import task_for


def plan(request: ConversionRequest) -> list[str]:
    """The steps a conversion would take, for --dry-run."""
    spec = request.spec
    paths = source_paths(spec, request.download_dir / spec.name, request.checkpoint)
    steps = [f"load {spec.framework} source {', '.join(str(p) for p in paths)}"]
    task = task_for(spec)
    parts = task.parts(spec)
    probes = len(task.probe_images(spec, parts[0]))
    for precision in request.precisions:
        folder = request.output_dir / spec.name / precision
        if precision in QUANTIZED_PRECISIONS:
            how = ("quantize the FP32 files with NNCF (gated ladder)" if precision == INT8
                   else "the FP32 IR, run in bfloat16")
            for fmt in quantized_formats(precision, request.formats):
                steps.append(f"{how}: {fmt} → {folder / (spec.name + SUFFIX[fmt])}")
            steps.append(f"gate against the original on held-out faces; write {folder / CARD_NAME}")
            continue
        for fmt in request.formats:
            for part in parts:
                steps.append(f"export {fmt} {precision} → {folder / (spec.artifact_stem(part) + SUFFIX[fmt])}")
        judged = (f"{probes} probe faces" if parts == ("",) else
                  f"{probes} probes per net, then the whole model on {len(task.photos(spec))} photos")
        steps.append(f"validate against the original on {judged}; write {folder / CARD_NAME}")
    return steps


def convert_model(request: ConversionRequest, step: Callable[[str], None] = lambda _: None) -> ConversionResult:
    """Convert and validate one model; never leaves a partial result under the final name."""
    spec = request.spec
    started = time.perf_counter()
    _check_request(request)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=request.output_dir))
    try:
        step("loading the original model")
        source = open_source(spec, request.download_dir / spec.name, request.checkpoint)
        work = Work(spec, source, scratch, list(request.formats), step, request.quantization, request.original)
        onnx_fp32 = scratch / "fp32-source.onnx"
        if any(f in request.formats for f in ("onnx", "openvino")):
            step("exporting ONNX")
            for part in work.parts:
                if part:
                    source.export_onnx(_part_onnx(onnx_fp32, part), part)
                else:
                    source.export_onnx(onnx_fp32)
        quantized = [p for p in request.precisions if p in QUANTIZED_PRECISIONS]
        floats = [p for p in request.precisions if p not in QUANTIZED_PRECISIONS]
        if quantized and "FP32" not in floats:
            floats.insert(0, "FP32")  # INT8 and BF16 are made from the FP32 artifacts
        for precision in floats:
            _float_precision(work, precision, onnx_fp32)
        if quantized:
            build_precisions(work, quantized, scratch / "FP32")
        return _publish(work, request, started)
    except FacezooError as exc:
        return ConversionResult(model=spec.name, passed=False, task=spec.task_type, error=str(exc),
                                seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _float_precision(work: Work, precision: str, onnx_fp32: Path) -> None:
    """FP32 or FP16: every requested format exported by the source (each part of the model) and validated."""
    folder = work.scratch / precision
    folder.mkdir()
    for fmt in work.formats:
        paths = {}
        for part in work.parts:
            work.step(f"{fmt} {precision}" + (f" {part}" if part else ""))
            path = folder / (work.stem(part) + SUFFIX[fmt])
            try:
                _export(work.source, fmt, precision, _part_onnx(onnx_fp32, part), path, part)
            except FacezooError as exc:  # this artifact fails; the other precisions go on
                work.fail(path, fmt, precision, f"export failed: {exc}")
                continue
            work.validate(path, fmt, precision, part)
            paths[part] = path
        if len(paths) == len(work.parts):
            work.validate_model(paths, fmt, precision)
    work.write_card(precision)


def _part_onnx(onnx_fp32: Path, part: str) -> Path:
    """The FP32 ONNX export of one part (the model's, for a model of one graph)."""
    return onnx_fp32.with_name(f"{onnx_fp32.stem}-{part}.onnx") if part else onnx_fp32


def _publish(work: Work, request: ConversionRequest, started: float) -> ConversionResult:
    """Move every requested precision whose artifacts all passed into place; report the others."""
    failed = [c for c in work.checks if not c.passed]
    failed_precisions = [p for p in request.precisions if work.failed(p)]
    passed_precisions = [p for p in request.precisions if p not in failed_precisions]
    result = ConversionResult(model=work.spec.name, passed=not failed_precisions, task=work.spec.task_type,
                              artifacts=work.artifacts,
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


def _check_request(request: ConversionRequest) -> None:
    for fmt in request.formats:
        if fmt not in FORMATS:
            raise ConversionError(f"unknown format {fmt!r}; expected {', '.join(FORMATS)}")
    for precision in request.precisions:
        if precision not in PRECISIONS:
            raise ConversionError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")


def _export(source, fmt: str, precision: str, onnx_fp32: Path, path: Path, part: str = "") -> None:
    if fmt == "mindir":
        if part:
            source.export_mindir(path, precision, part)
        else:
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


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


__all__ = ["convert_model", "plan"]
