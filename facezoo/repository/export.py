"""`export_model`: one table from a target server to the formats it runs and the writer of its layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from facezoo.repository import ovms, triton
from facezoo.repository.layout import ExportError, ExportOptions, ExportResult, model_io
from facezoo.runtime.resolve import Artifact


@dataclass(frozen=True)
class Target:
    formats: tuple[str, ...]  # the formats the server runs, the default of `facezoo export --to` first
    write: Callable[..., ExportResult]  # (artifact, io, options, name) -> what was written


WRITERS: dict[str, Target] = {
    "triton": Target(("onnx", "openvino"), triton.write),
    "ovms": Target(("openvino", "onnx"), ovms.write),
}
#: Formats each server runs, the first being the default.
TARGETS: dict[str, tuple[str, ...]] = {name: target.formats for name, target in WRITERS.items()}


def export_model(artifact: Artifact, options: ExportOptions, name: str | None = None) -> ExportResult:
    """Write `artifact` into the repository for options.target; returns what was written."""
    target = WRITERS.get(options.target)
    if target is None:
        raise ExportError(f"--to: expected one of {', '.join(WRITERS)}, got {options.target!r}")
    if artifact.format not in target.formats:
        raise ExportError(f"{artifact.path}: {options.target} does not run {artifact.format} files; export "
                          f"--format {' or '.join(target.formats)}")
    if options.max_batch < 1 or options.instances < 1 or options.version < 1 or options.max_delay_us < 0:
        raise ExportError("--max-batch, --instances and the version must be at least 1, --max-delay-ms at least 0")
    return target.write(artifact, model_io(artifact), options, name or artifact.model)


__all__ = ["TARGETS", "Target", "WRITERS", "export_model"]
