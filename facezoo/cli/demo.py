"""`facezoo demo`: the whole job end to end on stand-ins served over loopback HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from facezoo.cli.common import ZooOption, console, err_console, open_zoo, reports_errors, split_csv
from facezoo.cli.convert import run_conversions, show_results
from facezoo.conversion import ConversionRequest
from facezoo.errors import FacezooError
from facezoo.registry import DEFAULT_PRECISIONS, FORMATS


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@reports_errors
def demo(
    names: Annotated[Optional[list[str]], typer.Argument(help="Models (patterns); default: every model.")] = None,
    workdir: Annotated[Path, typer.Option("--workdir", help="Where stand-ins, downloads and results go.")] = Path(
        "facezoo-demo"
    ),
    formats: Annotated[str, typer.Option("--formats")] = ",".join(FORMATS),
    precisions: Annotated[str, typer.Option("--precisions")] = ",".join(DEFAULT_PRECISIONS),
    jobs: Annotated[int, typer.Option("-j", "--jobs", help="Models converted at once.")] = 1,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run `facezoo check` on the results.")] = True,
    check_samples: Annotated[int, typer.Option("--check-samples", help="Faces per model for the check.")] = 6,
    zoo: ZooOption = None,
) -> None:
    """Build stand-ins, serve them on 127.0.0.1, download, convert and validate them."""
    from facezoo.downloader import download_models
    from facezoo.standins import build_standins, on_package_index
    from facezoo.standins.server import StandinServer

    registry = open_zoo(zoo)
    specs = registry.select(names) if names else registry.models
    real = [spec for spec in specs if on_package_index(spec)]
    console.print(
        "[bold]facezoo demo[/] — on STAND-IN checkpoints (real formats and parameter names, "
        "deterministic weights); no figure below is a published model's accuracy."
        + (f" Real weights from the package index: {', '.join(s.name for s in real)}." if real else ""),
        highlight=False,
    )
    standin_root = workdir / "standins"
    with StandinServer(standin_root) as server:
        console.print(f"building stand-ins in {standin_root}, serving them at {server.url}", highlight=False)
        standins = build_standins(registry, standin_root, [s.name for s in specs if s not in real], base_url=server.url)
        standin_zoo = standins.zoo()
        chosen = [spec if spec in real else standin_zoo.get(spec.name) for spec in specs]
        summary = download_models(
            chosen, output_dir=workdir / "models", cache_dir=workdir / "cache", progress="rich", timeout=60.0
        )
    if summary.failed:
        raise FacezooError("download failed: " + ", ".join(f"{f.model}/{f.file}" for f in summary.failed))
    requests = [
        ConversionRequest(spec, workdir / "models", workdir / "converted", split_csv(formats), split_csv(precisions))
        for spec in chosen
    ]
    results = run_conversions(requests, jobs)
    show_results(results)
    converted = [spec for spec, result in zip(chosen, results) if result.published]  # what was published
    reports = []
    if check and converted:
        from facezoo.accuracy import check_models, show_agreement

        console.print("checking converted models against the originals (facezoo check)")
        reports = check_models(converted, workdir / "models", workdir / "converted", samples=check_samples)
        show_agreement(reports, console=console)
    table = Table(title="facezoo demo summary (stand-in weights)")
    agreement = {report.model: report for report in reports}
    for column in ("model", "stand-in", "download", "convert", "worst cosine FP32", "worst cosine FP16", "check"):
        table.add_column(column)
    for spec, result in zip(chosen, results):
        worst = {
            p: min((c.metric("min_cosine") for c in result.checks if c.precision == p), default=float("nan"))
            for p in ("FP32", "FP16")
        }
        fetched = {f.status for f in summary.for_model(spec.name)}
        table.add_row(
            spec.name,
            "real" if spec in real else "built" if spec.name in standins.built else "reused",
            ", ".join(sorted(fetched)),
            f"[green]ok[/] {result.seconds:.0f} s" if result.passed else "[red]failed[/]",
            f"{worst['FP32']:.7f}",
            f"{worst['FP16']:.5f}",
            _check_cell(agreement.get(spec.name)),
        )
    console.print(table)
    published = {result.model for result in results if result.published}
    if PHOTO_DETECTOR in published and PHOTO_EMBEDDER in published:
        photo_path(workdir)
    failed = [r for r in results if not r.passed]
    for result in failed:
        err_console.print(f"[red]{result.model}[/]: {escape(str(result.error))}", highlight=False, soft_wrap=True)
    unchecked = [r.model for r in reports if not r.passed]
    if unchecked:
        err_console.print(f"[red]check failed[/]: {', '.join(unchecked)}")
    if failed or unchecked:
        raise typer.Exit(1)
    console.print(f"converted models are in {workdir / 'converted'}", highlight=False)


PHOTO_DETECTOR, PHOTO_EMBEDDER = "mtcnn", "mindface-arcface-mobilefacenet"


def photo_path(workdir: Path) -> None:
    """A real photo through the real MTCNN: detect, draw, align, embed (the embedder is a stand-in)."""
    import cv2

    from facezoo.atomic import write_bytes_atomic
    from facezoo.photos import ASTRONAUT, astronaut
    from facezoo.preprocessing import align_face
    from facezoo.runtime import Detector, Embedder, FacePipeline
    from facezoo.runtime.drawing import draw_faces

    converted = workdir / "converted"
    out = workdir / "photo"
    out.mkdir(parents=True, exist_ok=True)
    photo = astronaut()
    pipeline = FacePipeline(Detector(PHOTO_DETECTOR, converted_dir=converted), Embedder(PHOTO_EMBEDDER, converted_dir=converted))
    try:
        found = pipeline.photo(photo, ASTRONAUT.name, all_faces=True)
    finally:
        pipeline.close()
    write_bytes_atomic(out / "astronaut.faces.jpg", cv2.imencode(".jpg", draw_faces(photo, found.faces))[1].tobytes())
    table = Table(title=f"the photo path: {ASTRONAUT.name} (scikit-image's astronaut, public domain) → "
                        f"{PHOTO_DETECTOR} (real weights) → aligned 112×112 → {PHOTO_EMBEDDER} (stand-in)")
    for column in ("face", "box (x1, y1, x2, y2)", "score", "left eye", "right eye", "aligned crop", "embedding"):
        table.add_column(column)
    for index, (face, embedding) in enumerate(zip(found.faces, found.embeddings)):
        crop = out / f"astronaut.face{index}.aligned.png"
        write_bytes_atomic(crop, cv2.imencode(".png", align_face(photo, face.landmarks, (112, 112)))[1].tobytes())
        left, right = face.landmarks[0], face.landmarks[1]
        table.add_row(str(index), ", ".join(f"{v:.1f}" for v in face.box), f"{face.score:.4f}",
                      f"{left[0]:.1f}, {left[1]:.1f}", f"{right[0]:.1f}, {right[1]:.1f}", str(crop),
                      f"{len(embedding)}-d, |e| = {float((embedding ** 2).sum() ** 0.5):.3f}")
    console.print(table)
    console.print(f"drawn: {out / 'astronaut.faces.jpg'}", highlight=False)


def _check_cell(report) -> str:
    if report is None:
        return "-"
    return "[green]passed[/]" if report.passed else "[red]FAILED[/]"
