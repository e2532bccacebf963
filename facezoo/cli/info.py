"""`facezoo list` and `facezoo info`: what the registry holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from facezoo.cli.common import ZooOption, console, open_zoo, reports_errors
from facezoo.registry import dump_spec


def register(app: typer.Typer) -> None:
    app.command("list")(list_models)
    app.command("info")(info)


@reports_errors
def list_models(zoo: ZooOption = None) -> None:
    """Print the registry as a table."""
    registry = open_zoo(zoo)
    table = Table(title=f"facezoo models ({registry.path})")
    for column in ("name", "task", "framework", "architecture", "input", "outputs", "published accuracy"):
        table.add_column(column)
    for model in registry.models:
        contract = model.input
        size = "any size" if contract.dynamic_size else f"{contract.height}x{contract.width}"
        if model.parts and len(model.parts) > 1:
            size = "photo"  # each net's input is made from the photo (a pyramid, crops)
        shape = f"{contract.channels}x{size} {contract.channel_order}"
        outputs = (f"{model.output.dim}-d embedding" if not model.parts else
                   f"faces ({', '.join(p.name for p in model.parts)})" if len(model.parts) > 1 else "faces")
        accuracy = ", ".join(f"{a.dataset} {a.metric} {a.value:g}" for a in model.accuracy[:3])
        table.add_row(model.name, model.task_type.removeprefix("face_"), model.framework, model.architecture, shape,
                      outputs, accuracy)
    console.print(table)


@reports_errors
def info(
    name: Annotated[str, typer.Argument(help="Model name (case-insensitive).")],
    as_json: Annotated[bool, typer.Option("--json", help="Dump the whole entry as JSON.")] = False,
    zoo: ZooOption = None,
) -> None:
    """Show one registry entry (like omz_info_dumper)."""
    spec = open_zoo(zoo).get(name)
    data = dump_spec(spec)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, title=spec.name)
    for key, value in data.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    console.print(table)
