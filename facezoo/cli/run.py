"""`facezoo embed`, `facezoo compare`, `facezoo infer`: run converted models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from facezoo.accuracy.agreement import write_json_atomic
from facezoo.atomic import atomic_path
from facezoo.cli.common import console, reports_errors
from facezoo.errors import FacezooError
from facezoo.runtime import Embedder, cosine_similarity, load, read_image, resolve_artifact
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR

ModelArgument = Annotated[str, typer.Argument(help="A converted file (.xml/.onnx/.mindir) or a zoo model name.")]
ConvertedDir = Annotated[
    Path, typer.Option("-c", "--converted-dir", "--converted_dir", help="Where zoo names are looked up.")
]
FormatOption = Annotated[Optional[str], typer.Option("--format", help="openvino, onnx or mindir (for zoo names).")]
PrecisionOption = Annotated[Optional[str], typer.Option("--precision", help="FP32, FP16, INT8 or BF16 (for zoo names).")]
DeviceOption = Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")]
BackendOption = Annotated[Optional[str], typer.Option("--backend", help="openvino, onnxruntime or mindspore.")]
ResizeOption = Annotated[
    bool,
    typer.Option(
        "--resize",
        help="Resize whole images to the model's input instead of refusing images that are not aligned crops "
        "(meaningless for raw photos: give --landmarks instead).",
    ),
]


DetectorOption = Annotated[
    Optional[str],
    typer.Option("--detector", help="A converted face detector (zoo name or file): photos in, each face "
                 "found and aligned by its five landmarks before it is embedded."),
]


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("compare")(compare)
    app.command("infer")(infer)


def _embedder(model, converted_dir, fmt, precision, device, backend, resize) -> Embedder:
    return Embedder(model, converted_dir=converted_dir, format=fmt, precision=precision, device=device, backend=backend,
                    resize=resize)


def _landmarks(path: Path | None, images: list[Path]) -> np.ndarray | None:
    """Landmarks from .npy (N×5×2) or JSON ({image file name: [[x, y] × 5]} or a list)."""
    if path is None:
        return None
    try:
        if path.suffix == ".npy":
            points = np.load(path)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            points = [data[image.name] for image in images] if isinstance(data, dict) else data
            points = np.asarray(points, np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise FacezooError(f"{path}: cannot read landmarks: {exc}") from None
    if points.shape != (len(images), 5, 2):
        raise FacezooError(f"{path}: expected landmarks of shape ({len(images)}, 5, 2), got {points.shape}")
    return points


def _pipeline(embedder: Embedder, detector: str, converted_dir, device, backend):
    from facezoo.runtime import Detector, FacePipeline

    return FacePipeline(Detector(detector, converted_dir=converted_dir, device=device, backend=backend), embedder)


@reports_errors
def embed(
    model: ModelArgument,
    images: Annotated[list[Path], typer.Argument(help="Face images (aligned crops; photos with --landmarks or --detector).")],
    landmarks: Annotated[Optional[Path], typer.Option("--landmarks", help="5-point landmarks: .npy N×5×2 or JSON.")] = None,
    detector: DetectorOption = None,
    all_faces: Annotated[bool, typer.Option("--all-faces", help="With --detector: every face found (one row "
                                            "each), not only the largest.")] = False,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="With --detector: the faces used, row by row.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the N×D embeddings.")] = Path(
        "embeddings.npy"
    ),
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
    resize: ResizeOption = False,
) -> None:
    """Embed face images (L2-normalized) into a .npy file.

    Images must be 5-point aligned crops of the model's input size, or come with --landmarks, or be
    photos with --detector (the largest face of each, or --all-faces: every face, one row each). A
    photo with no face is named and nothing is written (exit 1).
    """
    if detector is not None and landmarks is not None:
        raise FacezooError("--detector and --landmarks: give one (the detector finds the landmarks)")
    if detector is None and (all_faces or json_path is not None):
        raise FacezooError(f"{'--all-faces' if all_faces else '--json'} needs --detector (faces found in photos)")
    embedder = _embedder(model, converted_dir, fmt, precision, device, backend, resize)
    if detector is None:
        embeddings = embedder.embed([read_image(p) for p in images], _landmarks(landmarks, images))
        rows = f"{len(images)} embeddings"
    else:
        from facezoo.cli.detect import detection_document, photo_record

        pipeline = _pipeline(embedder, detector, converted_dir, device, backend)
        photos = []
        for path in images:
            image = read_image(path)
            photos.append((path, image, pipeline.photo(image, str(path), all_faces)))
        embeddings = np.concatenate([found.embeddings for _, _, found in photos])
        rows = f"{len(embeddings)} embeddings of {sum(len(f.faces) for _, _, f in photos)} faces in {len(images)} photos"
        if json_path is not None:
            document = detection_document(pipeline.detector.artifact.model,
                                          [photo_record(path, image, found.faces) for path, image, found in photos])
            document["rows"] = [{"path": str(path), "face": k} for path, _, found in photos for k in range(len(found.faces))]
            write_json_atomic(json_path, document)
    _save(output, ".npy", lambda partial: np.save(partial, embeddings))
    console.print(
        f"{rows} of dimension {embeddings.shape[1]} from {embedder.artifact.path} "
        f"({embedder.model.backend.name}, {embedder.model.backend.device}) → {output}",
        highlight=False,
    )


@reports_errors
def compare(
    model: ModelArgument,
    image1: Annotated[Path, typer.Argument()],
    image2: Annotated[Path, typer.Argument()],
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="Cosine at or above which the faces match "
                                      "(default: the registry's verification_threshold, where it has one).")
    ] = None,
    landmarks: Annotated[Optional[Path], typer.Option("--landmarks", help="Landmarks for both images.")] = None,
    detector: DetectorOption = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write cosine, threshold, same_person "
                                                      "(and with --detector the face used in each image).")] = None,
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
    resize: ResizeOption = False,
) -> None:
    """Cosine similarity of two faces, and a same/different verdict at the threshold.

    Images must be 5-point aligned crops of the model's input size, or come with --landmarks, or be
    photos with --detector (the largest face of each is compared).
    """
    if detector is not None and landmarks is not None:
        raise FacezooError("--detector and --landmarks: give one (the detector finds the landmarks)")
    embedder = _embedder(model, converted_dir, fmt, precision, device, backend, resize)
    pair = [image1, image2]
    if threshold is None:
        threshold = _registry_threshold(embedder)
    document: dict = {}
    if detector is None:
        first, second = embedder.embed([read_image(p) for p in pair], _landmarks(landmarks, pair))
    else:
        pipeline = _pipeline(embedder, detector, converted_dir, device, backend)
        found = [pipeline.photo(read_image(p), str(p)) for p in pair]
        first, second = found[0].embeddings[0], found[1].embeddings[0]
        document["faces"] = {name: {"path": str(p), **f.faces[0].as_dict()}
                             for name, p, f in zip(("image1", "image2"), pair, found)}
    score = cosine_similarity(first, second)
    same = None if threshold is None else bool(score >= threshold)
    line = f"cosine similarity {score:.4f}"
    if threshold is not None:
        line += f": {'same person' if same else 'different people'} at threshold {threshold:g}"
    console.print(line, highlight=False)
    if json_path is not None:
        write_json_atomic(json_path, {"cosine": float(score), "threshold": threshold, "same_person": same, **document})


def _registry_threshold(embedder: Embedder) -> float | None:
    """The verification threshold of the entry the model was converted from (its model card's)."""
    card = embedder.artifact.card
    spec = card.spec() if card is not None else None
    return spec.verification_threshold if spec is not None else None


@reports_errors
def infer(
    model: ModelArgument,
    input_file: Annotated[Path, typer.Option("--input", "-i", help="Input tensor .npy (N×C×H×W float32).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output tensor .npy (a model with several "
                                         "outputs: .npz, one array per output name).")] = Path("output.npy"),
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
) -> None:
    """Raw tensors in and out, for scripting."""
    artifact = resolve_artifact(model, converted_dir, fmt, precision)
    try:
        batch = np.load(input_file)
    except (OSError, ValueError) as exc:
        raise FacezooError(f"{input_file}: cannot read a .npy tensor: {exc}") from None
    with load(artifact.path, device=device, backend=backend) as loaded:
        outputs = loaded.infer(batch)
    if len(outputs) == 1:
        (result,) = outputs.values()
        _save(output, ".npy", lambda partial: np.save(partial, result))
        shapes = str(tuple(result.shape))
    else:
        if output.suffix != ".npz":
            raise FacezooError(f"-o {output}: {artifact.path.name} has {len(outputs)} outputs "
                               f"({', '.join(outputs)}); give a .npz file for them")
        _save(output, ".npz", lambda partial: np.savez(partial, **outputs))
        shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in outputs.items())
    console.print(f"{tuple(batch.shape)} → {shapes} saved to {output}", highlight=False)


def _save(path: Path, suffix: str, write) -> None:
    with atomic_path(path, suffix=suffix) as partial:  # np.save would append .npy to any other name
        write(partial)
