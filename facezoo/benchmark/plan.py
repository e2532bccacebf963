"""Which cases one `facezoo benchmark` call runs: every artifact × backend × batch × mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facezoo.benchmark.results import MODES, RUNNERS, BenchmarkCase
from facezoo.errors import FacezooError
from facezoo.registry import Zoo
from facezoo.formats import FORMAT_FOR_SUFFIX, SUFFIXES_FOR_BACKEND
from facezoo.runtime.errors import ModelNotFoundError
from facezoo.runtime.resolve import Artifact, artifact_from_path, find_artifacts

# Backends in the order tables list them.
BACKEND_ORDER = ("openvino", "onnxruntime", "mindspore")


@dataclass(frozen=True)
class Matrix:
    """The settings crossed with every artifact."""

    backends: tuple[str, ...] | None = None  # None: every backend that runs the file
    device: str = "CPU"
    batches: tuple[int, ...] = (1,)
    modes: tuple[str, ...] = ("latency",)
    runners: tuple[str, ...] = ("facezoo",)
    requests: int | None = None
    threads: int | None = None
    precision_hints: tuple[str | None, ...] = (None,)
    preprocessing: bool = False

    def __post_init__(self):
        for mode in self.modes:
            if mode not in MODES:
                raise FacezooError(f"--mode {mode!r}: expected {' or '.join(MODES)}")
        for runner in self.runners:
            if runner not in RUNNERS:
                raise FacezooError(f"--runner {runner!r}: expected {' or '.join(RUNNERS)}")
        for backend in self.backends or ():
            if backend not in BACKEND_ORDER:
                raise FacezooError(f"--backend {backend!r}: expected one of {', '.join(BACKEND_ORDER)}")
        if not self.batches or any(batch < 1 for batch in self.batches):
            raise FacezooError(f"--batch {','.join(map(str, self.batches))}: batch sizes must be positive")


def find_targets(
    names: list[str], converted_dir: Path, formats: list[str] | None = None, precisions: list[str] | None = None
) -> list[Artifact]:
    """A file path is one artifact; a zoo name is every artifact converted for it."""
    found: list[Artifact] = []
    for name in names:
        candidate = Path(name)
        if candidate.suffix in FORMAT_FOR_SUFFIX:
            found.append(artifact_from_path(candidate))
            continue
        artifacts = find_artifacts(name, converted_dir, formats, precisions)
        if not artifacts:
            raise ModelNotFoundError(
                f"no converted files for {name!r} under {Path(converted_dir) / name}"
                f"{' matching the --format/--precision filters' if formats or precisions else ''}; "
                f"run `facezoo convert {name} -o {converted_dir}` or give a file path"
            )
        found.extend(artifacts)
    return found


def plan_cases(artifacts: list[Artifact], matrix: Matrix) -> list[BenchmarkCase]:
    cases = []
    for artifact in artifacts:
        suffix = artifact.path.suffix
        backends = [b for b in BACKEND_ORDER if suffix in SUFFIXES_FOR_BACKEND[b] and (not matrix.backends or b in matrix.backends)]
        for backend in backends:
            hints = matrix.precision_hints if backend == "openvino" else (None,)
            runners = [r for r in matrix.runners if r == "facezoo" or backend in ("openvino", "onnxruntime")]
            for mode in matrix.modes:
                for batch in matrix.batches:
                    for hint in hints:
                        for runner in runners:
                            if runner == "direct" and matrix.preprocessing:
                                continue
                            cases.append(
                                BenchmarkCase(
                                    model=artifact.model,
                                    path=str(artifact.path),
                                    format=artifact.format,
                                    precision=artifact.precision,
                                    backend=backend,
                                    device=matrix.device,
                                    batch=batch,
                                    mode=mode,
                                    runner=runner,
                                    requests=matrix.requests,
                                    threads=matrix.threads,
                                    precision_hint=hint,
                                    preprocessing=matrix.preprocessing,
                                )
                            )
    if not cases:
        asked = ", ".join(matrix.backends or ())
        raise FacezooError(f"no backend among [{asked}] runs the chosen files ({', '.join(str(a.path) for a in artifacts)})")
    return cases


def gflops_for(artifact: Artifact, zoo: Zoo | None) -> float | None:
    """Per-image GFLOPs: the registry's figure, else counted from an ONNX file."""
    if zoo is not None:
        try:
            spec = zoo.get(artifact.model)
        except FacezooError:
            spec = None
        if spec is not None and spec.gflops:
            return spec.gflops
    onnx_file = artifact.path if artifact.format == "onnx" else artifact.path.with_suffix(".onnx")
    if onnx_file.is_file():
        from facezoo.benchmark.flops import count_flops

        return round(count_flops(onnx_file).gflops, 3)
    return None
