"""Convert one registry model into every requested format and precision, validated.

Artifacts are built in a temporary folder beside the output. Each precision folder is moved
into place only when every artifact in it passed validation; a precision that fails is reported
with its numbers and leaves the earlier folder of that precision (if any) untouched, while the
precisions that passed are published.
"""

from __future__ import annotations

import importlib
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
from facezoo.registry import FORMATS, PRECISIONS, ModelSpec

# One source class per framework: it knows the original model and how to export it.
SOURCES = {
    "mindspore": "facezoo.converters.mindspore_source:MindSporeSource",
    "mxnet": "facezoo.converters.mxnet_source:MXNetSource",
    "onnx": "facezoo.sources.onnx:OnnxSource",
}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "mindir": ".mindir"}
# Which backends must reproduce the original for each format.
VALIDATING_BACKENDS = {"onnx": ("onnxruntime", "openvino"), "openvino": ("openvino",), "mindir": ("mindspore",)}
PROBE_COUNT = 4  # synthetic faces, one of them colour-asymmetric (faces.probe_images)


@dataclass
class ConversionRequest:
    spec: ModelSpec
    download_dir: Path
    output_dir: Path
    formats: list[str]
    precisions: list[str]
    checkpoint: Path | None = None  # the original file to use instead of the downloaded one
    original: dict | None = None  # recorded in the model card: where the original lives (no download folder)


@dataclass
class ConversionResult:
    model: str
    passed: bool  # every requested precision passed (and was published)
    folder: str = ""  # where the published precisions are ("" when none was)
    artifacts: list[str] = field(default_factory=list)
    checks: list[ArtifactCheck] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # precisions moved into place
    failed_precisions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    error: str = ""


def plan(request: ConversionRequest) -> list[str]:
    """The steps a conversion would take, for --dry-run."""
    spec = request.spec
    steps = [f"load {spec.framework} source {', '.join(str(p) for p in source_paths(request))}"]
    for precision in request.precisions:
        folder = request.output_dir / spec.name / precision
        for fmt in request.formats:
            steps.append(f"export {fmt} {precision} → {folder / (spec.name + SUFFIX[fmt])}")
        steps.append(f"validate against the original on {PROBE_COUNT} probe faces; write {folder / 'model_card.json'}")
    return steps


def source_paths(request: ConversionRequest) -> list[Path]:
    spec = request.spec
    folder = request.download_dir / spec.name
    if spec.framework == "mindspore":
        return [request.checkpoint or folder / spec.conversion.checkpoint]
    if spec.framework == "onnx":
        return [request.checkpoint or folder / spec.conversion.model]
    return [folder / spec.conversion.symbol, folder / spec.conversion.params]


def open_source(request: ConversionRequest):
    for path in source_paths(request):
        if not path.is_file():
            raise ConversionError(
                f"{request.spec.name}: {path} does not exist; run `facezoo download {request.spec.name}` "
                f"(or pass --checkpoint)"
            )
    module_name, class_name = SOURCES[request.spec.framework].split(":")
    source_class = getattr(importlib.import_module(module_name), class_name)
    return source_class(request.spec, *source_paths(request))


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
        from facezoo.faces import probe_images, to_model_input

        probes = probe_images(PROBE_COUNT, (spec.input.height, spec.input.width))
        step("running the original model")
        reference = source.reference(probes)
        inputs = np.ascontiguousarray(to_model_input(probes, spec.converted.channel_order), np.float32)
        onnx_fp32 = scratch / "fp32-source.onnx"
        needs_onnx = any(f in request.formats for f in ("onnx", "openvino"))
        if needs_onnx:
            step("exporting ONNX")
            source.export_onnx(onnx_fp32)
        checks: list[ArtifactCheck] = []
        artifacts: list[str] = []
        for precision in request.precisions:
            folder = scratch / precision
            folder.mkdir()
            for fmt in request.formats:
                step(f"{fmt} {precision}")
                path = folder / (spec.name + SUFFIX[fmt])
                try:
                    _export(source, fmt, precision, onnx_fp32, path)
                except FacezooError as exc:  # this artifact fails; the other precisions go on
                    checks.append(failed_check(path, fmt, precision, "-", len(inputs), spec, f"export failed: {exc}"))
                    continue
                artifacts.append(str(path.relative_to(scratch)))
                for backend in VALIDATING_BACKENDS[fmt]:
                    step(f"validating {fmt} {precision} with {backend}")
                    try:
                        checks.append(
                            check_artifact(
                                path,
                                fmt=fmt,
                                precision=precision,
                                backend_name=backend,
                                inputs=inputs,
                                reference=reference,
                                threshold=spec.check_thresholds[precision],
                            )
                        )
                    except FacezooError as exc:
                        checks.append(failed_check(path, fmt, precision, backend, len(inputs), spec, f"cannot run: {exc}"))
            precision_checks = [c for c in checks if c.precision == precision]
            write_model_card(folder, spec, precision, source.source_files, precision_checks, original=request.original)
        failed = [c for c in checks if not c.passed]
        failed_precisions = [p for p in request.precisions if any(c.precision == p for c in failed)]
        passed_precisions = [p for p in request.precisions if p not in failed_precisions]
        result = ConversionResult(
            model=spec.name,
            passed=not failed,
            artifacts=artifacts,
            checks=checks,
            failed_precisions=failed_precisions,
            peak_rss_mib=_peak_rss_mib(),
        )
        if failed:
            result.error = "; ".join(f"{c.format} {c.precision} on {c.backend}: {c.reason}" for c in failed)
            result.error += f" ({', '.join(failed_precisions)} not published)"
        if passed_precisions:
            step("moving into place")
            result.folder = str(publish_precisions(scratch, request.output_dir / spec.name, passed_precisions))
            result.published = passed_precisions
        result.seconds = time.perf_counter() - started
        return result
    except FacezooError as exc:
        return ConversionResult(model=spec.name, passed=False, error=str(exc), seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def failed_check(path: Path, fmt: str, precision: str, backend: str, samples: int, spec: ModelSpec,
                 reason: str) -> ArtifactCheck:
    """The check of an artifact that could not be made or run."""
    from facezoo.gates import gate_for

    gate = gate_for(precision, spec.check_thresholds.get(precision))
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
    final.mkdir(parents=True, exist_ok=True)
    for precision in precisions:
        target = final / precision
        retired = None
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{precision}.old.", dir=final))
            target.rename(retired / precision)
        (scratch / precision).rename(target)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    return final


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
