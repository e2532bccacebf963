"""Level 1 of the accuracy checker: does every converted artifact still compute the original model?

For each model, the ORIGINAL network (MindSpore checkpoint with its upstream preprocessing, or the
MXNet reference executor) and every converted artifact found under
``<converted_dir>/<model>/<PRECISION>/`` (each format on each backend that runs it here: ONNX
through ONNX Runtime and OpenVINO, IR through OpenVINO, MINDIR through MindSpore) embed the same
faces: real images from a folder, if given, and generated probes (one of them colour-asymmetric,
so a missing RGB/BGR swap cannot hide). The checker reports

- min / mean cosine between the artifact's and the original's embedding of each face;
- max absolute error, and max relative error (absolute error over the original's largest |value|);
- decision agreement: for every pair of faces, "same person" is cosine >= a threshold; the
  artifact's decisions are compared with the original's, giving the fraction that agree and the
  pairs that flipped. The threshold is the registry's ``verification_threshold`` when set; else the
  cut that best separates the original's same-identity from different-identity pairs on these
  faces, placed at the midpoint of the widest gap between neighbouring scores (so it sits as far
  from every pair as the data allows).

An artifact FAILS when it misses its precision's gate (:mod:`facezoo.gates`: min cosine, from the
registry's ``check_thresholds`` and overridable, and max relative error), when a batch of the
faces differs from the same faces run one at a time by more than that gate allows, when any
same/different decision flips (``max_flips`` allows some), when its output shape differs or is not
finite, or when it cannot be loaded or run.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facezoo.accuracy.datasets import identity_of, list_images, read_image_file
from facezoo.accuracy.metrics import best_separation
from facezoo.atomic import write_bytes_atomic
from facezoo.converters.validation import closeness_fields, judge, run_batch_and_singles
from facezoo.errors import FacezooError
from facezoo.faces import colour_asymmetric_face, synthetic_face
from facezoo.preprocessing import to_model_input
from facezoo.formats import BACKENDS_FOR_FORMAT
from facezoo.numerics import flipped_pairs, pair_cosines, pair_indices
from facezoo.gates import DEFAULT_MAX_FLIPS, GATES, gate_for
from facezoo.registry import ModelSpec

DEFAULT_SAMPLES = 8
SYNTHETIC_IDENTITY = 3000  # generated identities of the check: 3000, 3001, ... (two variations each)
# Which backends run each converted format (the same set the converter validates with).
THRESHOLD_FROM_REGISTRY = "registry verification_threshold"
THRESHOLD_FROM_SEPARATION = "best separation of the original's same/different pairs (midpoint of the widest gap)"


class AgreementError(FacezooError):
    """The check cannot run at all (nothing converted, original missing, bad sample folder)."""


@dataclass(frozen=True)
class BackendAgreement:
    """One converted artifact, run by one backend, against the original network."""

    model: str
    format: str
    precision: str
    backend: str
    file: str
    samples: int
    pairs: int
    min_cosine: float
    mean_cosine: float
    max_abs_error: float
    max_relative_error: float
    batch_min_cosine: float  # the faces as one batch against the same faces one at a time
    batch_relative_diff: float
    agreement: float  # fraction of pairs whose same/different decision matches the original's
    flipped: int
    flipped_pairs: list[tuple[int, int]]
    allowed_flips: int
    cosine_threshold: float
    relative_error_bound: float | None
    passed: bool
    reason: str = ""


@dataclass
class AgreementReport:
    """Everything the check measured for one model."""

    model: str
    samples: int = 0
    real_images: int = 0
    synthetic_images: int = 0
    sample_sources: list[str] = field(default_factory=list)
    pairs: int = 0
    same_pairs: int = 0
    different_pairs: int = 0
    decision_threshold: float | None = None
    threshold_source: str = ""
    original_separation_accuracy: float | None = None  # how well the threshold separates, original model
    check_thresholds: dict[str, float] = field(default_factory=dict)
    weights: str = ""  # published / stand-in / not-published / unverified
    results: list[BackendAgreement] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed_results(self) -> list[BackendAgreement]:
        return [r for r in self.results if not r.passed]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return _json_safe(data)


# ----------------------------------------------------------------------------- sample faces


@dataclass(frozen=True)
class SampleFaces:
    images: np.ndarray  # N×H×W×3 uint8 BGR, already the model's input size
    identities: list[str]
    sources: list[str]
    real: int

    @property
    def synthetic(self) -> int:
        return len(self.images) - self.real


def sample_faces(size: tuple[int, int], images_dir: Path | None = None, samples: int = DEFAULT_SAMPLES) -> SampleFaces:
    """Up to samples-1 real images (sorted, so one person's images stay together), then generated faces.

    The generated part always holds the colour-asymmetric face, then pairs of variations 0 and 1 of
    identities 3000, 3001, ... so that same-identity pairs exist. Real images take their identity
    from their sub-folder, or from the file name without a trailing number (LFW: Name_0001.jpg).
    """
    from facezoo.preprocessing import fit_crop

    if samples < 2:
        raise AgreementError("--samples must be at least 2 (the check compares pairs of faces)")
    images, identities, sources = [], [], []
    if images_dir is not None:
        files = list_images(images_dir)
        if not files:
            raise AgreementError(f"{images_dir}: no .jpg/.jpeg/.png/.bmp images found")
        for path in files[: samples - 1]:
            images.append(fit_crop(read_image_file(path), size, resize=True))  # any real pixels serve here
            identities.append(f"real:{identity_of(path, Path(images_dir))}")
            sources.append(str(path))
    real = len(images)
    images.append(colour_asymmetric_face(size))
    identities.append("synthetic:colour-asymmetric")
    sources.append("synthetic:colour-asymmetric")
    k = 0
    while len(images) < samples:
        identity, variation = SYNTHETIC_IDENTITY + k // 2, k % 2
        images.append(synthetic_face(identity, variation, size))
        identities.append(f"synthetic:{identity}")
        sources.append(f"synthetic:{identity}/{variation}")
        k += 1
    return SampleFaces(np.stack(images).astype(np.uint8), identities, sources, real)


# ----------------------------------------------------------------------------- original model

_REFERENCE_CACHE: "collections.OrderedDict[tuple, np.ndarray]" = collections.OrderedDict()
_REFERENCE_CACHE_SIZE = 4


def original_embeddings(spec: ModelSpec, download_dir: Path, images: np.ndarray, original: Path | None = None) -> np.ndarray:
    """The original model's embeddings (memoized on the source files' identity and the pixels).

    ``original`` is the original file when it is not in the download folder (``convert --onnx``).
    """
    from facezoo.converters.pipeline import ConversionRequest, open_source, source_paths

    request = ConversionRequest(spec, Path(download_dir), Path(download_dir), [], [], original)
    paths = source_paths(request)
    stats = []
    for path in paths:
        try:
            st = path.stat()
            stats.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((str(path), None, None))
    key = (spec.name, spec.architecture, repr(spec.input), repr(spec.output), tuple(stats),
           hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest())
    if key in _REFERENCE_CACHE:
        _REFERENCE_CACHE.move_to_end(key)
        return _REFERENCE_CACHE[key]
    source = open_source(request)  # ConversionError naming the missing file
    embeddings = np.asarray(source.reference(images), np.float32)
    _REFERENCE_CACHE[key] = embeddings
    while len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
        _REFERENCE_CACHE.popitem(last=False)
    return embeddings


def weights_status(spec: ModelSpec, download_dir: Path) -> str:
    """Whether the downloaded files are the published ones, by the packaged registry's sha256."""
    from facezoo.downloader.verify import sha256_file
    from facezoo.registry import published_hashes

    folder = Path(download_dir) / spec.name
    if (folder / ".standin.json").is_file():
        return "stand-in"
    expected = published_hashes(spec)
    if any(sha is None for sha in expected.values()):
        return "unverified"
    for name, sha in expected.items():
        path = folder / name
        if not path.is_file():
            return "unverified"
        if sha256_file(path) != sha:
            return "not-published"
    return "published"


