"""`facezoo embed`, `facezoo compare`, `facezoo infer`: run converted models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

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


@reports_errors
def embed(
    model: ModelArgument,
    images: Annotated[list[Path], typer.Argument(help="Face images (aligned crops, or give --landmarks).")],
    landmarks: Annotated[Optional[Path], typer.Option("--landmarks", help="5-point landmarks: .npy N×5×2 or JSON.")] = None,
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

    Images must be 5-point aligned crops of the model's input size, or come with --landmarks.
    """
    embedder = _embedder(model, converted_dir, fmt, precision, device, backend, resize)
    embeddings = embedder.embed([read_image(p) for p in images], _landmarks(landmarks, images))
    _save(output, ".npy", lambda partial: np.save(partial, embeddings))
    console.print(
        f"{len(images)} embeddings of dimension {embeddings.shape[1]} from {embedder.artifact.path} "
        f"({embedder.model.backend.name}, {embedder.model.backend.device}) → {output}",
        highlight=False,
    )


@reports_errors
def compare(
    model: ModelArgument,
    image1: Annotated[Path, typer.Argument()],
    image2: Annotated[Path, typer.Argument()],
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="Cosine at or above which the faces match.")
    ] = None,
    landmarks: Annotated[Optional[Path], typer.Option("--landmarks", help="Landmarks for both images.")] = None,
    converted_dir: ConvertedDir = DEFAULT_CONVERTED_DIR,
    fmt: FormatOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = "CPU",
    backend: BackendOption = None,
    resize: ResizeOption = False,
) -> None:
    """Cosine similarity of two faces, and a same/different verdict with --threshold.

    Images must be 5-point aligned crops of the model's input size, or come with --landmarks.
    """
    embedder = _embedder(model, converted_dir, fmt, precision, device, backend, resize)
    pair = [image1, image2]
    first, second = embedder.embed([read_image(p) for p in pair], _landmarks(landmarks, pair))
    score = cosine_similarity(first, second)
    line = f"cosine similarity {score:.4f}"
    if threshold is not None:
        line += f": {'same person' if score >= threshold else 'different people'} at threshold {threshold:g}"
    console.print(line, highlight=False)


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
