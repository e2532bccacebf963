"""`facezoo check`: every converted artifact against the original model; exit 1 when one fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.cli.common import ZooOption, console, err_console, open_zoo, reports_errors, select_models, split_csv
from facezoo.errors import FacezooError
from facezoo.registry import FORMATS, PRECISIONS


def register(app: typer.Typer) -> None:
    app.command("check")(check)


@reports_errors
def check(
    names: Annotated[Optional[list[str]], typer.Argument(help="Model names or fnmatch patterns.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model of the registry.")] = False,
    download_dir: Annotated[
        Path, typer.Option("-d", "--download-dir", "--download_dir", help="Where `facezoo download` put the originals.")
    ] = Path("models"),
    converted_dir: Annotated[
        Path, typer.Option("-c", "--converted-dir", "--converted_dir", help="Where `facezoo convert` put the artifacts.")
    ] = Path("converted"),
    images: Annotated[
        Optional[Path],
        typer.Option("--images", help="Folder of real face images (jpg/png, aligned crops or not) to check on too."),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=2, help="Faces in all: real images first, then generated probes.")
    ] = 8,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the machine report here.")] = None,
    threshold_fp32: Annotated[
        Optional[float], typer.Option("--threshold-fp32", help="Min cosine for FP32 artifacts (registry default 0.99999).")
    ] = None,
    threshold_fp16: Annotated[
        Optional[float], typer.Option("--threshold-fp16", help="Min cosine for FP16 artifacts (registry default 0.999).")
    ] = None,
    max_flips: Annotated[
        int, typer.Option("--max-flips", min=0, help="Same/different decisions an artifact may flip (default 0).")
    ] = 0,
    formats: Annotated[
        Optional[str], typer.Option("--formats", help="Only these formats (comma-separated: mindir,onnx,openvino).")
    ] = None,
    precisions: Annotated[
        Optional[str], typer.Option("--precisions", help=f"Only these precisions (comma-separated: {','.join(PRECISIONS)}).")
    ] = None,
    int8_report: Annotated[
        bool, typer.Option("--int8-report", help="Also report which activation quantizers of each INT8 IR/ONNX carry "
                           "its error: relative noise per quantizer, and the output's min cosine with each of the "
                           "noisiest removed, on the gate's held-out faces.")
    ] = False,
    zoo: ZooOption = None,
) -> None:
    """Compare every converted artifact with the original model on the same faces; fail on any mismatch.

    Per artifact and backend: min/mean cosine, max absolute and relative error, a batch against the same faces run one at a time, and how many same/different decisions (over all pairs of faces) flip compared with the original. The decision threshold is the registry's verification_threshold, else the cosine that best separates the original's same- from different-identity pairs (midpoint of the widest gap).

    An artifact fails when it misses its precision's gate (FP32: cosine ≥ 0.99999, max relative error ≤ 0.001; FP16: cosine ≥ 0.999, max relative error ≤ 0.01; the registry's check_thresholds and --threshold-* set the cosine), when its batch and single runs differ by more than that gate, on any flipped decision (--max-flips allows some), or when it cannot be loaded or run.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from facezoo.accuracy.agreement import agreement_document, check_model, show_agreement, write_json_atomic

    targets = _targets(open_zoo(zoo), names, all_models, converted_dir)
    overrides = {"FP32": threshold_fp32, "FP16": threshold_fp16}
    reports = []
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[model]}[/]"), TextColumn("{task.description}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        for spec, original in targets:
            task = progress.add_task("starting", model=spec.name, total=1)
            reports.append(
                check_model(spec, download_dir, converted_dir, images, samples, overrides,
                            step=lambda text, t=task: progress.update(t, description=text),
                            formats=_choices(formats, FORMATS, "--formats"),
                            precisions=_choices(precisions, PRECISIONS, "--precisions"), max_flips=max_flips,
                            original=original)
            )
            progress.update(task, completed=1)
    show_agreement(reports, console)
    layer_reports = _int8_reports(targets, download_dir, converted_dir, formats) if int8_report else None
    if json_path is not None:
        document = agreement_document(reports)
        if layer_reports is not None:
            document["int8_reports"] = {model: [r.record() for r in found] for model, found in layer_reports.items()}
        write_json_atomic(json_path, document)
        console.print(f"report: {json_path}", highlight=False)
    failed = [r for r in reports if not r.passed]
    if failed:
        names = [f"{x.file} ({x.backend})" for r in failed for x in r.failed_results]
        names += [r.model for r in failed if r.error or not r.results]
        err_console.print("[bold red]FAILED:[/] " + ", ".join(names), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]all {sum(len(r.results) for r in reports)} artifact/backend checks passed[/]")


def _int8_reports(targets, download_dir: Path, converted_dir: Path, formats: str | None) -> dict:
    """`--int8-report`: each model's per-quantizer tables, printed; a model without INT8 files is an error."""
    from rich.table import Table

    from facezoo.quantization.diagnosis import int8_reports

    found = {}
    with err_console.status("INT8 report") as status:
        for spec, original in targets:
            found[spec.name] = int8_reports(spec, download_dir, converted_dir, _choices(formats, FORMATS, "--formats"),
                                            original, step=lambda text: status.update(text))
    for model, reports in found.items():
        for report in reports:
            console.print(f"[bold]{model} · {report.file}[/]: which quantizers carry the INT8 error (min cosine "
                          f"{report.min_cosine:.5f} on {report.faces} held-out faces, {report.quantizers} activation "
                          "quantizers)", highlight=False, soft_wrap=True)
            table = Table()
            for column in ("quantizer", "feeds", "relative noise", "min cosine without it"):
                table.add_column(column, overflow="fold")
            for row in report.rows:
                without = "-" if row.min_cosine_without is None else f"{row.min_cosine_without:.5f}"
                table.add_row(row.quantizer, row.feeds, f"{row.relative_noise:.2e}", without)
            console.print(table)
            shares = ", ".join(f"{kind} {v['noise_share']:.0%} ({v['quantizers']})" for kind, v in report.by_type.items())
            console.print(f"noise by the layer type fed (share of the summed relative noise, quantizers): {shares}",
                          highlight=False, soft_wrap=True)
    return found


def _targets(registry, names, all_models: bool, converted_dir: Path):
    """(entry, original file or None) per model: registry names, or converted folders whose model
    card records the entry they were made from (``convert --onnx FILE``)."""
    from facezoo.modelcard import converted_entry
    from facezoo.errors import RegistryError

    if all_models or not names:
        return [(spec, None) for spec in select_models(registry, names, None, all_models, None)]
    targets = []
    for name in names:
        try:
            targets += [(spec, None) for spec in registry.select(name)]
        except RegistryError:
            found = converted_entry(converted_dir, name)
            if found is None:
                raise
            targets.append(found)
    return targets


def _choices(value: str | None, allowed: tuple[str, ...], option: str) -> list[str] | None:
    if value is None:
        return None
    chosen = split_csv(value)
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise FacezooError(f"{option}: unknown value {', '.join(unknown) or repr(value)}; expected {', '.join(allowed)}")
    return chosen
