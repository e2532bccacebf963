"""The detector section of the suite: get the files, run the measurements in children, check the
targets, write `<machine>-detectors.{json,md}`.

Files: YuNet and the photo path's embedder are stand-ins (the suite's stand-in flow: built, served on
loopback, downloaded and converted as a user's files would be; the real YuNet file is not
reachable from here), MTCNN is the real one (its weights come from the package index, then the same
conversion). cv2.FaceDetectorYN runs YuNet's original (stand-in) ONNX file; facezoo its converted
files. Every figure is measured here; the targets are only stated, met or missed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from facezoo.atomic import write_bytes_atomic
from facezoo.benchmark.plan import BACKEND_ORDER
from facezoo.benchmark.report import write_json
from facezoo.benchmark.results import FORMAT_NAMES
from facezoo.benchmark.suite.detectors import OPENCV, STAGES, median_ratio, size_label
from facezoo.benchmark.suite.ratios import TargetCheck
from facezoo.formats import SUFFIXES_FOR_BACKEND

SCHEMA = "facezoo-detectors/1"
OPENCV_TARGET = 1.0  # facezoo's YuNet at least as fast as cv2.FaceDetectorYN
PATH_TARGET = 0.90  # whole photo path ≥ 90 % of 1 / (sum of each stage's time alone)
JPEG_QUALITY = 95


@dataclass
class DetectorSection:
    """Everything the section measured, as JSON-ready rows."""

    settings: dict = field(default_factory=dict)
    conversions: list[dict] = field(default_factory=list)
    latency: list[dict] = field(default_factory=list)  # one per model × file × backend × photo size
    versus: list[dict] = field(default_factory=list)  # one per photo size
    photo_path: dict | None = None
    errors: list[str] = field(default_factory=list)


def selected_detectors(options, names: list[str] | None) -> list[str]:
    """The section's detectors among the suite's chosen models (None: every model)."""
    if names is None:
        return list(options.detector_models)
    return [name for name in options.detector_models if name in names]


def time_detectors(options, console, *, models: list[str] | None = None, converted_dir: Path | None = None,
                   converted_now: tuple[str, ...] = ()) -> DetectorSection:
    """Convert what is needed (unless options.converted_dir), then time every detector row.

    ``models``: the detectors to time (default: options.detector_models); ``converted_dir`` and
    ``converted_now``: where the suite has just converted ``converted_now`` (not converted again).
    """
    from facezoo.registry import load_zoo
    from facezoo.tasks.detection import TASK

    registry = load_zoo()
    models = list(models if models is not None else options.detector_models)
    specs = {name: registry.get(name) for name in models}
    with_path = options.pipeline_detector in models
    wanted = list(dict.fromkeys([*models, *([options.pipeline_embedder] if with_path else [])]))
    yunets = [name for name in models if specs[name].architecture == "yunet"]
    section = DetectorSection(settings={
        "models": models,
        "weights": {name: _weights(registry.get(name)) for name in wanted},
        "sizes": [list(size) for size in options.detector_sizes],
        "photos": "facezoo.photos.composite at each size: the astronaut at 0.5× and mirrored at 0.35×, one cut by "
                  "the right border, and a generated face (BGR uint8, the same array for every runner)",
        "seconds_per_case": options.seconds, "min_iterations": options.detector_min_iterations,
        "iterations": options.detector_iterations, "warmup": max(options.warmup, 1),
        "rounds": options.detector_rounds, "turn_seconds": options.detector_turn_seconds,
        "formats": list(options.detector_formats) if options.detector_formats else None,
        "precisions": list(options.detector_precisions) if options.detector_precisions else None,
        "backends": list(options.detector_backends) if options.detector_backends else None,
        "decoding": {name: TASK.settings(spec) for name, spec in specs.items()},
    })
    converted, original = _prepare(options, console, section, wanted, converted_dir, converted_now, yunets)
    section.settings["converted_dir"] = str(converted)
    cases = latency_cases(options, converted, models)
    if not cases:
        section.errors.append(f"no converted detector files under {converted} for {', '.join(models)}")
    section.settings["load_average_start"] = _load_average()
    with _progress(console) as progress:
        _time_latency(options, section, cases, progress)
        if yunets and original is not None:
            section.settings["opencv_original"] = str(original)
            section.settings["opencv_model"] = yunets[0]
            _time_versus(options, section, [c for c in cases if c["model"] == yunets[0]], original,
                         section.settings["decoding"][yunets[0]], progress)
        if with_path:
            _time_photo_path(options, section, converted, progress)
    section.settings["load_average_end"] = _load_average()
    return section


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine shows in every figure."""
    import os

    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _weights(spec) -> str:
    from facezoo.standins import on_package_index

    if on_package_index(spec):
        return "real (the package index)"
    return "stand-in (real architecture, deterministic weights; the real file is not reachable here)"


