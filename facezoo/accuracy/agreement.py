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

from facezoo.atomic import write_bytes_atomic
from facezoo.downloader.verify import sha256_file
from facezoo.errors import FacezooError
from facezoo.formats import BACKENDS_FOR_FORMAT
from facezoo.gates import DEFAULT_MAX_FLIPS, GATES
from facezoo.numerics import pair_indices
from facezoo.preprocessing import to_model_input
from facezoo.registry import ModelSpec, published_hashes
from facezoo.runtime.devices import devices_for
from facezoo.runtime.resolve import Artifact, find_artifacts
from facezoo.sources import open_source, source_paths, thresholds_for
from facezoo.tasks import DEFAULT_TASK, Outputs, Samples, Task, task_for, task_named
from facezoo.tasks.recognition import DEFAULT_SAMPLES, THRESHOLD_FROM_REGISTRY, THRESHOLD_FROM_SEPARATION
from facezoo.validation import ArtifactCheck, failed_check, validate_artifact, validate_decoded
from facezoo.validation.table import checks_table




class AgreementError(FacezooError):
    """The check cannot run at all (nothing converted, original missing, bad sample folder)."""


@dataclass
class AgreementReport:
    """Everything the check measured for one model."""

    model: str
    task: str = DEFAULT_TASK
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
    results: list[ArtifactCheck] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed_results(self) -> list[ArtifactCheck]:
        return [r for r in self.results if not r.passed]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["results"] = [r.as_dict() for r in self.results]
        data["passed"] = self.passed
        return _json_safe(data)


# ----------------------------------------------------------------------------- original model

_REFERENCE_CACHE: "collections.OrderedDict[tuple, Outputs]" = collections.OrderedDict()
_REFERENCE_CACHE_SIZE = 4


def original_outputs(spec: ModelSpec, download_dir: Path, images: np.ndarray, original: Path | None = None) -> Outputs:
    """The original model's outputs (memoized on the source files' identity and the pixels).

    ``original`` is the original file when it is not in the download folder (``convert --onnx``).
    """
    folder = Path(download_dir) / spec.name
    stats = []
    for path in source_paths(spec, folder, original):
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
    source = open_source(spec, folder, original)  # ConversionError naming the missing file
    outputs = {name: np.asarray(values, np.float32) for name, values in source.reference(images).items()}
    _REFERENCE_CACHE[key] = outputs
    while len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
        _REFERENCE_CACHE.popitem(last=False)
    return outputs


def weights_status(spec: ModelSpec, download_dir: Path) -> str:
    """Whether the downloaded files are the published ones, by the packaged registry's sha256."""
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
    return [name for name in BACKENDS_FOR_FORMAT.get(fmt, ()) if "CPU" in devices_for(name)]


def precision_thresholds(spec: ModelSpec, overrides: dict[str, float] | None = None) -> dict[str, float]:
    thresholds = thresholds_for(spec)
    thresholds.update({k.upper(): float(v) for k, v in (overrides or {}).items() if v is not None})
    return thresholds


def check_artifact_on(task: Task, artifact: Artifact, backend: str, samples: Samples, reference: Outputs, gate,
                      rule, model: str, channel_order: str, device: str = "CPU") -> ArtifactCheck:
    """One artifact on one backend over the sample faces, against the original."""
    inputs = to_model_input(samples.images, artifact.card.input.channel_order if artifact.card else channel_order)
    return validate_artifact(artifact.path, fmt=artifact.format, precision=artifact.precision, backend=backend,
                             inputs=inputs, reference=reference, task=task, gate=gate, rule=rule, device=device,
                             model=model)


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
    report = AgreementReport(model=spec.name, task=spec.task_type)
    try:
        task = task_for(spec)
        report.check_thresholds = precision_thresholds(spec, thresholds)
        artifacts = find_artifacts(spec.name, Path(converted_dir), formats or None, precisions or None)
        if not artifacts:
            which = "/".join(precisions or ["FP32", "FP16"])
            kinds = f" ({', '.join(formats)})" if formats else ""
            raise AgreementError(
                f"no converted artifacts{kinds} of {spec.name} under {Path(converted_dir) / spec.name}/<{which}>/; "
                f"run `facezoo convert {spec.name} -o {converted_dir}`"
            )
        if task.parts(spec) != ("",):  # a model of nets (a detector): each net, then the whole on photos
            _check_nets(report, spec, task, artifacts, download_dir, images_dir, samples, original, step)
            return report
        size = (spec.input.height, spec.input.width)
        faces = _samples(task, size, images_dir, samples)
        pairs = pair_indices(len(faces.images))
        same = np.array([faces.identities[i] == faces.identities[j] for i, j in pairs], bool)
        report.samples, report.real_images, report.synthetic_images = len(faces.images), faces.real, faces.synthetic
        report.sample_sources = faces.sources
        report.pairs, report.same_pairs, report.different_pairs = len(pairs), int(same.sum()), int((~same).sum())
        report.weights = "local file" if original is not None else weights_status(spec, download_dir)
        step("running the original model")
        reference = original_outputs(spec, download_dir, faces.images, original)
        rule = task.decision_rule(spec, reference, faces, allowed_flips=max_flips)
        report.decision_threshold, report.threshold_source = rule.threshold, rule.source
        report.original_separation_accuracy = rule.separation_accuracy
        for artifact in artifacts:
            threshold = report.check_thresholds.get(artifact.precision)
            if threshold is None:
                raise AgreementError(f"{spec.name}: no check threshold for precision {artifact.precision}")
            gate = task.gate(artifact.precision, {artifact.precision: threshold})
            backends = backends_here(artifact.format)
            if not backends:
                report.results.append(failed_check(str(artifact.path), artifact.format, artifact.precision, "-",
                                                   len(faces.images), task, gate, rule,
                                                   f"no backend for {artifact.format} is installed here", spec.name))
            for backend in backends:
                step(f"{artifact.format} {artifact.precision} on {backend}")
                report.results.append(check_artifact_on(task, artifact, backend, faces, reference, gate, rule,
                                                        spec.name, spec.converted.channel_order))
    except FacezooError as exc:
        report.error = str(exc)
    return report


