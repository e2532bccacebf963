"""The table `facezoo convert` and `facezoo check` print: one row per record, the task's columns."""

from __future__ import annotations

from typing import Iterable

from facezoo.tasks import Column
from facezoo.validation.record import ArtifactCheck


def checks_table(title: str, columns: tuple[Column, ...], models: Iterable[tuple[str, list[ArtifactCheck], bool]],
                 verdicts: tuple[str, str] = ("[green]pass[/]", "[red]FAIL[/]")):
    """A rich Table of ``(model, its records, whether it failed before any)`` with ``columns``."""
    from rich.table import Table

    table = Table(title=title)
    for heading in ("model", "format", "precision", "backend"):
        table.add_column(heading)
    for column in columns:
        table.add_column(column.heading, justify="right")
    table.add_column("ok")
    for model, checks, failed in models:
        if failed:
            table.add_row(model, *["-"] * (len(columns) + 3), verdicts[1])
        for check in checks:
            record = check.as_dict()
            table.add_row(model, check.format, check.precision, check.backend,
                          *(column.render(record) for column in columns), verdicts[0] if check.passed else verdicts[1])
    return table


__all__ = ["checks_table"]