def _progress(console):
    from facezoo.benchmark.suite import _progress as suite_progress

    return suite_progress(console)


# -- files ----------------------------------------------------------------------------------------
def _prepare(options, console, section: DetectorSection, wanted: list[str], converted_dir: Path | None,
             converted_now: tuple[str, ...], yunets: list[str]) -> tuple[Path, Path | None]:
    """The converted folder the rows are timed from, and YuNet's original file (for cv2)."""
    from facezoo.registry import load_zoo
    from facezoo.standins import build_standins, on_package_index

    registry = load_zoo()
    workdir = Path(options.workdir)
    if options.converted_dir is not None:  # time those files, convert nothing
        converted = Path(options.converted_dir)
    else:
        converted = Path(converted_dir) if converted_dir is not None else workdir / "converted"
        todo = [registry.get(name) for name in wanted if name not in converted_now]
        standin = [spec for spec in todo if not on_package_index(spec)]
        real = [spec for spec in todo if on_package_index(spec)]
        if standin:
            _convert_standins(options, console, section, standin, converted)
        if real:
            _convert_real(options, console, section, registry, real, converted)
    original = None
    if yunets:
        standins = build_standins(registry, workdir / "standins", [yunets[0]])
        original = standins.for_model(yunets[0])[0].path
    return converted, original


def _convert_standins(options, console, section: DetectorSection, specs, converted: Path) -> None:
    """The suite's own stand-in flow (build, serve on loopback, download, convert in a child)."""
    from facezoo.benchmark.machine import describe_machine
    from facezoo.benchmark.peak import PeakMeasurement
    from facezoo.benchmark.suite import SuiteRun, _convert
    from facezoo.errors import FacezooError

    run = SuiteRun(options, describe_machine(options.machine_name), PeakMeasurement(0.0, "not measured", {}, 0), specs)
    try:
        produced = _convert(run, console)
    except FacezooError as exc:
        section.errors.append(f"stand-ins of {', '.join(s.name for s in specs)}: {exc}")
        return
    section.conversions += [{**asdict(c), "weights": "stand-in"} for c in run.conversions]
    _note_failed(section, run.conversions)
    if Path(produced) != converted:
        section.errors.append(f"stand-ins were converted into {produced}, not {converted}")


def _convert_real(options, console, section: DetectorSection, registry, specs, converted: Path) -> None:
    """Real weights reachable from here (the package index): downloaded, then converted in a child."""
    from facezoo.benchmark.suite.conversion import convert_in_subprocess
    from facezoo.downloader import download_models

    workdir = Path(options.workdir)
    downloads = workdir / "models"
    console.print(f"downloading {', '.join(s.name for s in specs)} (real weights) into {downloads}", highlight=False)
    summary = download_models(specs, output_dir=downloads, cache_dir=workdir / "cache", progress="none", timeout=60.0)
    failed = {f.model for f in summary.failed}
    for item in summary.failed:
        section.errors.append(f"download of {item.model}/{item.file} failed: {item.error}")
    figures = []
    with _progress(console) as progress:
        task = progress.add_task("convert", total=len(specs))
        for spec in specs:
            progress.update(task, description=f"convert {spec.name}")
            if spec.name not in failed:
                figures.append(convert_in_subprocess(spec.name, registry.path, downloads, converted, workdir / "logs"))
            progress.advance(task)
    section.conversions += [{**asdict(c), "weights": "real"} for c in figures]
    _note_failed(section, figures)


