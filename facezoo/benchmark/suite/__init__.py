"""The benchmark suite: convert the zoo, time every path, compute the ratios, write the report.

Runs on stand-ins (speed does not depend on weight values) and writes, under results_dir,
`<machine>.json`, `<machine>.md` and `<machine>-{throughput,latency,conversion}.png`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from facezoo.benchmark.flops import count_flops
from facezoo.benchmark.machine import MachineInfo, describe_machine
from facezoo.benchmark.peak import PeakMeasurement, measure_fp32_peak, measure_low_precision_peaks
from facezoo.benchmark.plan import Matrix, plan_cases
from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult
from facezoo.errors import FacezooError
from facezoo.modelcard import read_card
from facezoo.registry import ModelSpec, load_zoo
from facezoo.runtime.resolve import find_artifacts


@dataclass
class SuiteOptions:
    models: list[str] | None = None  # registry patterns; None: every model
    workdir: Path = Path("benchmarks/work")  # stand-ins, converted files, logs
    results_dir: Path = Path("benchmarks/results")
    machine_name: str | None = None
    seconds: float = 3.0  # timed seconds per case
    warmup: int = 1
    converted_dir: Path | None = None  # time these files instead of converting (no conversion figures)
    light_batch: int = 32  # throughput batch for models under heavy_gflops
    heavy_batch: int = 8
    heavy_gflops: float = 5.0
    overhead_models: tuple[str, ...] = ("mindface-arcface-mobilefacenet", "arcface")
    overhead_batches: tuple[int, ...] = (1, 32)
    overhead_rounds: int = 5
    bf16: bool | None = None  # OpenVINO bf16 rows; None: when the CPU has bf16 units
    gpu_batches: tuple[int, ...] = (1, 256)
    gpu_model: str = "arcface"
    peak_seconds: float = 2.0  # per method of the FP32 peak measurement
    quantize: bool = True  # INT8 and BF16 folders for every converted model (facezoo.quantization)
    calibration_size: int = 300  # synthetic calibration faces per model (NNCF's default subset)
    int8_formats: tuple[str, ...] = ("openvino", "onnx")
    deploy: bool = True  # serving and Ray Data rows
    deploy_model: str = "mindface-arcface-mobilefacenet"
    deploy_clients: tuple[int, ...] = (1, 4, 16)
    deploy_seconds: float = 5.0
    deploy_max_batch: int = 32
    deploy_max_delay_ms: float = 5.0
    ray_sizes: tuple[int, ...] = (800, 1600)
    soak_clients: int = 16  # the hostile soak: good and hostile requests mixed, against facezoo serve
    soak_seconds: float = 30.0  # measured, after a warm-up of a quarter of it
    # The detector section (suite/detectors_report.py): into <machine>-detectors.{json,md}.
    detectors: bool = True
    detector_models: tuple[str, ...] = ("yunet", "mtcnn")
    detector_sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))  # width × height
    detector_formats: tuple[str, ...] | None = None  # None: every converted format
    detector_precisions: tuple[str, ...] | None = None  # None: every folder (FP32, FP16, INT8 where one exists)
    detector_backends: tuple[str, ...] | None = None  # None: every backend that runs the file
    detector_min_iterations: int = 20  # per latency row, beside `seconds`
    detector_iterations: int | None = None  # exactly this many photos per row and per turn (quick runs)
    detector_rounds: int = 5  # interleaved rounds: YuNet against cv2.FaceDetectorYN, and the photo path
    detector_turn_seconds: float = 1.0  # per runner (or stage) and round, at least 3 photos
    pipeline_detector: str = "mtcnn"  # the photo path: decode, detect, align, embed
    pipeline_embedder: str = "mindface-arcface-mobilefacenet"
    pipeline_format: str = "openvino"
    pipeline_precision: str = "FP32"
    pipeline_backend: str = "openvino"
    # The gallery section (suite/gallery.py): into <machine>-gallery.{json,md}.
    gallery_size: int = 1_000_000  # synthetic identities, one face each
    gallery_dim: int = 512
    gallery_queries: int = 1000
    gallery_batch: int = 64
    gallery_milvus_size: int = 1_000_000  # the same through Milvus Lite; 0: not measured
    gallery_milvus_queries: int = 128  # Milvus Lite answers in about a second at 1M: fewer queries


@dataclass
class SuiteRun:
    """Everything one run measured; `report` turns it into files."""

    options: SuiteOptions
    machine: MachineInfo
    peak: PeakMeasurement
    specs: list[ModelSpec]
    conversions: list = field(default_factory=list)
    flops: list[dict] = field(default_factory=list)
    results: list[BenchmarkResult] = field(default_factory=list)
    overhead: list = field(default_factory=list)
    bf16_agreement: dict[str, float] = field(default_factory=dict)
    gpu: dict = field(default_factory=dict)
    peaks: dict[str, PeakMeasurement] = field(default_factory=dict)  # BF16, INT8 MatMul peaks
    quantization: list[dict] = field(default_factory=list)  # facezoo.quantization records per model
    zoo_path: Path | None = None  # the stand-ins' registry (originals for the INT8 gate)
    download_dir: Path | None = None
    deployment: object | None = None  # DeploymentSection: serving and Ray Data rows
    detectors: object | None = None  # DetectorSection: written to <machine>-detectors.{json,md}


def run_suite(options: SuiteOptions, console: Console | None = None) -> dict[str, Path]:
    from facezoo.benchmark.suite.report import write_report

    console = console or Console(stderr=True)
    registry = load_zoo()
    chosen = registry.select(options.models) if options.models else list(registry.models)
    specs = [spec for spec in chosen if spec.task_type != "face_detection"]  # detectors: their own section
    machine = describe_machine(options.machine_name)
    console.print(f"machine: {machine.cpu_model}, {machine.usable_cpus} cores; measuring the FP32 peak", highlight=False)
    peak = measure_fp32_peak(seconds=options.peak_seconds)
    run = SuiteRun(options, machine, peak, specs)
    console.print("measuring the bf16 and int8 MatMul peaks", highlight=False)
    run.peaks = measure_low_precision_peaks(seconds=options.peak_seconds)
    converted_dir = options.converted_dir or _convert(run, console)
    if options.quantize and run.download_dir is not None:
        _quantize(run, converted_dir, console)
    run.flops = _count_flops(specs, converted_dir)
    _time_matrix(run, converted_dir, console)
    run.overhead = _time_overhead(run, converted_dir, console)
    run.gpu = _time_gpu(run, converted_dir, console)
    if options.deploy and options.deploy_model in [s.name for s in specs]:
        from facezoo.benchmark.suite.deploy_report import time_deployment

        run.deployment = time_deployment(options, converted_dir, console)
    paths = write_report(run)
    from facezoo.benchmark.suite.detectors_report import selected_detectors, time_detectors, write_detectors_report

    detectors = selected_detectors(options, [spec.name for spec in chosen])
    if options.detectors and detectors:
        converted_now = tuple(c.model for c in run.conversions if c.passed)
        run.detectors = time_detectors(options, console, models=detectors, converted_dir=converted_dir,
                                       converted_now=converted_now)
        paths.update(write_detectors_report(machine, run.detectors, options.results_dir, "python benchmarks/run.py"))
    return paths


def run_deployment_only(options: SuiteOptions, console: Console | None = None) -> dict[str, Path]:
    """Only the serving and Ray rows, into `<machine>-deploy.{json,md}` (the full report is left alone)."""
    from facezoo.benchmark.suite.deploy_report import time_deployment, write_deployment_report

    console = console or Console(stderr=True)
    machine = describe_machine(options.machine_name)
    run = SuiteRun(options, machine, PeakMeasurement(0.0, "not measured", {}, 0), [load_zoo().get(options.deploy_model)])
    converted_dir = options.converted_dir or _convert(run, console)
    return write_deployment_report(machine, time_deployment(options, converted_dir, console), options.results_dir)


def run_detectors_only(options: SuiteOptions, console: Console | None = None) -> dict[str, Path]:
    """Only the detector rows, into `<machine>-detectors.{json,md}` (the full report is left alone)."""
    from facezoo.benchmark.suite.detectors_report import run_detectors_only as run_section

    return run_section(options, console)


def run_gallery_only(options: SuiteOptions, console: Console | None = None) -> dict[str, Path]:
    """Only the gallery rows, into `<machine>-gallery.{json,md}`."""
    from facezoo.benchmark.suite.gallery import run_gallery_benchmark

    return run_gallery_benchmark(options, console)


def rerender(json_path: Path, results_dir: Path | None = None) -> dict[str, Path]:
    """Write the markdown and figures again from a results file (after a change to the report)."""
    from facezoo.benchmark.report import read_results
    from facezoo.benchmark.suite.conversion import ConversionFigure
    from facezoo.benchmark.suite.overhead import OverheadFigure
    from facezoo.benchmark.suite.report import write_report

    document, results = read_results(json_path)
    settings = document["settings"]
    options = SuiteOptions(results_dir=results_dir or Path(json_path).parent, seconds=settings["seconds_per_case"],
                           warmup=settings["warmup"], light_batch=settings["light_batch"],
                           heavy_batch=settings["heavy_batch"], heavy_gflops=settings["heavy_gflops"])
    machine = MachineInfo(**document["machine"])
    registry = load_zoo()
    run = SuiteRun(options, machine, PeakMeasurement(**document["peak"]),
                   [registry.get(row["model"]) for row in document["flops"]])
    run.conversions = [ConversionFigure(**c) for c in document["conversions"]]
    run.flops = document["flops"]
    run.results = results
    derived = ("ratio", "wrapper_share")
    run.overhead = [OverheadFigure(**{k: v for k, v in o.items() if k not in derived}) for o in document["overhead"]]
    run.bf16_agreement = document["bf16_agreement"]
    run.gpu = document["gpu"]
    run.peaks = {k: PeakMeasurement(**v) for k, v in document.get("peaks", {}).items()}
    run.quantization = document.get("quantization", [])
    from facezoo.benchmark.suite.deploy_report import section_from_document

    run.deployment = section_from_document(document.get("deployment"))
    return write_report(run)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console,
    )


def _convert(run: SuiteRun, console: Console) -> Path:
    """Stand-ins served on loopback, downloaded and unpacked as a user's files would be, then converted."""
    from facezoo.benchmark.suite.conversion import convert_in_subprocess
    from facezoo.downloader import download_models
    from facezoo.standins import build_standins
    from facezoo.standins.server import StandinServer

    workdir = run.options.workdir
    downloads = workdir / "models"
    with StandinServer(workdir / "standins") as server:
        console.print(f"building stand-ins in {workdir / 'standins'}, serving them at {server.url}", highlight=False)
        standins = build_standins(load_zoo(), workdir / "standins", [s.name for s in run.specs], base_url=server.url)
        chosen = [standins.zoo().get(spec.name) for spec in run.specs]
        summary = download_models(chosen, output_dir=downloads, cache_dir=workdir / "cache", progress="none", timeout=30.0)
    if summary.failed:
        raise FacezooError("stand-in download failed: " + ", ".join(f"{f.model}/{f.file}" for f in summary.failed))
    converted = workdir / "converted"
    run.zoo_path, run.download_dir = standins.zoo_path, downloads
    with _progress(console) as progress:
        task = progress.add_task("convert", total=len(run.specs))
        for spec in run.specs:
            progress.update(task, description=f"convert {spec.name}")
            figure = convert_in_subprocess(spec.name, standins.zoo_path, downloads, converted, workdir / "logs")
            run.conversions.append(figure)
            if not figure.passed:
                console.print(f"[red]conversion of {spec.name} failed[/]: {figure.error} (log: {figure.log})", highlight=False)
            progress.advance(task)
    return converted


