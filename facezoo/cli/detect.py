"""`facezoo detect`: faces in photos, as JSON, a table and drawn photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facezoo.accuracy.agreement import write_json_atomic
from facezoo.atomic import write_bytes_atomic
from facezoo.cli.common import console, err_console, reports_errors
from facezoo.runtime.resolve import DEFAULT_CONVERTED_DIR

DetectorArgument = Annotated[str, typer.Argument(help="A converted detector: zoo name (yunet, mtcnn, scrfd) or file.")]


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detection_document(detector: str, photos: list[dict]) -> dict:
    """The JSON of `facezoo detect` (and the faces of `embed --json`): one record per photo."""
    return {"detector": detector, "images": photos}


def photo_record(path: Path | str, image, faces) -> dict:
    return {"path": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
            "faces": [face.as_dict() for face in faces]}


@reports_errors
def detect(
    detector: DetectorArgument,
    images: Annotated[list[Path], typer.Argument(help="Photos (jpg/png/bmp; EXIF orientation is applied).")],
    converted_dir: Annotated[Path, typer.Option("-c", "--converted-dir", help="Where zoo names are looked up.")] = (
        DEFAULT_CONVERTED_DIR),
    fmt: Annotated[Optional[str], typer.Option("--format", help="openvino, onnx or mindir.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="FP32, FP16, INT8 or BF16.")] = None,
    score: Annotated[Optional[float], typer.Option("--score", min=0.0, max=1.0,
                                                   help="Score threshold (default: the model card's).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the faces here as JSON.")] = None,
    draw: Annotated[Optional[Path], typer.Option("--draw", help="Write each photo with its faces drawn into this folder.")] = None,
    device: Annotated[str, typer.Option("--device", help="CPU, GPU, Ascend or AUTO.")] = "CPU",
    backend: Annotated[Optional[str], typer.Option("--backend", help="openvino, onnxruntime or mindspore.")] = None,
) -> None:
    """Find faces in photos: box (x1, y1, x2, y2), score and five landmarks (the ArcFace template's
    order: the eye on the image's left, the one on its right, the nose tip, the mouth corner on the
    image's left, the one on its right), in pixels of each photo as displayed.

    A photo with no face is reported by name and makes the exit code 1 (the JSON still lists it).
    """
    import cv2
    from rich.table import Table

    from facezoo.images import read_image
    from facezoo.runtime import Detector
    from facezoo.runtime.drawing import draw_faces

    model = Detector(detector, converted_dir=converted_dir, format=fmt, precision=precision, device=device,
                     backend=backend, score_threshold=score)
    records, empty = [], []
    table = Table("image", "size", "faces", "best score", title=f"{detector} ({model.artifact.format} "
                  f"{model.artifact.precision}, score ≥ {model.score_threshold:g})")
    try:
        for path in images:
            image = read_image(path)
            faces = model.detect(image)
            records.append(photo_record(path, image, faces))
            table.add_row(str(path), f"{image.shape[1]}×{image.shape[0]}", str(len(faces)),
                          f"{faces[0].score:.3f}" if faces else "-")
            if not faces:
                empty.append(str(path))
            if draw is not None:
                draw.mkdir(parents=True, exist_ok=True)
                ok, encoded = cv2.imencode(".jpg", draw_faces(image, faces), [cv2.IMWRITE_JPEG_QUALITY, 92])
                write_bytes_atomic(draw / f"{path.stem}.faces.jpg", encoded.tobytes())
    finally:
        model.close()
    console.print(table)
    if json_path is not None:
        document = detection_document(model.artifact.model, records)
        write_json_atomic(json_path, document)
        console.print(f"faces: {json_path}", highlight=False)
    if draw is not None:
        console.print(f"drawn: {draw}/", highlight=False)
    if empty:
        for path in empty:
            err_console.print(f"[red]no face found in {path}[/]", highlight=False)
        raise typer.Exit(1)


__all__ = ["detect", "detection_document", "photo_record"]
