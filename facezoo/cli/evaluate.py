"""`facezoo evaluate`: a converted model on a face-verification set, with the upstream protocols.

The measured figures are printed beside the authors' published ones from the registry, which
are labelled "published". Figures measured on stand-in weights or on generated faces are
labelled as such and are never a statement about the model's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from facezoo.cli.common import ZooOption, console, err_console, open_zoo, reports_errors
from facezoo.errors import FacezooError
from facezoo.accuracy.provenance import provenance_label
from facezoo.accuracy.provenance import artifact_weights as weights_status
from facezoo.registry import ModelSpec, Zoo
from facezoo.tasks.detection import TASK as DETECTION

PROTOCOL_HELP = (
    "insightface: 10 folds, squared L2 of normalized embeddings, thresholds 0..4 step 0.01; "
    "lfw-cosine: 10 folds, cosine of raw embeddings, thresholds [-1, 1) step 0.005; "
    "roc: TAR@FAR, EER, AUC of cosine; "
    "widerface (detectors): AP easy/medium/hard at IoU 0.5 on a WIDER FACE val folder (wider_face_val_bbx_gt.txt, "
    "the kit's wider_*_val.mat, WIDER_val/images); "
    "identification: 1:N on a folder DIR/<identity>/*.jpg, each enrolled identity's first image in the gallery "
    "(--unknown-share of the identities left out as strangers), exact search: rank-1, CMC, DIR at FAR 1% and 0.1%. "
    "Default: the protocol of the model's published number."
)


class EvaluationError(FacezooError):
    """The evaluation cannot run (bad protocol, too few pairs, ...)."""


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


# ----------------------------------------------------------------------------- facts about the run


def default_protocol(spec: ModelSpec | None) -> str:
    """The protocol of the model's published numbers: insightface, lfw-cosine, roc (or widerface for a detector)."""
    if spec is not None and spec.task_type == DETECTION.name:
        return "widerface"
    if spec is None or not spec.accuracy:
        return "insightface"
    first = spec.accuracy[0]
    protocol = first.protocol.lower()
    if first.metric.upper().startswith(("TAR@", "1-EER", "EER", "AUC")):
        return "roc"
    if "insightface" in protocol or ".bin" in protocol:
        return "insightface"
    if "cosine" in protocol:
        return "lfw-cosine"
    return "insightface"  # arcface-family numbers without a stated protocol (mindface) use lfw.bin


def _converted_detector(model: str, converted_dir: Path, fmt: str | None, precision: str | None) -> bool:
    """Whether MODEL names a converted face detector (by its model card)."""
    from facezoo.runtime import resolve_artifact
    from facezoo.runtime.detector import is_detector

    try:
        return is_detector(resolve_artifact(model, converted_dir, fmt, precision))
    except FacezooError:
        return False  # run_evaluation says what is wrong with the name


# ----------------------------------------------------------------------------- the run


@dataclass
class EvaluationRun:
    document: dict
    evaluation: object  # facezoo.accuracy.metrics.Evaluation


def _raw_embeddings(embedder, images) -> np.ndarray:
    """Embedder's preprocessing (fit to the input contract), then one synchronous call per batch.

    Not Embedder.embed: its OpenVINO path (AsyncInferQueue with set_callback on every call) can
    deadlock when the backend is closed afterwards; synchronous requests never create that queue.
    """
    crops = embedder.prepare(images)
    size = embedder.batch_size
    return np.concatenate([np.asarray(embedder.pick(embedder.model.infer(crops[i : i + size])), np.float32)
                           for i in range(0, len(crops), size)])


def embed_dataset(embedder, dataset, flip: bool, chunk: int, step: Callable[[int, int], None] = lambda d, t: None):
    """Raw embeddings of every image (and of its horizontal flip)."""
    plain, flipped = [], []
    done = 0
    for _, images in dataset.batches(chunk):
        plain.append(_raw_embeddings(embedder, images))
        if flip:
            flipped.append(_raw_embeddings(embedder, [np.ascontiguousarray(im[:, ::-1]) for im in images]))
        done += len(images)
        step(done, dataset.image_count)
    return np.concatenate(plain), (np.concatenate(flipped) if flip else None)


