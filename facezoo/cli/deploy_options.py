"""Options shared by `serve`, `export` and `embed-dataset`: which converted file to take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.errors import FacezooError
from facezoo.registry import PRECISIONS
from facezoo.formats import PREFERRED
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR

ConvertedDir = Annotated[
    Path, typer.Option("-c", "--converted-dir", "--converted_dir", help="Where zoo names are looked up.")
]
FormatOption = Annotated[
    Optional[str], typer.Option("--format", help=f"{' | '.join(PREFERRED)} (for zoo names).")
]
PrecisionOption = Annotated[
    Optional[str], typer.Option("--precision", help=f"{' | '.join(PRECISIONS)} (for zoo names).")
]
DeviceOption = Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")]

__all__ = ["ConvertedDir", "DEFAULT_CONVERTED_DIR", "DeviceOption", "FormatOption",
           "PrecisionOption", "check_format", "check_precision"]


def check_format(fmt: str | None, allowed: tuple[str, ...] = PREFERRED) -> str | None:
    if fmt is None:
        return None
    if fmt.lower() not in allowed:
        raise FacezooError(f"--format: expected one of {', '.join(allowed)}, got {fmt!r}")
    return fmt.lower()


def check_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    if precision.upper() not in PRECISIONS:
        raise FacezooError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision.upper()


def check_positive(value: float, option: str, minimum: float = 1) -> None:
    if value < minimum:
        raise FacezooError(f"{option}: must be at least {minimum:g}, got {value:g}")
