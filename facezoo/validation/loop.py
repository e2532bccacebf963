"""Run one artifact on one backend and judge it against the original model's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.formats import BACKENDS_FOR_FORMAT, FORMAT_FOR_SUFFIX, SUFFIX
from facezoo.runtime.backends import BackendOptions, open_backend
from facezoo.tasks import DecisionRule, Outputs, Task
from facezoo.validation.record import ArtifactCheck

# MindSpore's CPU kernels are slow enough that its batch-identity check re-runs only the first
# rows one at a time.
SINGLE_RUNS = {"mindspore": 2}


def run_batch_and_singles(backend, batch: np.ndarray) -> tuple[Outputs, Outputs]:
    """Outputs for the whole batch, and for its first rows run one at a time (stacked)."""
    outputs = backend.infer(batch)
    rows = min(len(batch), SINGLE_RUNS.get(backend.name, len(batch)))
    runs = [backend.infer(batch[i : i + 1]) for i in range(rows)]
    singles = {name: np.concatenate([run[name] for run in runs]) for name in outputs
               if all(name in run for run in runs)}
    return outputs, singles


def failed_check(path: Path, fmt: str, precision: str, backend: str, samples: int, task: Task, gate,
                 rule: DecisionRule | None, reason: str, model: str = "") -> ArtifactCheck:
    """The record of an artifact that could not be made, loaded or run."""
    comparison = task.unmeasured(gate, rule, samples, reason)
    return ArtifactCheck(fmt, precision, backend, str(path), samples, comparison.metrics, comparison.bounds,
                         False, reason, model)


def validate_artifact(
    path: Path,
    *,
    fmt: str,
    precision: str,
    backend: str,
    inputs: np.ndarray,
    reference: Outputs,
    task: Task,
    gate,
    rule: DecisionRule | None = None,
    device: str = "CPU",
    model: str = "",
    file_label: str | None = None,
) -> ArtifactCheck:
    """Load ``path`` on ``backend``, run ``inputs`` (a batch, then its first rows alone) and let
    ``task`` compare the outputs with ``reference`` (the original's, same inputs) by ``gate``.

    ``rule``: the decision users take from the outputs (recognition: same/different at a cosine);
    the check and the INT8/BF16 gate count its flips, the converter's probes do not.
    """
    path = Path(path)
    label = file_label if file_label is not None else str(path)
    names = tuple(reference)
    try:
        runner = open_backend(path, backend, device, BackendOptions(output_names=names))
    except Exception as exc:  # any file a backend cannot load is a failed artifact, with the reason
        return failed_check(label, fmt, precision, backend, len(inputs), task, gate, rule, f"cannot load: {exc}", model)
    try:
        outputs, singles = run_batch_and_singles(runner, np.ascontiguousarray(inputs, np.float32))
    except Exception as exc:
        return failed_check(label, fmt, precision, runner.name, len(inputs), task, gate, rule, f"cannot run: {exc}",
                            model)
    finally:
        runner.close()
    comparison = task.compare(reference, outputs, singles, gate, rule)
    return ArtifactCheck(fmt, precision, runner.name, label, len(inputs), comparison.metrics, comparison.bounds,
                         comparison.passed, "; ".join(comparison.reasons), model)


def validate_decoded(
    paths: dict[str, Path],
    *,
    fmt: str,
    precision: str,
    backend: str,
    photos: list[tuple[str, np.ndarray]],
    reference: list,
    spec,
    task: Task,
    gate,
    device: str = "CPU",
    model: str = "",
    settings: dict | None = None,
) -> ArtifactCheck:
    """Every part of one model (``paths``: part → file of one format) on ``backend``, decoded by the
    task on ``photos`` and compared with the original's decoded ``reference`` (detection: faces)."""
    label = _set_label(spec.name, fmt, paths)
    rule = task.decision_rule(spec, {}, None)
    runners = {}
    try:
        for part, path in paths.items():
            names = task.part_outputs(spec, part)
            runners[part] = open_backend(path, backend, device, BackendOptions(output_names=names))
    except Exception as exc:
        _close(runners)
        return failed_check(label, fmt, precision, backend, len(photos), task, gate, rule, f"cannot load: {exc}", model)
    try:
        found = [task.decode(spec, photo, lambda part, batch: runners[part].infer(np.ascontiguousarray(batch, np.float32)),
                             **(settings or {}))
                 for _, photo in photos]
    except Exception as exc:
        return failed_check(label, fmt, precision, backend, len(photos), task, gate, rule, f"cannot run: {exc}", model)
    finally:
        name = next(iter(runners.values())).name if runners else backend
        _close(runners)
    comparison = task.compare_faces(reference, found, gate, rule, [n for n, _ in photos])
    return ArtifactCheck(fmt, precision, name, label, len(photos), comparison.metrics, comparison.bounds,
                         comparison.passed, "; ".join(comparison.reasons), model)


def _set_label(model: str, fmt: str, paths: dict[str, Path]) -> str:
    """How a record names a model's whole set of files: "yunet.onnx (photos)", "mtcnn-{pnet,rnet,onet}.onnx (photos)"."""
    names = [Path(p).name for p in paths.values()]
    if len(names) == 1:
        return f"{names[0]} (photos)"
    suffix = SUFFIX[fmt]
    parts = ",".join(paths)
    return f"{model}-{{{parts}}}{suffix} (photos)"


def _close(runners: dict) -> None:
    for runner in runners.values():
        runner.close()


def validate_file(path: Path, *, precision: str, inputs: np.ndarray, reference: Outputs, task: Task, gate,
                  rule: DecisionRule | None = None, backends: tuple[str, ...] | None = None) -> list[ArtifactCheck]:
    """``path`` on every backend that runs its format (or ``backends``), one record each."""
    fmt = FORMAT_FOR_SUFFIX.get(Path(path).suffix, "-")
    return [validate_artifact(path, fmt=fmt, precision=precision, backend=backend, inputs=inputs,
                              reference=reference, task=task, gate=gate, rule=rule)
            for backend in (backends or BACKENDS_FOR_FORMAT.get(fmt, ()))]


__all__ = ["SINGLE_RUNS", "failed_check", "run_batch_and_singles", "validate_artifact", "validate_decoded",
           "validate_file"]
