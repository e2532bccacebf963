"""`facezoo embed-dataset`: embed a folder of faces into Parquet with Ray Data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from facezoo.cli.common import console, err_console, reports_errors
from facezoo.cli.deploy_options import (
    DEFAULT_CONVERTED_DIR,
    ConvertedDir,
    DeviceOption,
    FormatOption,
    PrecisionOption,
    check_format,
    check_positive,
    check_precision,
)
from facezoo.errors import FacezooError

SHOWN_FAILURES = 20


def register(app: typer.Typer) -> None:
    app.command("embed-dataset")(embed_dataset)


@reports_errors
def embed_dataset(
    input_dir: Annotated[str, typer.Argument(metavar="INPUT_DIR", help="Folder of face images (or a URI Ray reads).")],
    model: Annotated[str, typer.Option("--model", help="A converted zoo model or a converted file.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Parquet dataset to write (a folder of files).")],
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    landmarks: Annotated[
        Optional[Path], typer.Option("--landmarks", help="JSON {image path: list of 5×2 points per face}.")
    ] = None,
    detector: Annotated[
        Optional[str], typer.Option("--detector", help="A converted face detector: photos in, one row per face found "
                                    "(with its box, score and landmarks); a photo with no face is an error row.")
    ] = None,
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", help="Run on this Ray cluster (default: a local Ray).")
    ] = None,
    actors: Annotated[int, typer.Option("--actors", help="Embedder actors (each loads the model once).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 32,
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray.")] = None,
    object_store_mb: Annotated[
        Optional[int], typer.Option("--object-store-mb", help="Object store of the local Ray, MiB.")
    ] = None,
) -> None:
    """Embed every face under INPUT_DIR with Ray Data and write path, face, embedding (and error) rows.

    Images must be aligned crops of the model's size, or --landmarks gives each face's 5 points, or
    --detector finds every face in each photo (one row per face, with box, score and landmarks).
    A corrupt or unaligned image is reported (its row carries the error); every good row is written,
    and the exit status is then 2.
    """
    from facezoo.batch import EmbedJob, run_embed_job

    check_positive(actors, "--actors")
    check_positive(batch_size, "--batch-size")
    if ray_address and (num_cpus or object_store_mb):
        raise FacezooError("--num-cpus and --object-store-mb size a local Ray; a cluster (--ray-address) has its own")
    job = EmbedJob(input_dir, model, output, Path(converted_dir), check_format(fmt), check_precision(precision), device,
                   landmarks, detector, ray_address, actors, batch_size, num_cpus, object_store_mb)
    summary = run_embed_job(job, say=lambda line: console.print(line, highlight=False))
    console.print(f"{summary.embedded} embeddings of {summary.images} images written to {summary.output} "
                  f"in {summary.seconds:.1f} s ({summary.throughput:.1f} faces/s)", highlight=False)
    if summary.failures:
        err_console.print(f"[bold red]{len(summary.failures)} failed[/] (rows with an error, no embedding):",
                          highlight=False)
        for path, face, error in summary.failures[:SHOWN_FAILURES]:
            where = escape(path) + (f" face {face}" if face >= 0 else "")
            err_console.print(f"  {where}: {escape(error)}", highlight=False, soft_wrap=True)
        if len(summary.failures) > SHOWN_FAILURES:
            err_console.print(f"  … and {len(summary.failures) - SHOWN_FAILURES} more (the 'error' column)")
        raise typer.Exit(2)  # the good rows are written; a script still learns that some failed
