"""`facezoo download` (and `python downloader.py`): fetch, verify and cache the models' files."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from facezoo.cli.common import ZooOption, console, err_console, open_zoo, reports_errors
from facezoo.downloader import DEFAULT_TIMEOUT, DownloadSummary, download_models, import_file, mirrors_from_env
from facezoo.downloader.sources import candidates
from facezoo.errors import FacezooError
from facezoo.registry import ModelSpec, Zoo


class ProgressFormat(str, enum.Enum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("download")(download)


@reports_errors
def download(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(help="Models to fetch: names or fnmatch patterns, comma-separated too.", show_default=False),
    ] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Comma-separated fnmatch patterns (case-insensitive).")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model of the registry.")] = False,
    list_file: Annotated[
        Optional[Path], typer.Option("--list", help="A file with one pattern per line ('#' starts a comment).")
    ] = None,
    print_all: Annotated[bool, typer.Option("--print-all", "--print_all", help="Print every model name and exit.")] = False,
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", "--output_dir", help="Files go to OUTPUT_DIR/<model>/<file>.")
    ] = Path("models"),
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--cache-dir", "--cache_dir",
            help="Download cache (default: $FACEZOO_CACHE, else the user cache folder).",
            show_default=False,
        ),
    ] = None,
    num_attempts: Annotated[
        int, typer.Option("--num-attempts", "--num_attempts", min=1, help="Attempts per source.")
    ] = 3,
    jobs: Annotated[int, typer.Option("-j", "--jobs", min=1, help="Models fetched at once.")] = 1,
    precisions: Annotated[
        Optional[str], typer.Option("--precisions", help="Accepted for Open Model Zoo compatibility; ignored.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "--dry_run", help="Print what would be fetched and exit.")
    ] = False,
    mirror: Annotated[
        Optional[list[str]],
        typer.Option(
            "--mirror",
            help="URL or folder holding <model>/<file>, tried before the registry's sources; repeatable "
            "(default: $FACEZOO_MIRROR, separated like PATH).",
            show_default=False,
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use only the cache and local mirrors; never the network.")
    ] = False,
    import_path: Annotated[
        Optional[Path],
        typer.Option("--import", help="Verify a file obtained by hand and put it where a download would."),
    ] = None,
    progress_format: Annotated[
        ProgressFormat,
        typer.Option("--progress-format", "--progress_format", help="text: progress bars; json: one event per line."),
    ] = ProgressFormat.text,
    timeout: Annotated[
        float, typer.Option("--timeout", envvar="FACEZOO_TIMEOUT", min=0.01, help="Network timeout in seconds.")
    ] = DEFAULT_TIMEOUT,
    retry_delay: Annotated[
        float,
        typer.Option(
            "--retry-delay", "--retry_delay", envvar="FACEZOO_RETRY_DELAY", min=0.0,
            help="First pause between attempts, in seconds (doubles each time).",
        ),
    ] = 1.0,
    zoo: ZooOption = None,
) -> None:
    """Download models' files: verified (size, sha256), cached, resumable (like omz_downloader)."""
    del precisions  # downloads do not depend on the precision
    registry = open_zoo(zoo)
    if print_all:
        for model in registry.models:
            print(model.name)
        return
    specs = _select(registry, names or [], name, all_models, list_file)
    mirrors = list(mirror) if mirror else mirrors_from_env()

    if import_path is not None:
        _import(specs, import_path, output_dir, cache_dir)
        return
    if dry_run:
        _dry_run(specs, mirrors, offline)
        return

    as_json = progress_format is ProgressFormat.json
    summary = download_models(
        specs,
        output_dir=output_dir,
        cache_dir=cache_dir,
        mirrors=mirrors,
        offline=offline,
        num_attempts=num_attempts,
        jobs=jobs,
        progress="json" if as_json else "rich",
        timeout=timeout,
        retry_delay=retry_delay,
    )
    _print_summary(summary, as_json)
    if not summary.ok:
        err_console.print("[bold red]FAILED:[/]", highlight=False)
        for result in summary.failed:
            err_console.print(f"  {escape(result.model)}/{escape(result.file)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _select(registry: Zoo, names: list[str], name: str | None, all_models: bool, list_file: Path | None) -> list[ModelSpec]:
    patterns = list(names)
    if name:
        patterns.append(name)
    if list_file is not None:
        from_file = read_list_file(list_file)
        if not from_file:
            raise FacezooError(f"{list_file}: names no models")
        patterns += from_file
    if all_models:
        return list(registry.models)
    if not patterns:
        raise FacezooError("say which models to download: NAME, --name PATTERNS, --list FILE or --all (--print_all lists them)")
    return registry.select(patterns)


def read_list_file(path: Path) -> list[str]:
    """Patterns from a --list file: one per line, '#' starts a comment, blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FacezooError(f"{path}: cannot read the model list: {exc.strerror or exc}") from None
    patterns = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            patterns.append(line)
    return patterns


def _import(specs: list[ModelSpec], path: Path, output_dir: Path, cache_dir: Path | None) -> None:
    if len(specs) != 1:
        chosen = ", ".join(s.name for s in specs)
        raise FacezooError(f"--import needs exactly one model; the selection has {len(specs)} ({chosen})")
    spec = specs[0]
    result = import_file(spec, None, path, output_dir, cache_dir)
    model_file = spec.file(result.file)
    console.print(f"[green]imported[/] {escape(str(path))} as {escape(str(result.path))}", highlight=False, soft_wrap=True)
    print(f"sha256: {result.sha256}")
    print(f"size: {result.bytes}")
    if model_file.sha256 is None:
        print(
            f"note: the registry does not pin {spec.name}/{model_file.name}; to pin it, add "
            f"`sha256: {result.sha256}` and `size: {result.bytes}` to its entry in the registry"
        )


def _dry_run(specs: list[ModelSpec], mirrors: list[str], offline: bool) -> None:
    for spec in specs:
        for model_file in spec.files:
            tried = candidates(spec, model_file, mirrors, offline)
            if tried:
                source = tried[0].location
            elif model_file.sources:
                source = "(none offline: only the cache)"
            else:
                source = "(no source: " + " ".join(spec.how_to_obtain.split()) + ")"
            size = model_file.size if model_file.size is not None else "unknown"
            print(
                f"{spec.name}/{model_file.name}  size: {size}  sha256: {model_file.sha256 or 'not pinned'}"
                f"  source: {source}"
            )


def _print_summary(summary: DownloadSummary, as_json: bool) -> None:
    if as_json:
        files = [
            {
                "model": r.model,
                "file": r.file,
                "path": str(r.path),
                "status": r.status,
                "bytes": r.bytes,
                "sha256": r.sha256,
                "source": r.source,
                "error": r.error,
            }
            for r in summary.files
        ]
        print(json.dumps({"event": "summary", "ok": summary.ok, "files": files}), flush=True)
        return
    table = Table(title="downloads")
    for column in ("model", "file", "status", "bytes", "source / error"):
        table.add_column(column, overflow="fold")
    colours = {"downloaded": "green", "cached": "cyan", "imported": "green", "failed": "bold red"}
    for r in summary.files:
        detail = r.error.removeprefix(f"{r.model}: {r.file}: ") if r.error else (r.source or "")
        table.add_row(
            escape(r.model), escape(r.file), f"[{colours[r.status]}]{r.status}[/]", f"{r.bytes:,}", escape(detail)
        )
    console.print(table)
