"""`facezoo export`: a Triton or OpenVINO Model Server repository from converted artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facezoo.cli.common import console, reports_errors
from facezoo.cli.deploy_options import (
    DEFAULT_CONVERTED_DIR,
    ConvertedDir,
    FormatOption,
    PrecisionOption,
    check_format,
    check_positive,
    check_precision,
)


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@reports_errors
def export(
    name: Annotated[str, typer.Argument(help="A converted zoo model (or a converted file).")],
    to: Annotated[str, typer.Option("--to", help="triton or ovms.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The model repository.")] = Path("model_repository"),
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Triton max_batch_size.")] = 32,
    max_delay_ms: Annotated[float, typer.Option("--max-delay-ms", help="Triton dynamic batching delay.")] = 5.0,
    instances: Annotated[int, typer.Option("--instances", help="Triton instance_group count (KIND_CPU).")] = 1,
    device: Annotated[str, typer.Option("--device", help="OVMS target_device.")] = "CPU",
) -> None:
    """Write <name>/ (config.pbtxt for Triton, or config.json for OVMS) and <name>/1/model.* into REPO.

    Triton takes the ONNX file (backend onnxruntime) by default, or --format openvino; OVMS the
    OpenVINO IR. The model folder is replaced whole; OVMS's config.json keeps its other models.
    """
    from facezoo.repository import TARGETS, ExportError, ExportOptions, export_model
    from facezoo.runtime import resolve_artifact

    if to not in TARGETS:
        raise ExportError(f"--to: expected one of {', '.join(TARGETS)}, got {to!r}")
    check_positive(max_batch, "--max-batch")
    check_positive(instances, "--instances")
    check_positive(max_delay_ms, "--max-delay-ms", 0)
    fmt = check_format(fmt, TARGETS[to]) or TARGETS[to][0]
    artifact = resolve_artifact(name, converted_dir, fmt, check_precision(precision))
    is_file = Path(name).suffix == artifact.path.suffix and Path(name).exists()
    options = ExportOptions(to, output, max_batch, int(max_delay_ms * 1000), instances, device)
    result = export_model(artifact, options, Path(name).stem if is_file else None)
    console.print(f"{result.name}: {artifact.path} → {result.folder} ({to}; config {result.config})", highlight=False)
    for path in result.files:
        console.print(f"  {path}", highlight=False)