def run_evaluation(
    model: str,
    dataset_path: Path,
    *,
    zoo: Zoo,
    protocol: str | None = None,
    flip: bool = False,
    converted_dir: Path = Path("converted"),
    fmt: str | None = None,
    precision: str | None = None,
    device: str = "CPU",
    backend: str | None = None,
    batch_size: int = 32,
    pairs_file: Path | None = None,
    resize: bool = False,
    step: Callable[[int, int], None] = lambda done, total: None,
) -> EvaluationRun:
    from facezoo.accuracy.datasets import load_dataset
    from facezoo.accuracy.metrics import DEFAULT_FOLDS, PROTOCOLS, evaluate_pairs
    from facezoo.runtime import Embedder

    if protocol is not None and protocol not in PROTOCOLS:
        raise EvaluationError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    dataset = load_dataset(dataset_path, pairs_file)
    if len(dataset.issame) < DEFAULT_FOLDS:
        raise EvaluationError(f"{dataset_path}: {len(dataset.issame)} pairs; the protocols need at least {DEFAULT_FOLDS}")
    if dataset.same_pairs == 0 or dataset.different_pairs == 0:
        raise EvaluationError(f"{dataset_path}: needs both same-person and different-people pairs")
    embedder = Embedder(model, converted_dir=converted_dir, format=fmt, precision=precision, device=device,
                        backend=backend, batch_size=batch_size, resize=resize)
    try:
        artifact = embedder.artifact
        try:
            spec = zoo.get(artifact.model)
        except FacezooError:
            spec = None
        chosen = protocol or default_protocol(spec)
        embeddings, flipped = embed_dataset(embedder, dataset, flip, max(batch_size, 1) * 4, step)
        backend_name = embedder.model.backend.name
    finally:
        embedder.close()
    first, second = dataset.pairs[:, 0], dataset.pairs[:, 1]
    evaluation = evaluate_pairs(
        embeddings[first], embeddings[second], dataset.issame, chosen,
        flip1=None if flipped is None else flipped[first], flip2=None if flipped is None else flipped[second],
    )
    weights = weights_status(artifact, spec, zoo)
    synthetic = dataset.synthetic is not None
    is_model_accuracy, label = provenance_label(weights, synthetic)
    published = [
        {"dataset": a.dataset, "metric": a.metric, "value": a.value, "source": a.source, "protocol": a.protocol,
         "label": "published by the model's authors, not measured here"}
        for a in (spec.accuracy if spec else [])
    ]
    document = {
        "kind": "facezoo-evaluation",
        "model": artifact.model,
        "artifact": {"path": str(artifact.path), "format": artifact.format, "precision": artifact.precision,
                     "backend": backend_name, "device": device},
        "weights": weights,
        "dataset": {"path": str(dataset_path), "name": dataset.name, "kind": dataset.kind,
                    "images": dataset.image_count, "pairs": int(len(dataset.issame)),
                    "same_pairs": dataset.same_pairs, "different_pairs": dataset.different_pairs,
                    "synthetic": synthetic},
        "label": label,
        "is_model_accuracy": is_model_accuracy,
        "protocol": chosen,
        "flip": flip,
        "measured": evaluation.measured(),
        "metrics": evaluation.as_dict(),
        "published": published,
    }
    return EvaluationRun(document, evaluation)