def _note_failed(section: DetectorSection, figures) -> None:
    for figure in figures:
        if not figure.passed:
            section.errors.append(f"conversion of {figure.model} failed: {figure.error} (log: {figure.log})")


# -- measurements ---------------------------------------------------------------------------------
def latency_cases(options, converted: Path, models: list[str]) -> list[dict]:
    """Every converted file of each detector × every backend that runs it (after the filters)."""
    from facezoo.runtime.resolve import find_artifacts

    cases = []
    for model in models:
        for artifact in find_artifacts(model, converted, options.detector_formats, options.detector_precisions):
            for backend in BACKEND_ORDER:
                if artifact.path.suffix not in SUFFIXES_FOR_BACKEND[backend]:
                    continue
                if options.detector_backends and backend not in options.detector_backends:
                    continue
                cases.append({"model": model, "path": str(artifact.path), "format": artifact.format,
                              "precision": artifact.precision, "backend": backend})
    return cases


def _timing(options, seconds: float, min_iterations: int) -> dict:
    return {"seconds": seconds, "min_iterations": min_iterations, "iterations": options.detector_iterations,
            "warmup": max(options.warmup, 1)}


def _time_latency(options, section: DetectorSection, cases: list[dict], progress) -> None:
    from facezoo.benchmark.suite.worker import run_job

    sizes = [list(size) for size in options.detector_sizes]
    task = progress.add_task("detectors", total=len(cases) * len(sizes))
    for backend in dict.fromkeys(case["backend"] for case in cases):  # one child per library
        group = [case for case in cases if case["backend"] == backend]
        rows: list[dict] = []

        def collect(row: dict) -> None:
            rows.append(row)
            progress.update(task, advance=1, description=f"{row['model']} · {_file(row)} · {row['backend']} · "
                                                         f"{size_label(row['width'], row['height'])}")

        _, error = run_job({"kind": "detector", "task": "latency", "cases": group, "sizes": sizes,
                            "timing": _timing(options, options.seconds, options.detector_min_iterations)}, collect)
        done = {(r["path"], r["backend"], r["width"], r["height"]) for r in rows}
        for case in group:  # what a crashed child did not reach
            for width, height in sizes:
                if (case["path"], case["backend"], width, height) not in done:
                    rows.append({**case, "width": width, "height": height,
                                 "error": error or "benchmark worker returned no result"})
                    progress.advance(task)
        section.latency += rows
    section.latency.sort(key=_row_order)


def _row_order(row: dict) -> tuple:
    precisions = ("FP32", "FP16", "BF16", "INT8")
    return (row["model"], row["width"] * row["height"],
            precisions.index(row["precision"]) if row["precision"] in precisions else 9,
            ("openvino", "onnx", "mindir").index(row["format"]) if row["format"] in ("openvino", "onnx", "mindir") else 9,
            BACKEND_ORDER.index(row["backend"]) if row["backend"] in BACKEND_ORDER else 9)


def _time_versus(options, section: DetectorSection, cases: list[dict], original: Path, decoding: dict, progress) -> None:
    from facezoo.benchmark.suite.worker import run_job

    task = progress.add_task(f"YuNet against {OPENCV}", total=len(options.detector_sizes))
    job = {"kind": "detector", "task": "versus_opencv", "original": str(original), "artifacts": cases,
           "sizes": [list(size) for size in options.detector_sizes], "rounds": options.detector_rounds,
           "settings": decoding, "timing": _timing(options, options.detector_turn_seconds, 3)}

    def collect(line: dict) -> None:
        section.versus.append(line)
        progress.advance(task)

    _, error = run_job(job, collect)
    if error:
        section.errors.append(f"YuNet against {OPENCV}: {error}")


