"""`facezoo evaluate MODEL --protocol identification --dataset DIR`: 1:N identification accuracy.

DIR holds one sub-folder of images per identity; facezoo.accuracy.identification splits it into a
gallery and mated/non-mated probes, searches exactly and computes rank-1, the CMC curve and DIR
at FAR 1 % and 0.1 %. Images are aligned crops of the model's size (or --resize), or photos with
--detector (the largest face of each, aligned by its landmarks, as `facezoo embed --detector`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.cli.common import console, err_console
from facezoo.errors import FacezooError
from facezoo.registry import Zoo

CHUNK_BATCHES = 4  # images read into memory at a time: this many batches


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def embed_images(embedder, paths, *, pipeline=None, step=lambda done, total: None) -> np.ndarray:
    """Raw embeddings of ``paths`` in order; a file that cannot be used is named in the error."""
    from facezoo.images import read_image
    from facezoo.preprocessing import ImageError, fit_crop

    chunk = max(embedder.batch_size, 1) * CHUNK_BATCHES
    rows = []
    for start in range(0, len(paths), chunk):
        names = paths[start : start + chunk]
        pictures = [read_image(path) for path in names]
        if pipeline is not None:
            rows.extend(pipeline.photo(image, str(path)).embeddings[:1] for path, image in zip(names, pictures))
        else:
            for path, image in zip(names, pictures):  # the check only, so that the error names the file
                try:
                    fit_crop(image, embedder.size, resize=embedder.resize, label=str(path))
                except ImageError:
                    height, width = embedder.size
                    raise FacezooError(
                        f"{path}: {image.shape[0]}×{image.shape[1]} is not an aligned face crop of this model's "
                        f"{height}×{width}: give --detector DET for photos, or --resize to resize whole images "
                        "(not advised)") from None
            rows.append(embedder.embed(pictures, normalize=False))
        step(min(start + chunk, len(paths)), len(paths))
    return np.concatenate(rows).astype(np.float32, copy=False)


def identification_document(split, result, *, artifact, spec, registry: Zoo, backend: str, device: str,
                            detector=None, synthetic: dict | None) -> dict:
    """The JSON document: the run's facts, the split, the figures and the provenance label.

    ``detector``: the detector's artifact when photos were used; its faces feed every figure, so
    stand-in or unpublished detector weights make the result NOT the model's accuracy too.
    """
    from facezoo.accuracy.identification import PROTOCOL
    from facezoo.accuracy.provenance import artifact_weights, provenance_label

    weights = artifact_weights(artifact, spec, registry)
    is_accuracy, label = provenance_label(weights, synthetic is not None)
    detector_facts = None
    if detector is not None:
        detector_spec = detector.card.spec() if detector.card else None
        detector_weights = artifact_weights(detector, detector_spec, registry)
        detector_ok, detector_label = provenance_label(detector_weights, synthetic=False)
        if not detector_ok:
            reason = detector_label.removeprefix("measured on ").removesuffix(": NOT the model's accuracy")
            faces = f"the faces were found by the {detector.model} detector with {reason}"
            label = f"{label}, but {faces}: NOT the model's accuracy" if is_accuracy else f"{label}; {faces}"
            is_accuracy = False
        detector_facts = {"model": detector.model, "path": str(detector.path), "weights": detector_weights}
    return {
        "kind": "facezoo-identification",
        "model": artifact.model,
        "artifact": {"path": str(artifact.path), "format": artifact.format, "precision": artifact.precision,
                     "backend": backend, "device": device},
        "weights": weights,
        "dataset": {"path": str(split.root), "name": split.root.name, **split.as_dict(),
                    "detector": detector_facts, "synthetic": synthetic is not None},
        "label": label,
        "is_model_accuracy": is_accuracy,
        "protocol": PROTOCOL,
        "search": "exact: cosine of L2-normalised embeddings, every probe against the whole gallery",
        "measured": result.measured(),
        "metrics": result.as_dict(),
    }


def show_identification(document: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    dataset, metrics = document["dataset"], document["metrics"]
    table = Table("metric", "measured", "note", title=(
        f"{document['model']} {document['artifact']['format']} {document['artifact']['precision']} "
        f"({document['artifact']['backend']}) on {escape(dataset['name'])}: protocol identification, "
        f"gallery {dataset['gallery']} identities, {dataset['mated_probes']} mated and "
        f"{dataset['non_mated_probes']} non-mated probes"))
    cmc = {entry["rank"]: entry["rate"] for entry in metrics["cmc"]}
    table.add_row("rank-1 (closed set)", _pct(metrics["rank1"]), "mated probes whose top-1 is their identity")
    for rank in (5, 10, 20):
        if rank in cmc:
            table.add_row(f"CMC rank {rank}", _pct(cmc[rank]), "right identity within the top ranks")
    for key, point in metrics["open_set"].items():
        note = point["reason"] or (f"threshold {point['threshold']:.4f}; {point['false_alarms']} of "
                                   f"{dataset['non_mated_probes']} non-mated probes above it")
        table.add_row(f"{key} (open set)", _pct(point["dir"]), escape(note))
    console.print(table)
    style = "bold" if document["is_model_accuracy"] else "bold red"
    console.print(f"[{style}]{escape(document['label'])}[/]", highlight=False, soft_wrap=True)


def evaluate_identification(model: str, dataset: Path, registry: Zoo, *, converted_dir: Path, fmt: str | None,
                            precision: str | None, device: str, backend: str | None, batch_size: int, resize: bool,
                            detector: str | None, unknown_share: float | None, json_path: Path | None,
                            plot: Path | None) -> dict:
    """Split, embed, search, report; the folder is checked before any model is loaded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from facezoo.accuracy.agreement import write_json_atomic
    from facezoo.accuracy.datasets import read_synthetic_marker
    from facezoo.accuracy.identification import evaluate_identification as measure
    from facezoo.accuracy.identification import plot_identification, split_identities
    from facezoo.runtime import Embedder

    if detector is not None and resize:
        raise FacezooError("--detector and --resize: give one (the detector aligns each face it finds)")
    split = split_identities(dataset, unknown_share)
    embedder = Embedder(model, converted_dir=converted_dir, format=fmt, precision=precision, device=device,
                        backend=backend, batch_size=batch_size, resize=resize)
    pipeline = None
    try:
        if detector is not None:
            from facezoo.runtime import Detector, FacePipeline

            pipeline = FacePipeline(Detector(detector, converted_dir=converted_dir, device=device, backend=backend),
                                    embedder)
        columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            bar = progress.add_task("embedding", total=split.images)
            embeddings = embed_images(embedder, [*split.gallery, *split.probes], pipeline=pipeline,
                                      step=lambda done, total: progress.update(bar, completed=done))
        artifact, backend_name = embedder.artifact, embedder.model.backend.name
        detector_artifact = pipeline.detector.artifact if pipeline is not None else None
    finally:
        if pipeline is not None:
            pipeline.close()  # closes the embedder too
        else:
            embedder.close()
    gallery_size = len(split.gallery)
    result = measure(embeddings[:gallery_size], embeddings[gallery_size:], split.probe_truth)
    try:
        spec = registry.get(artifact.model)
    except FacezooError:
        spec = None
    document = identification_document(split, result, artifact=artifact, spec=spec, registry=registry,
                                       backend=backend_name, device=device, detector=detector_artifact,
                                       synthetic=read_synthetic_marker(dataset))
    if plot is not None:
        plot_identification(result, plot, title=f"{artifact.model} {artifact.format} {artifact.precision} on "
                            f"{split.root.name}: 1:N identification",
                            note="" if document["is_model_accuracy"] else document["label"])
        document["plot"] = str(plot)
    show_identification(document)
    if json_path is not None:
        write_json_atomic(json_path, document)
        console.print(f"results: {json_path}", highlight=False)
    if plot is not None:
        console.print(f"CMC and DIR/FAR: {plot}", highlight=False)
    return document


__all__ = ["embed_images", "evaluate_identification", "identification_document", "show_identification"]