# ----------------------------------------------------------------------------- the check


def backends_here(fmt: str) -> list[str]:
    """The backends of BACKENDS_FOR_FORMAT[fmt] installed here with a CPU device."""
    from facezoo.runtime.devices import devices_for

    return [name for name in BACKENDS_FOR_FORMAT.get(fmt, ()) if "CPU" in devices_for(name)]


def precision_thresholds(spec: ModelSpec, overrides: dict[str, float] | None = None) -> dict[str, float]:
    thresholds = spec.thresholds()
    thresholds.update({k.upper(): float(v) for k, v in (overrides or {}).items() if v is not None})
    return thresholds


def _converted_order(artifact, spec: ModelSpec) -> str:
    card = artifact.card or {}
    return str((card.get("input") or {}).get("channel_order") or spec.converted.channel_order)


def _failed(spec, artifact, backend, samples, pairs, threshold, reason, max_flips=DEFAULT_MAX_FLIPS) -> BackendAgreement:
    nan = float("nan")
    gate = gate_for(artifact.precision, threshold) if artifact.precision in GATES else None
    return BackendAgreement(
        model=spec.name, format=artifact.format, precision=artifact.precision, backend=backend,
        file=str(artifact.path), samples=samples, pairs=pairs, min_cosine=nan, mean_cosine=nan,
        max_abs_error=nan, max_relative_error=nan, batch_min_cosine=nan, batch_relative_diff=nan, agreement=nan,
        flipped=pairs, flipped_pairs=[], allowed_flips=max_flips, cosine_threshold=threshold,
        relative_error_bound=gate.max_relative_error if gate else None, passed=False, reason=reason,
    )


