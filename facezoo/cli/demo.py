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
    from facezoo.standins import build_standins
    from facezoo.standins.server import StandinServer

    registry = open_zoo(zoo)
    specs = registry.select(names) if names else registry.models
    console.print(
        "[bold]facezoo demo[/] — on STAND-IN checkpoints (real formats and parameter names, "
        "deterministic weights); no figure below is a published model's accuracy.",
        highlight=False,
    )
    standin_root = workdir / "standins"
    with StandinServer(standin_root) as server:
        console.print(f"building stand-ins in {standin_root}, serving them at {server.url}", highlight=False)
        standins = build_standins(registry, standin_root, [s.name for s in specs], base_url=server.url)
        standin_zoo = standins.zoo()
        chosen = [standin_zoo.get(spec.name) for spec in specs]
        summary = download_models(
            chosen, output_dir=workdir / "models", cache_dir=workdir / "cache", progress="rich", timeout=30.0
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
            "built" if spec.name in standins.built else "reused",
            ", ".join(sorted(fetched)),
            f"[green]ok[/] {result.seconds:.0f} s" if result.passed else "[red]failed[/]",
            f"{worst['FP32']:.7f}",
            f"{worst['FP16']:.5f}",
            _check_cell(agreement.get(spec.name)),
        )
    console.print(table)
    failed = [r for r in results if not r.passed]
    for result in failed:
        err_console.print(f"[red]{result.model}[/]: {escape(str(result.error))}", highlight=False, soft_wrap=True)
    unchecked = [r.model for r in reports if not r.passed]
    if unchecked:
        err_console.print(f"[red]check failed[/]: {', '.join(unchecked)}")
    if failed or unchecked:
        raise typer.Exit(1)
    console.print(f"converted models are in {workdir / 'converted'}", highlight=False)


def _check_cell(report) -> str:
    if report is None:
        return "-"
    return "[green]passed[/]" if report.passed else "[red]FAILED[/]"