def _quantize(run: SuiteRun, converted_dir: Path, console: Console) -> None:
    """INT8 (every ladder step recorded) and BF16 folders beside each model's FP32 one, in a child each.

    facezoo.conversion.quantize_converted takes the conversion's own INT8/BF16 path beside the FP32
    folder, against the original model as `facezoo check` would; a folder that misses its gate is
    not published and its rows are simply absent.
    """
    from facezoo.benchmark.suite.worker import run_job

    with _progress(console) as progress:
        task = progress.add_task("quantize", total=len(run.specs))
        for spec in run.specs:
            progress.update(task, description=f"INT8/BF16 {spec.name}")
            if read_card(converted_dir / spec.name / "FP32") is None:
                progress.advance(task)
                continue
            job = {"kind": "quantize", "model": spec.name, "zoo": str(run.zoo_path), "download_dir": str(run.download_dir),
                   "converted_dir": str(converted_dir), "calibration_size": run.options.calibration_size,
                   "formats": list(run.options.int8_formats)}
            lines, error = run_job(job)
            record = lines[0] if lines else {"model": spec.name, "error": error or "no result"}
            run.quantization.append(record)
            summary = "; ".join(l.get("summary", "") for l in record.get("int8", {}).get("ladders", []))
            colour = "green" if "INT8" in record.get("published", []) else "yellow"
            console.print(f"[{colour}]{spec.name}[/]: {summary or record.get('error', '')}", highlight=False)
            progress.advance(task)