def _time_photo_path(options, section: DetectorSection, converted: Path, progress) -> None:
    from facezoo.benchmark.suite.worker import run_job
    from facezoo.runtime.resolve import find_artifacts

    chosen = {}
    for role, name in (("detector", options.pipeline_detector), ("embedder", options.pipeline_embedder)):
        found = find_artifacts(name, converted, [options.pipeline_format], [options.pipeline_precision])
        if not found:
            section.errors.append(f"photo path: no converted {options.pipeline_format} {options.pipeline_precision} "
                                  f"{name} under {converted}")
            return
        chosen[role] = str(found[0].path)
    width, height = options.detector_sizes[0]
    section.settings["photo_path"] = {
        "detector": options.pipeline_detector, "embedder": options.pipeline_embedder,
        "format": options.pipeline_format, "precision": options.pipeline_precision, "backend": options.pipeline_backend,
        "files": chosen, "photo": f"the {size_label(width, height)} composite as a JPEG (quality {JPEG_QUALITY})",
        "path": "decode (cv2.imdecode) → detect → the largest face → align (5 points) → embed: FacePipeline.photo",
    }
    task = progress.add_task("photo path", total=1)
    lines, error = run_job({"kind": "detector", "task": "photo_path", **chosen, "backend": options.pipeline_backend,
                            "size": [width, height], "jpeg_quality": JPEG_QUALITY, "rounds": options.detector_rounds,
                            "timing": _timing(options, options.detector_turn_seconds, 3)})
    progress.advance(task)
    if lines:
        section.photo_path = lines[0]
    if error:
        section.errors.append(f"photo path: {error}")


# -- targets, document, markdown ------------------------------------------------------------------
def _file(row: dict) -> str:
    return f"{FORMAT_NAMES.get(row['format'], row['format'])} {row['precision']}"


def _runner_label(runner: dict) -> str:
    if runner["runner"] == OPENCV:
        return f"{OPENCV} (original ONNX · OpenCV DNN)"
    return f"facezoo {_file(runner)} · {runner['backend']}"


def versus_ratios(line: dict) -> dict[str, float | None]:
    """Each facezoo runner's photos/s over cv2's: the median of the per-round ratios."""
    opencv = next((r for r in line["runners"] if r["runner"] == OPENCV), None)
    if opencv is None:
        return {}
    return {_runner_label(r): median_ratio(r["runs"], opencv["runs"]) for r in line["runners"] if r["runner"] != OPENCV}


def photo_path_ratio(path: dict) -> tuple[float, float]:
    """(whole-path photos/s over 1 / sum of each stage's mean time alone, that bound in photos/s)."""
    bound = 1e3 / sum(path["stages"][name]["mean_ms"] for name in STAGES)
    return path["whole"]["photos_per_s"] / bound, bound