def check_backend(
    spec: ModelSpec,
    artifact,
    backend_name: str,
    faces: SampleFaces,
    reference: np.ndarray,
    decision_threshold: float,
    cosine_threshold: float,
    device: str = "CPU",
    max_flips: int = DEFAULT_MAX_FLIPS,
) -> BackendAgreement:
    """Run one artifact on one backend over the sample faces and compare it with the original."""
    from facezoo.runtime.backends import open_backend

    pairs = pair_indices(len(faces.images))
    samples = len(faces.images)
    try:
        runner = open_backend(artifact.path, backend_name, device)
    except Exception as exc:  # any file a backend cannot load is a failed artifact, with the reason
        return _failed(spec, artifact, backend_name, samples, len(pairs), cosine_threshold, f"cannot load: {exc}",
                       max_flips)
    try:
        batch = to_model_input(faces.images, _converted_order(artifact, spec))
        outputs, batch_closeness = run_batch_and_singles(runner, np.ascontiguousarray(batch, np.float32))
    except Exception as exc:
        return _failed(spec, artifact, backend_name, samples, len(pairs), cosine_threshold, f"cannot run: {exc}",
                       max_flips)
    finally:
        runner.close()
    outputs = outputs.reshape(len(outputs), -1) if outputs.ndim > 2 else outputs
    if outputs.shape != reference.shape:
        return _failed(spec, artifact, backend_name, samples, len(pairs), cosine_threshold,
                       f"output shape {outputs.shape} != original {reference.shape}", max_flips)
    gate = gate_for(artifact.precision, cosine_threshold)
    measured, reasons = judge(reference, outputs, batch_closeness, gate)
    flips = flipped_pairs(reference, outputs, decision_threshold)
    if len(flips) > max_flips:
        reasons.append(
            f"{len(flips)} of {len(pairs)} same/different decisions flipped at cosine {decision_threshold:.4f} "
            f"(allowed {max_flips})"
        )
    return BackendAgreement(
        model=spec.name,
        format=artifact.format,
        precision=artifact.precision,
        backend=runner.name,
        file=str(artifact.path),
        samples=samples,
        pairs=len(pairs),
        **closeness_fields(measured),
        batch_min_cosine=batch_closeness.min_cosine,
        batch_relative_diff=batch_closeness.max_relative_error,
        agreement=float(1.0 - len(flips) / max(len(pairs), 1)),
        flipped=int(len(flips)),
        flipped_pairs=[(int(pairs[k, 0]), int(pairs[k, 1])) for k in flips],
        allowed_flips=max_flips,
        cosine_threshold=gate.min_cosine,
        relative_error_bound=gate.max_relative_error,
        passed=not reasons,
        reason="; ".join(reasons),
    )