# ----------------------------------------------------------------------------- output


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def show_evaluation(document: dict) -> None:
    from rich.table import Table

    dataset = document["dataset"]
    accuracy_kind = {"insightface": "insightface 10-fold", "lfw-cosine": "LFW cosine 10-fold", "roc": "ROC"}
    table = Table(
        title=f"{document['model']} {document['artifact']['format']} {document['artifact']['precision']} "
        f"({document['artifact']['backend']}) on {dataset['name']}: {dataset['pairs']} pairs, "
        f"protocol {document['protocol']}",
    )
    table.add_column("metric")
    table.add_column("measured", justify="right")
    table.add_column("published (authors', not measured here)", justify="right")
    metrics = document["metrics"]
    published = {(p["dataset"].lower(), p["metric"].lower()): p for p in document["published"]}
    name = dataset["name"].lower()
    matched = set()

    def published_cell(metric: str) -> str:
        """The published figure for this metric: the same dataset first, else any dataset (named)."""
        hits = [(k, e) for k, e in published.items() if k[1] == metric.lower()]
        hits.sort(key=lambda item: not (name == item[0][0] or name.startswith(item[0][0])))
        if not hits:
            return "—"
        key, entry = hits[0]
        matched.add(key)
        return f"{100 * entry['value']:.2f}% ({entry['dataset']}, {entry['source']})"

    for key, label in (("accuracy", "Accuracy"), ("accuracy_flip", "Accuracy-Flip")):
        result = metrics.get(key)
        if result:
            table.add_row(
                f"{label} ({accuracy_kind[document['protocol']]})",
                f"{100 * result['mean']:.2f}% ± {100 * result['std']:.2f}",
                published_cell(key),
            )
    roc = metrics["roc"]
    table.add_row("1 − EER", _pct(1 - roc["eer"]), published_cell("1-EER"))
    table.add_row("EER", _pct(roc["eer"]), "—")
    table.add_row("AUC", f"{roc['auc']:.4f}", "—")
    for key, value in roc["tar_at_far"].items():
        table.add_row(key, _pct(value), published_cell(key))
    console.print(table)
    others = [p for k, p in published.items() if k not in matched]
    for entry in others:
        console.print(
            f"published (not measured here): {entry['dataset']} {entry['metric']} {100 * entry['value']:.2f}% "
            f"— {entry['source']}" + (f"; protocol: {entry['protocol']}" if entry["protocol"] else ""),
            highlight=False, soft_wrap=True,
        )
    style = "bold red" if not document["is_model_accuracy"] else "bold"
    console.print(f"[{style}]{document['label']}[/]", highlight=False, soft_wrap=True)


