"""ROC curves as PNG files (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.accuracy.metrics import Roc, eer
from facezoo.atomic import atomic_path


def plot_roc(roc: Roc, path: str | Path, *, title: str, note: str = "", marks: dict[str, float | None] | None = None) -> Path:
    """TAR against FAR (log scale) with the EER point and TAR@FAR marks; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.subplots()
    floor = 0.5 / max(roc.negatives, 1)  # FAR 0 drawn at half the smallest measurable FAR
    far = np.maximum(roc.far, floor)
    axes.step(far, roc.tar, where="post", color="tab:blue", linewidth=1.6, label="ROC (cosine)")
    rate = eer(roc)
    axes.plot([max(rate, floor)], [1.0 - rate], "o", color="tab:red", label=f"EER {100 * rate:.2f}%")
    for label, value in (marks or {}).items():
        if value is None:
            continue
        target = float(label.split("=")[-1])
        axes.plot([target], [value], "s", color="tab:green", markersize=4)
        axes.annotate(f"{100 * value:.1f}%", (target, value), textcoords="offset points", xytext=(4, -10), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlim(floor, 1.0)
    axes.set_ylim(0.0, 1.01)
    axes.set_xlabel("false accept rate (FAR)")
    axes.set_ylabel("true accept rate (TAR)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title(title, fontsize=10)
    if note:
        figure.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, color="tab:red", wrap=True)
    figure.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    return path


__all__ = ["plot_roc"]


def plot_precision_recall(curves: dict, path: str | Path, *, title: str, note: str = "") -> Path:
    """Precision against recall per split (WIDER FACE easy/medium/hard); written atomically.

    ``curves``: split → rows of (threshold, precision, recall), as facezoo.accuracy.widerface gives them.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.subplots()
    for split, rows in curves.items():
        rows = np.asarray(rows, np.float64)
        keep = np.isfinite(rows[:, 1])
        axes.plot(rows[keep, 2], rows[keep, 1], linewidth=1.6, label=split)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title, fontsize=10)
    if note:
        axes.text(0.02, 0.02, note, transform=axes.transAxes, fontsize=7, color="tab:red", wrap=True)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    with atomic_path(path, suffix=".png") as partial:
        figure.savefig(partial, format="png")
    return path