def check_model(
    spec: ModelSpec,
    download_dir: Path,
    converted_dir: Path,
    images_dir: Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    thresholds: dict[str, float] | None = None,
    step: Callable[[str], None] = lambda _: None,
    formats: list[str] | None = None,
    precisions: list[str] | None = None,
    max_flips: int = DEFAULT_MAX_FLIPS,
    original: Path | None = None,
) -> AgreementReport:
    from facezoo.runtime.resolve import find_artifacts

    report = AgreementReport(model=spec.name, check_thresholds=precision_thresholds(spec, thresholds))
    try:
        artifacts = find_artifacts(spec.name, Path(converted_dir), formats or None, precisions or None)
        if not artifacts:
            which = "/".join(precisions or ["FP32", "FP16"])
            kinds = f" ({', '.join(formats)})" if formats else ""
            raise AgreementError(
                f"no converted artifacts{kinds} of {spec.name} under {Path(converted_dir) / spec.name}/<{which}>/; "
                f"run `facezoo convert {spec.name} -o {converted_dir}`"
            )
        size = (spec.input.height, spec.input.width)
        faces = sample_faces(size, images_dir, samples)
        pairs = pair_indices(len(faces.images))
        same = np.array([faces.identities[i] == faces.identities[j] for i, j in pairs], bool)
        report.samples, report.real_images, report.synthetic_images = len(faces.images), faces.real, faces.synthetic
        report.sample_sources = faces.sources
        report.pairs, report.same_pairs, report.different_pairs = len(pairs), int(same.sum()), int((~same).sum())
        report.weights = "local file" if original is not None else weights_status(spec, download_dir)
        step("running the original model")
        reference = original_embeddings(spec, download_dir, faces.images, original)
        scores = pair_cosines(reference, pairs)
        if spec.verification_threshold is not None:
            report.decision_threshold = float(spec.verification_threshold)
            report.threshold_source = THRESHOLD_FROM_REGISTRY
            report.original_separation_accuracy = float(np.mean((scores >= report.decision_threshold) == same))
        else:
            report.decision_threshold, report.original_separation_accuracy = best_separation(scores, same)
            report.threshold_source = THRESHOLD_FROM_SEPARATION
        for artifact in artifacts:
            threshold = report.check_thresholds.get(artifact.precision)
            if threshold is None:
                raise AgreementError(f"{spec.name}: no check threshold for precision {artifact.precision}")
            backends = backends_here(artifact.format)
            if not backends:
                report.results.append(_failed(spec, artifact, "-", len(faces.images), len(pairs), threshold,
                                              f"no backend for {artifact.format} is installed here", max_flips))
            for backend in backends:
                step(f"{artifact.format} {artifact.precision} on {backend}")
                report.results.append(
                    check_backend(spec, artifact, backend, faces, reference, report.decision_threshold, threshold,
                                  max_flips=max_flips)
                )
    except FacezooError as exc:
        report.error = str(exc)
    return report