def _check_nets(report: AgreementReport, spec: ModelSpec, task: Task, artifacts: list[Artifact], download_dir: Path,
                images_dir: Path | None, samples: int, original: Path | None, step: Callable[[str], None]) -> None:
    """Each net of each artifact on its probes (raw heads), then every net of one format together on
    photos (the task's decoded results: a detector's faces), each against the original."""
    parts = task.parts(spec)
    report.weights = "local file" if original is not None else weights_status(spec, download_dir)
    step("running the original model")
    source = open_source(spec, Path(download_dir) / spec.name, original)
    probes = {part: task.probe_images(spec, part) for part in parts}
    reference = {part: source.reference(probes[part], part) for part in parts}
    photos = task.photos(spec, images_dir, samples)
    photo_reference = [task.decode(spec, photo, source.run_part) for _, photo in photos]
    report.samples = len(photos)
    report.real_images = sum(1 for name, _ in photos if not name.startswith(("astronaut", "composite", "generated")))
    report.synthetic_images = report.samples - report.real_images
    report.sample_sources = [name for name, _ in photos]
    for artifact in artifacts:
        gate = task.gate(artifact.precision, {artifact.precision: report.check_thresholds.get(artifact.precision)})
        backends = backends_here(artifact.format)
        if not backends:
            report.results.append(failed_check(str(artifact.path), artifact.format, artifact.precision, "-",
                                               len(photos), task, gate, None,
                                               f"no backend for {artifact.format} is installed here", spec.name))
        files = {part or parts[0]: path for part, path in artifact.files.items()}
        for backend in backends:
            for part, path in files.items():
                step(f"{path.name} {artifact.precision} on {backend}")
                inputs = to_model_input(probes[part], spec.converted.channel_order)
                report.results.append(validate_artifact(path, fmt=artifact.format, precision=artifact.precision,
                                                        backend=backend, inputs=inputs, reference=reference[part],
                                                        task=task, gate=gate, model=spec.name, file_label=path.name))
            step(f"{spec.name} {artifact.format} {artifact.precision} on {backend}: photos")
            report.results.append(validate_decoded(files, fmt=artifact.format, precision=artifact.precision,
                                                   backend=backend, photos=photos, reference=photo_reference,
                                                   spec=spec, task=task, gate=gate, model=spec.name))


def _samples(task: Task, size: tuple[int, int], images_dir: Path | None, count: int) -> Samples:
    if count < 2:
        raise AgreementError("--samples must be at least 2 (the check compares pairs of faces)")
    try:
        return task.samples(size, images_dir, count)
    except FacezooError as exc:
        raise AgreementError(str(exc)) from None


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
    """Print the agreement table, one per task (and why anything failed)."""
    if console is None:
        from rich.console import Console

        console = Console()
    weights = {r.weights for r in reports if r.weights}
    note = ""
    if weights and weights != {"published"}:
        note = f" — weights: {', '.join(sorted(weights))} (not a statement about the published models)"
    for task_name in dict.fromkeys(r.task for r in reports):
        rows = [(r.model, r.results, bool(r.error or not r.results)) for r in reports if r.task == task_name]
        console.print(checks_table(f"agreement: converted artifacts against the original model{note}",
                                   task_named(task_name).check_columns, rows))
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
    "DEFAULT_SAMPLES",
    "THRESHOLD_FROM_REGISTRY",
    "THRESHOLD_FROM_SEPARATION",
    "agreement_document",
    "check_artifact_on",
    "check_model",
    "check_models",
    "original_outputs",
    "show_agreement",
    "weights_status",
    "write_json_atomic",
]
