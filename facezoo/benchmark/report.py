"""Benchmark results as a rich table, a JSON document and PNG charts."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from facezoo.atomic import atomic_path, write_bytes_atomic
from facezoo.benchmark.machine import MachineInfo
from facezoo.benchmark.results import BenchmarkResult
from facezoo.errors import FacezooError

SCHEMA = "facezoo-benchmark/1"
BACKEND_COLOURS = {"openvino": "tab:blue", "onnxruntime": "tab:orange", "mindspore": "tab:green"}


def results_table(results: list[BenchmarkResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("model", "file", "backend", "runner", "dev", "batch", "mode", "req", "thr"):
        table.add_column(column, overflow="fold")
    for column in ("load ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "img/s", "GFLOP/s"):
        table.add_column(column, justify="right")
    for result in results:
        case = result.case
        head = [
            case.model,
            case.file_kind + (f" {case.precision_hint}" if case.precision_hint else ""),
            case.backend,
            case.runner + (" +pre" if case.preprocessing else ""),
            case.device,
            str(case.batch),
            case.mode[:3],
        ]
        if not result.ok:
            colour = "yellow" if result.status == "unavailable" else "red"
            table.add_row(*head, "", "", "", "", f"[{colour}]{result.status}[/]", "", "", "", "")
            continue
        latency = result.latency
        table.add_row(
            *head,
            str(result.requests),
            str(result.threads),
            f"{result.load_ms:.0f}",
            f"{result.first_inference_ms:.1f}",
            f"{latency.p50:.2f}" if latency else "-",
            f"{latency.p90:.2f}" if latency else "-",
            f"{latency.p99:.2f}" if latency else "-",
            f"{result.throughput:.1f}",
            f"{result.achieved_gflops:.1f}" if result.achieved_gflops is not None else "-",
        )
    return table


def to_document(results: list[BenchmarkResult], machine: MachineInfo, settings: dict, **sections) -> dict:
    return {
        "schema": SCHEMA,
        "machine": asdict(machine),
        "settings": settings,
        "results": [result.to_json() for result in results],
        **sections,
    }


def write_json(document: dict, path: Path) -> Path:
    """Strict JSON: a NaN or infinity (a figure that could not be measured) is written as null,
    so one such figure never costs the rest of a run's results."""
    return write_bytes_atomic(path, json.dumps(_finite_or_null(document), indent=2, allow_nan=False).encode() + b"\n")


def _finite_or_null(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    return value


def read_results(path: Path) -> tuple[dict, list[BenchmarkResult]]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FacezooError(f"{path}: cannot read benchmark results: {exc}") from None
    if document.get("schema") != SCHEMA:
        raise FacezooError(f"{path}: not a facezoo benchmark file (schema {document.get('schema')!r}, expected {SCHEMA!r})")
    return document, [BenchmarkResult.from_json(item) for item in document["results"]]


def new_figure(rows: int, width: float = 9.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, max(2.5, 0.32 * rows + 1.4)), dpi=110)


def save_figure(figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    return Path(path)


def plot_throughput(results: list[BenchmarkResult], path: Path, title: str) -> Path:
    """Horizontal bars of images/s, one per case, coloured by backend, grouped by model."""
    ok = [r for r in results if r.ok]
    if not ok:
        raise FacezooError("nothing to plot: no case ran")
    figure = new_figure(len(ok))
    axes = figure.subplots()
    labels = [f"{r.case.model} · {r.case.label}" for r in ok]
    values = [r.throughput for r in ok]
    colours = [BACKEND_COLOURS.get(r.case.backend, "tab:gray") for r in ok]
    hatches = ["//" if r.case.runner == "direct" else "" for r in ok]
    bars = axes.barh(range(len(ok)), values, color=colours)
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
    for index, value in enumerate(values):
        axes.annotate(f"{value:.1f}", (value, index), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    axes.set_yticks(range(len(ok)), labels, fontsize=7)
    axes.set_ylim(len(ok) - 0.5, -0.5)
    if max(values) / max(min(values), 1e-9) > 50:
        axes.set_xscale("log")
    axes.set_xlabel("throughput, images/s (higher is better)")
    figure.suptitle(title, fontsize=8)
    handles = [_patch(colour, name) for name, colour in BACKEND_COLOURS.items() if any(r.case.backend == name for r in ok)]
    if any(hatches):
        handles.append(_patch("white", "called directly", hatch="//"))
    axes.legend(handles=handles, fontsize=7, loc="best")
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_figheight()))  # room for the title
    return save_figure(figure, path)


def plot_latency(results: list[BenchmarkResult], path: Path, title: str) -> Path:
    """p50 bars with p90 and p99 marks, per latency-mode case."""
    ok = [r for r in results if r.ok and r.latency and r.case.mode == "latency"]
    if not ok:
        raise FacezooError("nothing to plot: no latency-mode case ran")
    figure = new_figure(len(ok))
    axes = figure.subplots()
    positions = range(len(ok))
    axes.barh(positions, [r.latency.p50 for r in ok], color=[BACKEND_COLOURS.get(r.case.backend, "tab:gray") for r in ok])
    axes.plot([r.latency.p90 for r in ok], positions, "k|", markersize=9, label="p90")
    axes.plot([r.latency.p99 for r in ok], positions, "rx", markersize=5, label="p99")
    axes.set_yticks(list(positions), [f"{r.case.model} · {r.case.label}" for r in ok], fontsize=7)
    axes.set_ylim(len(ok) - 0.5, -0.5)
    values = [r.latency.p99 for r in ok]
    if max(values) / max(min(values), 1e-9) > 50:
        axes.set_xscale("log")
    axes.set_xlabel("latency per batch, ms (bar: p50; lower is better)")
    figure.suptitle(title, fontsize=8)
    axes.legend(fontsize=7, loc="best")
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_figheight()))  # room for the title
    return save_figure(figure, path)


def _patch(colour: str, label: str, hatch: str = ""):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor="black" if hatch else colour, hatch=hatch, label=label)
