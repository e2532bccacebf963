"""Command line of benchmarks/run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.cli.common import console, err_console, reports_errors, split_csv

DEFAULT_OVERHEAD_MODELS = "mindface-arcface-mobilefacenet,arcface"


@reports_errors
def suite(
    models: Annotated[Optional[str], typer.Option("--models", help="Registry patterns (default: every model).")] = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Stand-ins, converted files, logs.")] = Path("benchmarks/work"),
    results_dir: Annotated[Path, typer.Option("--results", help="Where the report goes.")] = Path("benchmarks/results"),
    machine: Annotated[Optional[str], typer.Option("--machine", help="Name of the result files.")] = None,
    seconds: Annotated[float, typer.Option("--time", help="Timed seconds per case.")] = 3.0,
    converted_dir: Annotated[
        Optional[Path], typer.Option("--converted-dir", help="Time these converted files; skip conversion.")
    ] = None,
    overhead_models: Annotated[
        str, typer.Option("--overhead-models", help="Models of the facezoo-vs-direct pairs.")
    ] = DEFAULT_OVERHEAD_MODELS,
    overhead_rounds: Annotated[int, typer.Option("--overhead-rounds", help="Turns each runner takes.")] = 5,
    light_batch: Annotated[int, typer.Option("--light-batch", help="Throughput batch, light models.")] = 32,
    heavy_batch: Annotated[int, typer.Option("--heavy-batch", help="Throughput batch, ≥ 5 GFLOPs.")] = 8,
    bf16: Annotated[
        Optional[bool], typer.Option("--bf16/--no-bf16", help="OpenVINO bf16 rows (default: if the CPU has bf16).")
    ] = None,
    quantize: Annotated[
        bool, typer.Option("--quantize/--no-quantize", help="Make gated INT8 and BF16 folders and time them too.")
    ] = True,
    calibration_size: Annotated[
        int, typer.Option("--calibration-size", help="Synthetic calibration faces per model for INT8.")
    ] = 300,
    deploy: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="Serving and Ray Data rows (needs the deploy model).")
    ] = True,
    deploy_only: Annotated[
        bool, typer.Option("--deploy-only", help="Only the serving, Ray and soak rows, into <machine>-deploy.{json,md}.")
    ] = False,
    deploy_model: Annotated[str, typer.Option("--deploy-model", help="Model of the serving and Ray rows.")] = (
        "mindface-arcface-mobilefacenet"
    ),
    soak_seconds: Annotated[
        float, typer.Option("--soak-seconds", help="The hostile soak against facezoo serve (16 clients); 0: none.")
    ] = 30.0,
    detectors: Annotated[
        bool, typer.Option("--detectors/--no-detectors", help="Detector rows (YuNet, MTCNN, cv2.FaceDetectorYN, the "
                           "photo path) into <machine>-detectors.{json,md}, when the models chosen include a detector.")
    ] = True,
    detectors_only: Annotated[
        bool, typer.Option("--detectors-only", help="Only the detector rows, into <machine>-detectors.{json,md}.")
    ] = False,
    detector_min_iterations: Annotated[
        int, typer.Option("--detector-min-iterations", help="Fewest timed photos per detector row (beside --time).")
    ] = 20,
    detector_iterations: Annotated[
        Optional[int], typer.Option("--detector-iterations", help="Exactly this many photos per detector row and turn.")
    ] = None,
    detector_rounds: Annotated[
        int, typer.Option("--detector-rounds", help="Interleaved rounds: YuNet against cv2, and the photo path.")
    ] = 5,
    gallery_only: Annotated[
        bool, typer.Option("--gallery-only", help="Only the gallery rows (1:N search at scale, every store beside "
                           "exact search), into <machine>-gallery.{json,md}.")
    ] = False,
    gallery_size: Annotated[int, typer.Option("--gallery-size", min=1000, help="Synthetic identities.")] = 1_000_000,
    gallery_milvus_size: Annotated[
        int, typer.Option("--gallery-milvus-size", min=0, help="Identities through Milvus Lite (0: none).")
    ] = 1_000_000,
    gallery_queries: Annotated[int, typer.Option("--gallery-queries", min=10, help="Queries per store.")] = 1000,
    gallery_milvus_queries: Annotated[
        int, typer.Option("--gallery-milvus-queries", min=10, help="Queries through Milvus Lite (slow at 1M).")
    ] = 128,
    render: Annotated[
        Optional[Path], typer.Option("--render", help="Only write the report again from this results JSON.")
    ] = None,
) -> None:
    """Convert the zoo's stand-ins, time every path, and write the report for this machine."""
    from facezoo.benchmark.suite import (SuiteOptions, rerender, run_deployment_only, run_detectors_only,
                                         run_gallery_only, run_suite)

    if render is not None:
        if render.name.endswith("-deploy.json"):  # the serving/Ray results file
            from facezoo.benchmark.suite.deploy_report import rerender_deployment as rerender_file
        elif render.name.endswith("-detectors.json"):  # the detector results file
            from facezoo.benchmark.suite.detectors_report import rerender_detectors as rerender_file
        else:
            rerender_file = rerender
        for kind, path in rerender_file(render).items():
            console.print(f"{kind}: {path}", highlight=False)
        return

    options = SuiteOptions(
        models=split_csv(models) if models else None,
        workdir=workdir,
        results_dir=results_dir,
        machine_name=machine,
        seconds=seconds,
        converted_dir=converted_dir,
        overhead_models=tuple(split_csv(overhead_models)),
        overhead_rounds=overhead_rounds,
        light_batch=light_batch,
        heavy_batch=heavy_batch,
        bf16=bf16,
        quantize=quantize,
        calibration_size=calibration_size,
        deploy=deploy,
        deploy_model=deploy_model,
        soak_seconds=soak_seconds,
        detectors=detectors,
        detector_min_iterations=detector_min_iterations,
        detector_iterations=detector_iterations,
        detector_rounds=detector_rounds,
        gallery_size=gallery_size,
        gallery_milvus_size=gallery_milvus_size,
        gallery_queries=gallery_queries,
        gallery_milvus_queries=gallery_milvus_queries,
    )
    if deploy_only + detectors_only + gallery_only > 1:
        from facezoo.errors import FacezooError

        raise FacezooError("--deploy-only, --detectors-only, --gallery-only: choose one")
    section = (run_deployment_only if deploy_only else run_detectors_only if detectors_only
               else run_gallery_only if gallery_only else run_suite)
    paths = section(options, err_console)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)


def main() -> None:
    typer.run(suite)