def _count_flops(specs: list[ModelSpec], converted_dir: Path) -> list[dict]:
    rows = []
    for spec in specs:
        onnx_file = converted_dir / spec.name / "FP32" / f"{spec.name}.onnx"
        if not onnx_file.is_file():
            continue
        counted = count_flops(onnx_file)
        rows.append({
            "model": spec.name, "architecture": spec.architecture, "registry_gflops": spec.gflops,
            "counted_gflops": round(counted.gflops, 3), "by_op": {k: round(v, 3) for k, v in counted.by_op.items()},
            "mparams": round(counted.mparams, 3),
        })
    return rows


def _suite_cases(run: SuiteRun, spec: ModelSpec, converted_dir: Path) -> list[BenchmarkCase]:
    artifacts = find_artifacts(spec.name, converted_dir)
    if not artifacts:
        return []
    heavy = (spec.gflops or 0.0) >= run.options.heavy_gflops
    batch = run.options.heavy_batch if heavy else run.options.light_batch
    cases = plan_cases(artifacts, Matrix(batches=(1,), modes=("latency",)))
    cases += plan_cases(artifacts, Matrix(batches=(batch,), modes=("throughput",)))
    ir_fp32 = [a for a in artifacts if a.format == "openvino" and a.precision == "FP32"]
    has_bf16_folder = any(a.precision == "BF16" for a in artifacts)  # its rows replace the hint rows
    if ir_fp32 and _wants_bf16(run) and not has_bf16_folder:
        cases += plan_cases(ir_fp32, Matrix(batches=(batch,), modes=("throughput",), precision_hints=("bf16",)))
    if ir_fp32:
        cases += plan_cases(ir_fp32, Matrix(batches=(1,), modes=("latency",), preprocessing=True))
    return cases


