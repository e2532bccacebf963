"""`facezoo convert`: published checkpoints → MINDIR, ONNX and OpenVINO IR, validated."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from facezoo.cli.common import (
    ZooOption,
    console,
    err_console,
    open_zoo,
    reports_errors,
    select_models,
    split_csv,
)
from facezoo.conversion import ConversionRequest, ConversionResult, QuantizationSettings, convert_model, plan
from facezoo.errors import ConversionError
from facezoo.quantization.ladder import BUDGET_CPUS, BUDGET_GFLOPS, BUDGET_S, MIN_BUDGET_S, LadderOptions
from facezoo.quantization.mindir import MINDIR_INT8_REASON
from facezoo.registry import DEFAULT_PRECISIONS, FORMATS, PRECISIONS


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)


@reports_errors
def convert(
    names: Annotated[Optional[list[str]], typer.Argument(help="Model names or fnmatch patterns.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Comma-separated patterns (OMZ).")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model of the registry.")] = False,
    list_file: Annotated[Optional[Path], typer.Option("--list", help="File with one pattern per line.")] = None,
    download_dir: Annotated[
        Path, typer.Option("-d", "--download-dir", "--download_dir", help="Where `facezoo download` put the files.")
    ] = Path("models"),
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", "--output_dir", help="Where converted models go.")
    ] = Path("converted"),
    formats: Annotated[str, typer.Option("--formats", help=f"Comma-separated: {','.join(FORMATS)}.")] = ",".join(FORMATS),
    precisions: Annotated[
        str,
        typer.Option(
            "--precisions",
            help=f"Comma-separated, any of {','.join(PRECISIONS)}. INT8 (NNCF post-training quantization: an "
            "OpenVINO IR and a QDQ ONNX) and BF16 (the FP32 IR run in bfloat16) are made from the FP32 artifacts "
            "and published only when they pass the gate against the original on held-out faces. No INT8 MINDIR: "
            f"{MINDIR_INT8_REASON}",
        ),
    ] = ",".join(DEFAULT_PRECISIONS),
    calibration_images: Annotated[
        Optional[Path],
        typer.Option("--calibration-images", help="INT8: calibrate on these aligned face crops (jpg/png) instead "
                     "of facezoo's synthetic faces."),
    ] = None,
    calibration_size: Annotated[
        int, typer.Option("--calibration-size", min=1, help="INT8: calibration images to use (NNCF's default: 300).")
    ] = 300,
    int8_budget_s: Annotated[
        Optional[float],
        typer.Option("--int8-budget-s", min=1.0, help="INT8: wall-time budget of the ladder, in seconds (default: "
                     f"{BUDGET_S:.0f} s for a {BUDGET_GFLOPS}-GFLOPs model on {BUDGET_CPUS} cores, scaled by the "
                     f"model's GFLOPs and the cores here, at least {MIN_BUDGET_S:.0f} s). Plain PTQ always runs; when "
                     "the budget is spent nothing more is tried, and a missing INT8 folder says so in numbers."),
    ] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Use this checkpoint instead of the downloaded one.")
    ] = None,
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Models converted at once.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", "--dry_run", help="Print the steps only.")] = False,
    onnx_file: Annotated[
        Optional[Path],
        typer.Option(
            "--onnx",
            help="Convert this ONNX file, which has no registry entry (its input is taken as BGR/gray 0..255 "
            "as it is), into converted/<stem>/<PRECISION>/ with a model card. For a file whose input needs a "
            "channel swap or normalization, write a registry entry instead.",
        ),
    ] = None,
    zoo: ZooOption = None,
) -> None:
    """Convert models and validate every artifact against the original network."""
    if onnx_file is not None:
        if names or name or all_models or list_file or checkpoint:
            raise ConversionError("--onnx converts one file without a registry entry: give no model names with it")
        convert_onnx(onnx_file, output_dir, split_csv(formats), split_csv(precisions), dry_run,
                     QuantizationSettings(calibration_images, calibration_size, _ladder(int8_budget_s)))
        return
    specs = select_models(open_zoo(zoo), names, name, all_models, list_file)
    if checkpoint is not None and len(specs) != 1:
        raise ConversionError("--checkpoint needs exactly one model")
    settings = QuantizationSettings(calibration_images, calibration_size, _ladder(int8_budget_s))
    requests = [
        ConversionRequest(spec, download_dir, output_dir, split_csv(formats), split_csv(precisions), checkpoint,
                          quantization=settings)
        for spec in specs
    ]
    if dry_run:
        for request in requests:
            console.print(f"[bold]{request.spec.name}[/]")
            for line in plan(request):
                console.print(f"  {line}", highlight=False, soft_wrap=True)
        return
    _finish(run_conversions(requests, jobs))


def _ladder(budget_s: float | None) -> LadderOptions | None:
    """The ladder's options where the command line set any (None: every step, the model's default budget)."""
    return None if budget_s is None else LadderOptions(budget_s=budget_s)


def _finish(results: list[ConversionResult]) -> None:
    """Show the table; exit 1 when any precision of any model failed (the others were published)."""
    show_results(results)
    failed = [r for r in results if not r.passed]
    if failed:
        err_console.print("FAILED: " + ", ".join(
            f"{r.model} ({', '.join(r.failed_precisions) or 'error'})" for r in failed), highlight=False)
        for result in failed:
            err_console.print(f"[red]{result.model}[/]: {escape(str(result.error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def convert_onnx(onnx_file: Path, output_dir: Path, formats: list[str], precisions: list[str], dry_run: bool,
                 settings: QuantizationSettings = QuantizationSettings()) -> None:
    """`--onnx FILE`: an ONNX file without a registry entry, through the same pipeline."""
    from facezoo.downloader.verify import sha256_file
    from facezoo.sources.onnx.adhoc import ASSUMPTION, spec_for_file

    spec = spec_for_file(onnx_file)
    original = {"path": str(onnx_file.resolve()), "sha256": sha256_file(onnx_file), "assumption": ASSUMPTION}
    request = ConversionRequest(spec, onnx_file.parent, output_dir, formats, precisions, onnx_file, original, settings)
    if dry_run:
        console.print(f"[bold]{spec.name}[/] ({escape(ASSUMPTION)})")
        for line in plan(request):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        return
    err_console.print(f"{onnx_file.name}: {escape(ASSUMPTION)}", highlight=False, soft_wrap=True)
    _finish(run_conversions([request], 1))


def run_conversions(requests: list[ConversionRequest], jobs: int) -> list[ConversionResult]:
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[model]}[/]"), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        tasks = {r.spec.name: progress.add_task("waiting", model=r.spec.name, total=1) for r in requests}
        if jobs <= 1 or len(requests) == 1:
            results = []
            for request in requests:
                task = tasks[request.spec.name]
                result = convert_model(request, step=lambda text, t=task: progress.update(t, description=text))
                progress.update(task, description=_status(result), completed=1)
                results.append(result)
            return results
        # MindSpore keeps global state: separate processes, started fresh (spawn), not threads.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(convert_model, request): request.spec.name for request in requests}
            for name in tasks:
                progress.update(tasks[name], description="converting")
            finished = {}
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                finished[result.model] = result
                progress.update(tasks[result.model], description=_status(result), completed=1)
        return [finished[r.spec.name] for r in requests]


def _status(result: ConversionResult) -> str:
    if result.passed:
        return f"[green]done[/] in {result.seconds:.0f} s"
    if result.published:
        return f"[yellow]{', '.join(result.published)} published[/], [red]{', '.join(result.failed_precisions)} failed[/]"
    return "[red]failed[/]"


def show_results(results: list[ConversionResult]) -> None:
    """One table per task of the models converted, with the task's own columns."""
    from facezoo.tasks import task_named
    from facezoo.validation.table import checks_table

    for task_name in dict.fromkeys(r.task for r in results):
        rows = [(r.model, r.checks, not r.checks) for r in results if r.task == task_name]
        console.print(checks_table("conversion: converted artifacts against the original network",
                                   task_named(task_name).convert_columns, rows, ("[green]yes[/]", "[red]NO[/]")))
    for result in results:
        for note in result.notes:
            console.print(f"{result.model}: {note}", highlight=False, soft_wrap=True)
        if result.published:
            console.print(
                f"{result.model}: {', '.join(result.published)} in {result.folder} ({result.seconds:.0f} s, "
                f"peak RSS {result.peak_rss_mib:.0f} MiB)",
                highlight=False,
            )
