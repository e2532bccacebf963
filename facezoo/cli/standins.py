"""`facezoo standins`: stand-in files and a registry pointing at them, optionally served."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.cli.common import ZooOption, console, open_zoo, reports_errors


def register(app: typer.Typer) -> None:
    app.command("standins")(standins)


@reports_errors
def standins(
    names: Annotated[Optional[list[str]], typer.Argument(help="Models (patterns); default: every model.")] = None,
    output_dir: Annotated[Path, typer.Option("-o", "--output-dir", "--output_dir")] = Path("standins"),
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve the files on 127.0.0.1 over HTTP until interrupted.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve (0: any free one).")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    zoo: ZooOption = None,
) -> None:
    """Write stand-in checkpoints (real formats, upstream names, seeded weights) and their registry.

    The registry copy OUTPUT_DIR/model_zoo.yml points at the stand-ins (file:// URLs, or the
    loopback server with --serve): use it with --zoo or FACEZOO_ZOO to download and convert them.
    """
    from facezoo.standins import build_standins
    from facezoo.standins.server import StandinServer

    registry = open_zoo(zoo)
    if not serve:
        built = build_standins(registry, output_dir, names or None, seed=seed)
        console.print(f"stand-ins for {', '.join(built.models)} in {built.root}", highlight=False)
        console.print(f"registry: {built.zoo_path}  (export FACEZOO_ZOO={built.zoo_path})", highlight=False)
        return
    with StandinServer(output_dir.resolve(), port=port) as server:
        built = build_standins(registry, output_dir, names or None, seed=seed, base_url=server.url)
        console.print(f"serving stand-ins for {', '.join(built.models)} at {server.url}", highlight=False)
        console.print(f"registry: {built.zoo_path}  (export FACEZOO_ZOO={built.zoo_path}); Ctrl-C stops", highlight=False)
        while True:
            time.sleep(3600)