def detector_targets(section: DetectorSection) -> list[TargetCheck]:
    checks = []
    for line in section.versus:
        size = size_label(line["width"], line["height"])
        target = f"YuNet {size}: facezoo at least as fast as {OPENCV} (same ONNX file, same photo)"
        ratios = {label: ratio for label, ratio in versus_ratios(line).items() if ratio is not None}
        if not ratios:
            checks.append(TargetCheck(target, "not measured", None, "; ".join(line["errors"]) or "no pair ran"))
            continue
        best = max(ratios, key=ratios.get)
        ratio = ratios[best]
        opencv = next(r for r in line["runners"] if r["runner"] == OPENCV)
        fastest = next(r for r in line["runners"] if _runner_label(r) == best)
        met = ratio >= OPENCV_TARGET
        checks.append(TargetCheck(
            target,
            f"best: {best}, {fastest['photos_per_s']:.1f} photos/s = {ratio:.2f}× cv2's {opencv['photos_per_s']:.1f} "
            f"(median of {line['rounds']} interleaved rounds)", met,
            f"ahead by {100 * (ratio - 1):.1f} %" if met else
            f"missed by {100 * (1 - ratio):.1f} % of cv2's rate (p50 {fastest['p50_ms']:.1f} ms against "
            f"{opencv['p50_ms']:.1f} ms)"))
    if not section.versus and section.settings.get("opencv_original"):
        checks.append(TargetCheck(f"YuNet: facezoo at least as fast as {OPENCV}", "not measured", None,
                                  "; ".join(e for e in section.errors if OPENCV in e) or "no result"))
    target = f"photo path: whole-path throughput ≥ {PATH_TARGET:.0%} of 1 / (sum of each stage's time alone)"
    path = section.photo_path
    if path:
        ratio, bound = photo_path_ratio(path)
        whole = path["whole"]
        low, high = min(path["round_ratios"]), max(path["round_ratios"])
        met = ratio >= PATH_TARGET
        checks.append(TargetCheck(
            target,
            f"{100 * ratio:.1f} % ({whole['photos_per_s']:.1f} of {bound:.1f} photos/s; p50 {whole['p50_ms']:.1f} ms, "
            f"p99 {whole['p99_ms']:.1f} ms; rounds {100 * low:.1f}–{100 * high:.1f} %)", met,
            "" if met else f"missed by {100 * (PATH_TARGET - ratio):.1f} points"))
    elif "photo_path" in section.settings or any(e.startswith("photo path") for e in section.errors):
        checks.append(TargetCheck(target, "not measured", None,
                                  "; ".join(e for e in section.errors if e.startswith("photo path")) or "no result"))
    return checks


def detectors_document(section: DetectorSection) -> dict:
    return asdict(section)


def section_from_document(document: dict | None) -> DetectorSection | None:
    if not document:
        return None
    return DetectorSection(**{key: document[key] for key in DetectorSection.__dataclass_fields__ if key in document})


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *["| " + " | ".join(row) + " |" for row in rows]]