def check_models(
    specs: Iterable[ModelSpec],
    download_dir: Path,
    converted_dir: Path,
    images_dir: Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    thresholds: dict[str, float] | None = None,
    step: Callable[[str, str], None] = lambda model, text: None,
    formats: list[str] | None = None,
    precisions: list[str] | None = None,
    max_flips: int = DEFAULT_MAX_FLIPS,
) -> list[AgreementReport]:
    """Check every converted artifact of each model against its original; one report per model.

    formats / precisions (default: all) narrow which artifacts are looked for; thresholds
    overrides the registry's check_thresholds per precision ({"FP16": 0.998}).
    """
    return [
        check_model(spec, download_dir, converted_dir, images_dir, samples, thresholds,
                    step=lambda text, name=spec.name: step(name, text), formats=formats, precisions=precisions,
                    max_flips=max_flips)
        for spec in specs
    ]


# ----------------------------------------------------------------------------- output


def show_agreement(reports: list[AgreementReport], console=None) -> None:
    """Print the agreement table (and why anything failed)."""
    from rich.table import Table

    if console is None:
        from rich.console import Console

        console = Console()
    weights = {r.weights for r in reports if r.weights}
    note = ""
    if weights and weights != {"published"}:
        note = f" — weights: {', '.join(sorted(weights))} (not a statement about the published models)"
    table = Table(title=f"agreement: converted artifacts against the original model{note}")
    numeric = ("min cos", "mean cos", "max abs err", "max rel err", "agree", "flips", "cos ≥")
    for column in ("model", "format", "precision", "backend", *numeric, "ok"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for report in reports:
        if report.error or not report.results:
            table.add_row(report.model, *["-"] * (len(numeric) + 3), "[red]FAIL[/]")
        for r in report.results:
            table.add_row(
                report.model, r.format, r.precision, r.backend,
                _fmt(r.min_cosine, ".7f"), _fmt(r.mean_cosine, ".7f"), _fmt(r.max_abs_error, ".2e"),
                _fmt(r.max_relative_error, ".2e"), _fmt(100 * r.agreement, ".1f", "%"),
                f"{r.flipped}/{r.pairs}", f"{r.cosine_threshold:g}",
                "[green]pass[/]" if r.passed else "[red]FAIL[/]",
            )
    console.print(table)
    for report in reports:
        if report.samples and report.decision_threshold is not None:
            console.print(
                f"{report.model}: {report.samples} faces ({report.real_images} real, {report.synthetic_images} "
                f"generated), {report.pairs} pairs ({report.same_pairs} same, {report.different_pairs} different); "
                f"decision threshold cosine {report.decision_threshold:.4f} from the {report.threshold_source}, "
                f"separating {100 * (report.original_separation_accuracy or 0):.1f}% of the original's pairs",
                highlight=False, soft_wrap=True,
            )
        if report.error:
            console.print(f"[red]{report.model}: {report.error}[/]", highlight=False, soft_wrap=True)
        for r in report.failed_results:
            console.print(f"[red]FAIL[/] {r.file} ({r.backend}): {r.reason}", highlight=False, soft_wrap=True)


def _fmt(value: float, spec: str, suffix: str = "") -> str:
    if value is None or value != value:
        return "-"
    return f"{value:{spec}}{suffix}"


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_json_atomic(path: Path, document) -> Path:
    """Write JSON to `path` through a temporary file in the same folder, then rename."""
    text = json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def agreement_document(reports: list[AgreementReport]) -> dict:
    return {
        "kind": "facezoo-agreement",
        "passed": bool(reports) and all(r.passed for r in reports),
        "failed": [f"{r.file} ({r.backend})" for rep in reports for r in rep.failed_results]
        + [rep.model for rep in reports if rep.error or not rep.results],
        "threshold_rule": THRESHOLD_FROM_SEPARATION,
        "gates": {p: {"min_cosine": g.min_cosine, "max_relative_error": g.max_relative_error} for p, g in GATES.items()},
        "models": [r.as_dict() for r in reports],
    }


__all__ = [
    "AgreementError",
    "AgreementReport",
    "BackendAgreement",
    "DEFAULT_SAMPLES",
    "SampleFaces",
    "agreement_document",
    "check_backend",
    "check_model",
    "check_models",
    "original_embeddings",
    "sample_faces",
    "show_agreement",
    "weights_status",
    "write_json_atomic",
]
