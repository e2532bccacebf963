"""`facezoo benchmark`: latency and throughput of converted models, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from facezoo.cli.common import ZooOption, console, err_console, open_zoo, reports_errors, split_csv
from facezoo.errors import FacezooError
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR

CSV = Optional[str]


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)


@reports_errors
def benchmark(
    models: Annotated[list[str], typer.Argument(help="Converted files, or zoo names (every converted artifact).")],
    converted_dir: Annotated[
        Path, typer.Option("-c", "--converted-dir", help="Where zoo names are looked up.")
    ] = DEFAULT_CONVERTED_DIR,
    formats: Annotated[CSV, typer.Option("--format", help="Only these formats: openvino,onnx,mindir.")] = None,
    precisions: Annotated[CSV, typer.Option("--precision", help="Only these precisions: FP32,FP16,INT8,BF16.")] = None,
    backends: Annotated[CSV, typer.Option("--backend", help="Only these: openvino,onnxruntime,mindspore.")] = None,
    device: Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")] = "CPU",
    batches: Annotated[str, typer.Option("--batch", help="Comma-separated batch sizes.")] = "1",
    mode: Annotated[
        str, typer.Option("--mode", help="latency (one request at a time), throughput (requests in flight), or latency,throughput.")
    ] = "latency",
    seconds: Annotated[float, typer.Option("--time", "-t", help="Seconds of timed runs per case.")] = 5.0,
    iterations: Annotated[
        Optional[int], typer.Option("--iterations", "-n", help="Timed batches per case (instead of --time).")
    ] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed batches after the first inference.")] = 2,
    requests: Annotated[
        Optional[int], typer.Option("--requests", "--streams", help="OpenVINO streams (default: the device's optimum).")
    ] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Inference threads (default: all cores).")] = None,
    precision_hint: Annotated[
        CSV, typer.Option("--precision-hint", help="OpenVINO inference precision, comma-separated: f32, bf16, f16.")
    ] = None,
    direct: Annotated[
        bool, typer.Option("--direct", help="Also time the same files through OpenVINO / ONNX Runtime directly.")
    ] = False,
    with_preprocessing: Annotated[
        bool, typer.Option("--with-preprocessing", help="Include JPEG decode, 5-point alignment, channel order and L2 norm.")
    ] = False,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the results here.")] = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="Write a throughput bar chart (PNG) here.")] = None,
    zoo: ZooOption = None,
) -> None:
    """Time converted models like benchmark_app, every format × precision × backend at once."""
    from facezoo.benchmark import describe_machine, run_case
    from facezoo.benchmark.plan import Matrix, find_targets, gflops_for, plan_cases
    from facezoo.benchmark.report import plot_throughput, results_table, to_document, write_json

    if iterations is not None and iterations < 1:
        raise FacezooError(f"--iterations {iterations}: must be at least 1")
    if seconds <= 0:
        raise FacezooError(f"--time {seconds}: must be positive")
    matrix = Matrix(
        backends=tuple(split_csv(backends)) if backends else None,
        device=device,
        batches=tuple(_positive_ints(batches)),
        modes=tuple(split_csv(mode)),
        runners=("facezoo", "direct") if direct else ("facezoo",),
        requests=requests,
        threads=threads,
        precision_hints=tuple(split_csv(precision_hint)) if precision_hint else (None,),
        preprocessing=with_preprocessing,
    )
    artifacts = find_targets(
        models, converted_dir, split_csv(formats) if formats else None, split_csv(precisions) if precisions else None
    )
    cases = plan_cases(artifacts, matrix)
    registry = open_zoo(zoo)
    gflops = {str(a.path): gflops_for(a, registry) for a in artifacts}
    machine = describe_machine()
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("benchmark", total=len(cases))
        for case in cases:
            progress.update(task, description=f"{case.model} · {case.label}")
            results.append(
                run_case(case, seconds=seconds, iterations=iterations, warmup=warmup, gflops_per_image=gflops[case.path])
            )
            progress.advance(task)
    preprocessing = "included (JPEG decode, 5-point alignment, channel order, L2 norm)" if with_preprocessing else "not included"
    title = f"facezoo benchmark on {machine.cpu_model} ({machine.usable_cpus} cores); preprocessing {preprocessing}"
    console.print(results_table(results, title))
    for result in results:
        if not result.ok:
            colour = "yellow" if result.status == "unavailable" else "red"
            line = f"[{colour}]{result.status}[/] {result.case.model} · {result.case.label}: {escape(result.error)}"
            err_console.print(line, highlight=False, soft_wrap=True)
    if json_file:
        settings = {
            "time_s": None if iterations else seconds,
            "iterations": iterations,
            "warmup": warmup,
            "preprocessing": with_preprocessing,
            "inputs": "distinct synthetic aligned face crops",
        }
        write_json(to_document(results, machine, settings), json_file)
        console.print(f"results: {json_file}", highlight=False)
    if plot_file and any(r.ok for r in results):
        chart_title = f"facezoo benchmark · {machine.cpu_model}, {machine.usable_cpus} cores · {machine.date}"
        plot_throughput(results, plot_file, chart_title)
        console.print(f"chart: {plot_file}", highlight=False)
    if any(r.status == "failed" for r in results) or not any(r.ok for r in results):
        raise typer.Exit(1)


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(item) for item in split_csv(text)]
    except ValueError:
        raise FacezooError(f"--batch {text!r}: expected comma-separated whole numbers, like 1,8,32") from None
    if not values or min(values) < 1:
        raise FacezooError(f"--batch {text!r}: batch sizes must be at least 1")
    return values
