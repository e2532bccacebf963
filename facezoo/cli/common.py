"""Options and helpers shared by every subcommand."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from facezoo.errors import FacezooError
from facezoo.registry import Zoo, load_zoo


def _width() -> int | None:
    # Tables of results are wide: outside a terminal (logs, CI) do not fold them at 80 columns.
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160


console = Console(stderr=False, width=_width())
err_console = Console(stderr=True, width=_width())

ZooOption = Annotated[
    Optional[Path],
    typer.Option("--zoo", envvar="FACEZOO_ZOO", help="Registry file to use instead of the built-in model_zoo.yml."),
]

F = TypeVar("F", bound=Callable)


def reports_errors(func: F) -> F:
    """Turn facezoo errors into one red line and exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FacezooError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def open_zoo(zoo: Path | None) -> Zoo:
    return load_zoo(zoo)


def omz_argv(argv: list[str]) -> list[str]:
    """Accept Open Model Zoo spellings: `--output_dir` as `--output-dir`, `--name a,b` etc."""
    fixed = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            head, sep, tail = arg.partition("=")
            arg = head.replace("_", "-") + sep + tail
        fixed.append(arg)
    return fixed


def run_alias(command: str) -> None:
    """Entry point of the thin root scripts (downloader.py, converter.py)."""
    from facezoo.cli.main import app

    sys.argv = [sys.argv[0], command, *omz_argv(sys.argv[1:])]
    app(prog_name=f"{Path(sys.argv[0]).name}")


def select_models(zoo: Zoo, names: list[str] | None, name: str | None, all_models: bool, list_file: Path | None):
    """Models chosen by positional names, --name patterns, --list FILE or --all (OMZ style)."""
    from facezoo.errors import RegistryError

    patterns = list(names or [])
    if name:
        patterns.append(name)
    if list_file is not None:
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise RegistryError(f"{list_file}: cannot read model list: {exc.strerror}") from None
        patterns += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if all_models:
        return list(zoo.models)
    if not patterns:
        raise RegistryError("name some models: NAME…, --name PATTERNS, --list FILE or --all")
    return zoo.select(patterns)


def split_csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
