"""The `facezoo` application: each command group registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="facezoo",
    help="Face-recognition models: download, convert, check, run and benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per command group; a module that is not written yet is simply absent.
COMMAND_MODULES = (
    "info", "standins", "download", "convert", "demo", "run", "detect", "check", "evaluate", "benchmark", "serve", "export",
    "embed_dataset", "gallery",
)

for _module in COMMAND_MODULES:
    try:
        importlib.import_module(f"facezoo.cli.{_module}").register(app)
    except ModuleNotFoundError as _exc:
        if _exc.name != f"facezoo.cli.{_module}":
            raise

if __name__ == "__main__":
    app()
