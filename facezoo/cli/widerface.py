"""`facezoo evaluate DET --dataset DIR --protocol widerface`: AP on WIDER FACE val, easy/medium/hard,
beside the published numbers (facezoo.accuracy.widerface computes them as the evaluation kit does).

Detections are kept down to a low score (``EVAL_SCORE``; the AP curve needs the low-scoring ones)
unless --score says otherwise; everything else is the model card's decoding.
"""

from __future__ import annotations

from pathlib import Path

from facezoo.cli.common import console, err_console
from facezoo.registry import Zoo

PROTOCOL = "widerface"
EVAL_SCORE = 0.02  # detections below this do not move the AP of the published detectors


def published_ap(spec) -> dict[str, float]:
    """The registry's WIDER FACE AP per split (metric AP-easy, AP-medium, AP-hard)."""
    if spec is None:
        return {}
    return {entry.metric.removeprefix("AP-"): entry.value for entry in spec.accuracy
            if entry.dataset.startswith("widerface") and entry.metric.startswith("AP-")}


def evaluate_widerface(model: str, dataset: Path, registry: Zoo, *, converted_dir: Path, fmt: str | None,
                       precision: str | None, device: str, backend: str | None, score: float | None,
                       json_path: Path | None, plot: Path | None) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from facezoo.accuracy.agreement import write_json_atomic
    from facezoo.accuracy.widerface import SPLITS, evaluate_detector, load_wider
    from facezoo.accuracy.provenance import artifact_weights, provenance_label
    from facezoo.runtime import Detector

    wider = load_wider(dataset)
    detector = Detector(model, converted_dir=converted_dir, format=fmt, precision=precision, device=device,
                        backend=backend, score_threshold=EVAL_SCORE if score is None else score)
    artifact = detector.artifact
    spec = artifact.card.spec() if artifact.card else None
    columns = (TextColumn("detecting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console, transient=True) as progress:
            bar = progress.add_task("detecting", total=len(wider.images))
            result = evaluate_detector(wider, detector.detect, lambda done, total: progress.update(bar, completed=done))
    finally:
        detector.close()
    weights = artifact_weights(artifact, spec, registry)
    is_accuracy, label = provenance_label(weights, synthetic=False)
    published = published_ap(spec)
    document = {
        "model": artifact.model, "protocol": PROTOCOL, "dataset": str(dataset),
        "artifact": {"path": str(artifact.path), "format": artifact.format, "precision": artifact.precision},
        "score_threshold": detector.score_threshold, "weights": weights, "is_model_accuracy": is_accuracy,
        "label": label, "result": result.as_dict(), "published": published,
    }
    table = Table("split", "faces", "AP", "published", title=f"{artifact.model} {artifact.format} {artifact.precision}: "
                  f"WIDER FACE val ({result.images} images, IoU {result.iou_threshold})")
    for split in SPLITS:
        table.add_row(split, str(result.faces[split]), f"{result.ap[split]:.4f}",
                      f"{published[split]:.4f}" if split in published else "-")
    console.print(table)
    console.print(label, highlight=False)
    if plot is not None:
        from facezoo.accuracy.plot import plot_precision_recall

        plot_precision_recall(result.curves, plot, title=f"{artifact.model} {artifact.format} {artifact.precision} "
                              "on WIDER FACE val", note="" if is_accuracy else label)
        document["plot"] = str(plot)
        console.print(f"precision/recall: {plot}", highlight=False)
    if json_path is not None:
        write_json_atomic(json_path, document)
        console.print(f"results: {json_path}", highlight=False)
    return document


__all__ = ["EVAL_SCORE", "PROTOCOL", "evaluate_widerface", "published_ap"]