def _wants_bf16(run: SuiteRun) -> bool:
    if run.options.bf16 is not None:
        return run.options.bf16
    return any(flag in run.machine.isa for flag in ("amx_bf16", "avx512_bf16"))


def _time_matrix(run: SuiteRun, converted_dir: Path, console: Console) -> None:
    from facezoo.benchmark.suite.worker import run_cases, run_job

    counted = {row["model"]: row["counted_gflops"] for row in run.flops}
    plans = [(spec, _suite_cases(run, spec, converted_dir)) for spec in run.specs]
    with _progress(console) as progress:
        task = progress.add_task("benchmark", total=sum(len(cases) for _, cases in plans))

        def advance(result: BenchmarkResult) -> None:
            progress.update(task, advance=1, description=f"{result.case.model} · {result.case.label}")
            if not result.ok:
                console.print(f"[red]{result.status}[/] {result.case.model} · {result.case.label}: {result.error}", highlight=False)

        for spec, cases in plans:
            settings = {"seconds": run.options.seconds, "warmup": run.options.warmup,
                        "gflops_per_image": spec.gflops or counted.get(spec.name)}
            placed: dict[int, BenchmarkResult] = {}
            for backend in dict.fromkeys(case.backend for case in cases):  # one child per library
                indices = [i for i, case in enumerate(cases) if case.backend == backend]
                for index, result in zip(indices, run_cases([cases[i] for i in indices], settings, advance)):
                    placed[index] = result
            run.results.extend(placed[i] for i in range(len(cases)))
            bf16 = next((c.path for c in cases if c.precision_hint == "bf16"), None)
            if bf16:
                lines, error = run_job({"kind": "bf16", "path": bf16})
                if lines:
                    run.bf16_agreement[spec.name] = lines[0]["cosine"]
                else:
                    console.print(f"[red]bf16 agreement of {spec.name} failed[/]: {error}", highlight=False)