def _met(value: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[value]


def detectors_markdown(section: DetectorSection) -> list[str]:
    settings = section.settings
    weights = settings.get("weights", {})
    timing = (f"exactly {settings['iterations']} timed photos" if settings.get("iterations") else
              f"at least {settings.get('min_iterations')} timed photos and {settings.get('seconds_per_case'):g} s")
    parts = ["## Detector latency: one photo at a time", "",
             f"Each row: load, first photo, {settings.get('warmup')} untimed warm-up photo(s), then {timing}, one "
             "after another (photos/s = 1 / mean latency). The whole detector is timed: the net(s) and facezoo's "
             "decoding (YuNet: pad to a multiple of 32, one run, decode, NMS; MTCNN: the P-Net pyramid, R-Net, "
             f"O-Net, NMS between them). Photos: {settings.get('photos', '')}.", ""]
    rows = []
    for row in section.latency:
        head = [row["model"], _short(weights.get(row["model"], "")), _file(row), row["backend"],
                size_label(row["width"], row["height"])]
        if row.get("error"):
            rows.append(head + ["failed", "", "", "", "", "", row["error"][:160]])
            continue
        rows.append(head + [f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row['photos_per_s']:.1f}",
                            f"{row['first_ms']:.0f}", str(row["iterations"]), str(row["faces"]), ""])
    parts += [*_table(["model", "weights", "file", "backend", "photo", "p50 ms", "p99 ms", "photos/s", "first ms",
                       "photos timed", "faces", "error"], rows), ""]
    if section.versus:
        parts += [f"## YuNet: facezoo against {OPENCV}", "",
                  f"{OPENCV} (OpenCV {section.versus[0].get('opencv')}; "
                  f"{section.versus[0].get('opencv_threads')} threads) runs YuNet's original ONNX file "
                  f"(`{Path(settings.get('opencv_original', '')).name}`, the stand-in), facezoo each of its converted "
                  "files on each backend that runs it, with the same decoding settings "
                  f"({_decoding(settings, settings.get('opencv_model', 'yunet'))}), on the same photo. All are loaded in one process and take "
                  f"turns, {settings.get('rounds')} rounds of {_turn(settings)} each, the order reversed every "
                  "other round; × cv2 is the median of the per-round ratios.", ""]
        for line in section.versus:
            ratios = versus_ratios(line)
            rows = []
            for runner in sorted(line["runners"], key=lambda r: (r["runner"] != OPENCV, -r["photos_per_s"])):
                label = _runner_label(runner)
                ratio = ratios.get(label)
                rows.append([label, f"{runner['p50_ms']:.2f}", f"{runner['p99_ms']:.2f}", f"{runner['photos_per_s']:.1f}",
                             "1 (reference)" if runner["runner"] == OPENCV else (f"{ratio:.2f}×" if ratio else "-"),
                             f"{min(runner['runs']):.1f}–{max(runner['runs']):.1f}", str(runner["faces"])])
            parts += [f"### {size_label(line['width'], line['height'])}", "",
                      *_table(["runner", "p50 ms", "p99 ms", "photos/s", "× cv2", "photos/s by round", "faces"], rows),
                      ""]
            parts += [f"- failed: {error}" for error in line.get("errors", [])]
            if line.get("errors"):
                parts.append("")
    path = section.photo_path
    if path:
        chosen = settings.get("photo_path", {})
        ratio, bound = photo_path_ratio(path)
        detector, embedder = chosen.get("detector", ""), chosen.get("embedder", "")
        what = {"decode": "cv2.imdecode of the JPEG", "detect": f"{detector} ({_short(weights.get(detector, ''))} weights)",
                "align": "5-point similarity warp to the embedder's size",
                "embed": f"{embedder} ({_short(weights.get(embedder, ''))} weights), one face"}
        rows = [[name, what[name], f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['mean_ms']:.2f}",
                 f"{s['photos_per_s']:.1f}"] for name, s in ((n, path["stages"][n]) for n in STAGES)]
        total = sum(path["stages"][name]["mean_ms"] for name in STAGES)
        whole = path["whole"]
        rows += [["sum of the stages alone", "", "", "", f"{total:.2f}", f"{bound:.1f}"],
                 ["**whole path**", chosen.get("path", ""), f"{whole['p50_ms']:.2f}", f"{whole['p99_ms']:.2f}",
                  f"{whole['mean_ms']:.2f}", f"**{whole['photos_per_s']:.1f}**"]]
        parts += ["## The photo path: decode, detect, align, embed", "",
                  f"{chosen.get('photo', '')} ({path['jpeg_bytes']} bytes; {path['faces']} faces found, the largest "
                  f"embedded); {_file(chosen) if chosen else ''} files on {chosen.get('backend', '')}. Each stage is "
                  f"timed alone on its own input, then the whole path; {len(path['round_ratios'])} rounds of "
                  f"{_turn(settings)} per stage and for the whole path, laps pooled over the rounds.", "",
                  *_table(["stage", "what", "p50 ms", "p99 ms", "mean ms", "photos/s"], rows), "",
                  f"Whole path / (1 / sum of the stages alone): **{100 * ratio:.1f} %** (by round: "
                  f"{', '.join(f'{100 * r:.1f} %' for r in path['round_ratios'])}).", ""]
    if section.conversions:
        parts += ["## Conversion of the section's files", "",
                  *_table(["model", "weights", "seconds", "files", "result"],
                          [[c["model"], c.get("weights", ""), f"{c['seconds']:.1f}", str(c["artifacts"]),
                            "ok" if c["passed"] else f"failed: {c['error']}"] for c in section.conversions]), ""]
    for error in section.errors:
        parts += [f"- failed: {error}", ""]
    return parts