@reports_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="A converted file (.xml, .onnx, .mindir) or a zoo name under -c.")],
    dataset: Annotated[
        Path, typer.Option("--dataset", help="insightface .bin (lfw.bin, cfp_fp.bin, ...) or an LFW folder with pairs.txt; "
                           "identification: a folder DIR/<identity>/*.jpg.")
    ],
    protocol: Annotated[Optional[str], typer.Option("--protocol", help=PROTOCOL_HELP)] = None,
    flip: Annotated[bool, typer.Option("--flip", help="Also embed horizontal flips; report Accuracy-Flip.")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the results here.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the ROC curve here (PNG; identification: "
                                                 "the CMC curve and DIR against FAR).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per inference call.")] = 32,
    device: Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")] = "CPU",
    backend: Annotated[
        Optional[str], typer.Option("--backend", help="openvino, onnxruntime or mindspore (default: by file type).")
    ] = None,
    converted_dir: Annotated[
        Path, typer.Option("-c", "--converted-dir", "--converted_dir", help="Where `facezoo convert` put the models.")
    ] = Path("converted"),
    fmt: Annotated[Optional[str], typer.Option("--format", help="openvino, onnx or mindir (for a zoo name).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="FP32, FP16, INT8 or BF16 (for a zoo name).")] = None,
    pairs: Annotated[
        Optional[Path], typer.Option("--pairs", help="pairs.txt when it is not inside the LFW folder.")
    ] = None,
    resize: Annotated[
        bool, typer.Option("--resize", help="Resize images that are not aligned crops of the model's size (not advised).")
    ] = False,
    score: Annotated[
        Optional[float], typer.Option("--score", min=0.0, max=1.0, help="widerface: the detector's score threshold "
                                      "(default 0.02: the AP curve needs the low-scoring detections).")
    ] = None,
    unknown_share: Annotated[
        Optional[float], typer.Option("--unknown-share", min=0.0, max=1.0, help="identification: the share of the "
                                      "identities left out of the gallery, all their images non-mated probes "
                                      "(default 0.5 from 4 identities on, else 0).")
    ] = None,
    detector: Annotated[
        Optional[str], typer.Option("--detector", help="identification: a converted face detector; the dataset's "
                                    "images are photos, the largest face of each is aligned and embedded.")
    ] = None,
    zoo: ZooOption = None,
) -> None:
    """Measure verification accuracy on a face-verification set (or 1:N identification on a folder of
    identities, or a detector's AP on WIDER FACE), beside the published numbers."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from facezoo.accuracy.agreement import write_json_atomic

    from facezoo.accuracy.identification import PROTOCOL as IDENTIFICATION
    from facezoo.accuracy.metrics import PROTOCOLS as VERIFICATION
    from facezoo.cli.widerface import PROTOCOL as WIDERFACE

    if protocol is not None and protocol not in (*VERIFICATION, WIDERFACE, IDENTIFICATION):
        raise EvaluationError(f"unknown protocol {protocol!r}; expected one of {', '.join(VERIFICATION)} "
                              f"(verification), {WIDERFACE} (detectors) or {IDENTIFICATION} (1:N)")
    registry = open_zoo(zoo)
    if protocol is None and _converted_detector(model, converted_dir, fmt, precision):
        protocol = WIDERFACE
    if protocol != IDENTIFICATION and (unknown_share is not None or detector is not None):
        raise EvaluationError(f"{'--unknown-share' if unknown_share is not None else '--detector'} goes with "
                              "--protocol identification")
    if protocol == WIDERFACE:
        from facezoo.cli.widerface import evaluate_widerface

        evaluate_widerface(model, dataset, registry, converted_dir=converted_dir, fmt=fmt, precision=precision,
                           device=device, backend=backend, score=score, json_path=json_path, plot=plot)
        return
    if score is not None:
        raise EvaluationError("--score sets a detector's threshold: it goes with --protocol widerface")
    if protocol == IDENTIFICATION:
        from facezoo.cli.identification import evaluate_identification

        if flip or pairs is not None:
            raise EvaluationError(f"{'--flip' if flip else '--pairs'} is for the verification protocols, "
                                  "not --protocol identification")
        evaluate_identification(model, dataset, registry, converted_dir=converted_dir, fmt=fmt, precision=precision,
                                device=device, backend=backend, batch_size=batch_size, resize=resize,
                                detector=detector, unknown_share=unknown_share, json_path=json_path, plot=plot)
        return
    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("embedding", total=None)
        run = run_evaluation(
            model, dataset, zoo=registry, protocol=protocol, flip=flip, converted_dir=converted_dir, fmt=fmt,
            precision=precision, device=device, backend=backend, batch_size=batch_size, pairs_file=pairs, resize=resize,
            step=lambda done, total: progress.update(task, completed=done, total=total),
        )
    document = run.document
    if plot is not None:
        from facezoo.accuracy.plot import plot_roc

        plot_roc(
            run.evaluation.curve, plot,
            title=f"{document['model']} {document['artifact']['format']} {document['artifact']['precision']} "
            f"on {document['dataset']['name']} ({document['dataset']['pairs']} pairs)",
            note="" if document["is_model_accuracy"] else document["label"],
            marks=document["metrics"]["roc"]["tar_at_far"],
        )
        document["plot"] = str(plot)
    show_evaluation(document)
    if json_path is not None:
        write_json_atomic(json_path, document)
        console.print(f"results: {json_path}", highlight=False)
    if plot is not None:
        console.print(f"ROC curve: {plot}", highlight=False)