def _time_overhead(run: SuiteRun, converted_dir: Path, console: Console) -> list:
    from facezoo.benchmark.suite.overhead import OverheadFigure
    from facezoo.benchmark.suite.worker import run_job

    pairs = []
    for name in run.options.overhead_models:
        if name not in [s.name for s in run.specs]:
            continue
        for artifact in find_artifacts(name, converted_dir, formats=["openvino", "onnx"], precisions=["FP32"]):
            backend = "openvino" if artifact.format == "openvino" else "onnxruntime"
            for batch in run.options.overhead_batches:
                mode = "latency" if batch == 1 else "throughput"
                pairs.append(BenchmarkCase(name, str(artifact.path), artifact.format, "FP32", backend, batch=batch, mode=mode))
    figures = []
    with _progress(console) as progress:
        task = progress.add_task("overhead", total=len(pairs))
        for case in pairs:
            progress.update(task, description=f"overhead {case.model} · {case.label}")
            settings = {"rounds": run.options.overhead_rounds, "seconds": run.options.seconds}
            lines, error = run_job({"kind": "overhead", "case": asdict(case), "settings": settings})
            if lines:
                figures.append(OverheadFigure(**lines[0]))
            else:
                figures.append(OverheadFigure(case.model, case.file_kind, case.backend, case.batch, case.mode,
                                              0.0, 0.0, 0, [], [], error or "no result"))
            progress.advance(task)
    return figures


def _time_gpu(run: SuiteRun, converted_dir: Path, console: Console) -> dict:
    """ONNX Runtime's CUDA path, FP32 and FP16, at batch 1 and a large batch, where there is one."""
    from facezoo.benchmark.suite.ratios import TargetCheck
    from facezoo.runtime.devices import describe_availability, devices_for

    if "GPU" not in devices_for("onnxruntime"):
        return {"measured": False, "reason": f"no NVIDIA GPU with onnxruntime-gpu on this machine ({describe_availability()})"}
    artifacts = find_artifacts(run.options.gpu_model, converted_dir, formats=["onnx"])
    if not artifacts:
        return {"measured": False, "reason": f"{run.options.gpu_model} has no converted ONNX file"}
    cases = [
        BenchmarkCase(a.model, str(a.path), "onnx", a.precision, "onnxruntime", device="GPU", batch=batch,
                      mode="latency" if batch == 1 else "throughput")
        for a in artifacts for batch in run.options.gpu_batches
    ]
    from facezoo.benchmark.suite.worker import run_cases

    with _progress(console) as progress:
        task = progress.add_task("GPU", total=len(cases))
        results = run_cases(cases, {"seconds": run.options.seconds, "warmup": 5}, lambda _: progress.advance(task))
    run.results.extend(results)
    fp16 = {r.case.batch: r for r in results if r.ok and r.case.precision == "FP16"}
    targets = []
    small, large = min(run.options.gpu_batches), max(run.options.gpu_batches)
    if small in fp16 and fp16[small].latency:
        p50 = fp16[small].latency.p50
        targets.append(TargetCheck(f"GPU FP16 batch {small} ≤ 1.5 ms", f"p50 {p50:.2f} ms", p50 <= 1.5,
                                   "" if p50 <= 1.5 else f"missed by {p50 - 1.5:.2f} ms"))
    if large in fp16:
        rate = fp16[large].throughput
        targets.append(TargetCheck(f"GPU FP16 batch {large} ≥ 15 k img/s", f"{rate:.0f} img/s", rate >= 15000,
                                   "" if rate >= 15000 else f"missed by {15000 - rate:.0f} img/s"))
    return {"measured": True, "gpus": run.machine.gpus, "targets": [asdict(t) for t in targets]}


__all__ = ["SuiteOptions", "SuiteRun", "rerender", "run_deployment_only", "run_detectors_only", "run_gallery_only",
           "run_suite"]