def _loads(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "not read"


def _turn(settings: dict) -> str:
    if settings.get("iterations"):
        return f"exactly {settings['iterations']} photos"
    return f"{settings.get('turn_seconds'):g} s (at least 3 photos)"


def _short(weights: str) -> str:
    return weights.split(" (")[0]


def _decoding(settings: dict, model: str) -> str:
    decoding = settings.get("decoding", {}).get(model, {})
    return ", ".join(f"{k} {v}" for k, v in decoding.items())


def write_detectors_report(machine, section: DetectorSection, results_dir: Path, command: str = "") -> dict[str, Path]:
    """`<results_dir>/<machine>-detectors.{json,md}`."""
    out = Path(results_dir)
    targets = detector_targets(section)
    document = {"schema": SCHEMA, "machine": asdict(machine), "detectors": detectors_document(section),
                "targets": [asdict(t) for t in targets], "command": command or "python benchmarks/run.py --detectors-only"}
    paths = {"detectors-json": write_json(document, out / f"{machine.name}-detectors.json")}
    paths["detectors-markdown"] = write_bytes_atomic(out / f"{machine.name}-detectors.md",
                                                     "\n".join(_page(machine, section, targets, document["command"])).encode())
    return paths


def _page(machine, section: DetectorSection, targets: list[TargetCheck], command: str) -> list[str]:
    weights = section.settings.get("weights", {})
    return [
        f"# facezoo detector benchmarks: {machine.name}", "",
        f"Measured {machine.date} by `{command}`. Weights: "
        + "; ".join(f"{name}: {kind}" for name, kind in weights.items())
        + ". Speed does not depend on weight values, except that a detector's decoding works on the candidates "
          "its nets find (MTCNN's R- and O-Net run on P-Net's boxes), so the real MTCNN's rows are its own.", "",
        f"- CPU: {machine.cpu_model}, {machine.usable_cpus} usable of {machine.logical_cpus} logical cores"
        f"{' (virtual machine)' if machine.virtualized else ''}, {machine.memory_gib} GiB; ISA: {', '.join(machine.isa)}",
        f"- {machine.os}, Python {machine.python}; " + ", ".join(f"{k} {v}" for k, v in machine.libraries.items()),
        f"- MindSpore's oneDNN: {machine.environment.get('mindspore_onednn', '?')}",
        f"- Load average (1, 5, 15 min) before the rows: {_loads(section.settings.get('load_average_start'))}; after: "
        f"{_loads(section.settings.get('load_average_end'))} (the rows keep up to {machine.usable_cpus} cores busy; "
        "a load well above that means other work shared the cores)", "",
        "## Targets", "",
        *_table(["target", "measured", "result", "why / by how much"],
                [[t.target, t.measured, _met(t.met), t.note] for t in targets]), "",
        *detectors_markdown(section),
    ]


def run_detectors_only(options, console=None) -> dict[str, Path]:
    """Only the detector rows, into `<machine>-detectors.{json,md}` (the full report is left alone)."""
    from rich.console import Console

    from facezoo.benchmark.machine import describe_machine

    console = console or Console(stderr=True)
    machine = describe_machine(options.machine_name)
    console.print(f"machine: {machine.name} ({machine.cpu_model}, {machine.usable_cpus} cores): detector rows",
                  highlight=False)
    section = time_detectors(options, console)
    return write_detectors_report(machine, section, options.results_dir)


def rerender_detectors(json_path: Path, results_dir: Path | None = None) -> dict[str, Path]:
    """Write `<machine>-detectors.md` again from its JSON (after a change to the report)."""
    import json

    from facezoo.benchmark.machine import MachineInfo

    document = json.loads(Path(json_path).read_text(encoding="utf-8"))
    return write_detectors_report(MachineInfo(**document["machine"]), section_from_document(document["detectors"]),
                                  Path(results_dir or Path(json_path).parent), document.get("command", ""))


__all__ = ["DetectorSection", "OPENCV_TARGET", "PATH_TARGET", "detector_targets", "detectors_markdown",
           "latency_cases", "photo_path_ratio", "rerender_detectors", "run_detectors_only", "selected_detectors",
           "time_detectors", "versus_ratios", "write_detectors_report"]
