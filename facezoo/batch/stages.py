"""The job's per-batch steps, plain functions of numpy batches (Ray calls them on its workers).

Bad input never fails a batch: a file that does not decode, or a face that does not align,
becomes a row with its error and no embedding, and every good row is still written.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa

from facezoo.batch.inputs import relative_path
from facezoo.errors import FacezooError
from facezoo.preprocessing import align_face, fit_crop

IMAGE_FAILED = -1  # `face` of a row whose image could not be read at all


def decode_faces(batch: dict, *, root: str, size: tuple[int, int], landmarks: dict | None,
                 landmarks_file: str = "") -> dict:
    """Bytes and paths in; one row per face out: aligned crop (H×W×3 BGR uint8) or error."""
    height, width = size
    paths, faces, crops, errors = [], [], [], []

    def add(path: str, face: int, crop: np.ndarray | None, error: str = "") -> None:
        paths.append(path)
        faces.append(face)
        crops.append(crop if crop is not None else np.zeros((height, width, 3), np.uint8))
        errors.append(error)

    for data, full_path in zip(batch["bytes"], batch["path"]):
        path = relative_path(str(full_path), root)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
        if image is None:
            add(path, IMAGE_FAILED, None, "cannot decode the image (empty, corrupt, or not a format OpenCV reads)")
            continue
        if landmarks is None:
            try:
                add(path, 0, fit_crop(image, size, label="image"))
            except FacezooError as exc:  # the raw-photo guard: not an aligned crop of the model's size
                add(path, IMAGE_FAILED, None, str(exc).removeprefix("image: "))
            continue
        points = landmarks.get(path)
        if points is None:
            add(path, IMAGE_FAILED, None, f"no landmarks for this image in {landmarks_file or 'the landmarks file'}")
            continue
        if len(points) == 0:
            add(path, IMAGE_FAILED, None, "the landmarks file lists no face for this image")
            continue
        for face, face_points in enumerate(points):
            try:
                add(path, face, align_face(image, face_points, size))
            except FacezooError as exc:
                add(path, face, None, f"face {face}: {exc}")
    return {
        "path": np.asarray(paths, dtype=object),
        "face": np.asarray(faces, dtype=np.int32),
        "image": np.stack(crops),
        "error": np.asarray(errors, dtype=object),
    }


class DetectFaces:
    """Ray Data callable class: photos (bytes) in, one aligned crop per face found out, with the
    face's box, score and landmarks; a photo with no face (or that does not decode) is an error
    row. The detector is loaded once per actor."""

    def __init__(self, detector: str, size: tuple[int, int], root: str, device: str = "CPU"):
        from facezoo.runtime import Detector

        self.detector = Detector(detector, device=device)
        self.size = tuple(size)
        self.root = root

    def __call__(self, batch: dict) -> dict:
        height, width = self.size
        rows: dict[str, list] = {key: [] for key in ("path", "face", "image", "error", "box", "score", "landmarks")}

        def add(path, face, crop=None, error="", found=None):
            rows["path"].append(path)
            rows["face"].append(face)
            rows["image"].append(crop if crop is not None else np.zeros((height, width, 3), np.uint8))
            rows["error"].append(error)
            rows["box"].append(np.asarray(found.box, np.float32) if found else np.full(4, np.nan, np.float32))
            rows["score"].append(np.float32(found.score) if found else np.float32(np.nan))
            rows["landmarks"].append(np.asarray(found.landmarks, np.float32).reshape(10) if found
                                     else np.full(10, np.nan, np.float32))

        for data, full_path in zip(batch["bytes"], batch["path"]):
            path = relative_path(str(full_path), self.root)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
            if image is None:
                add(path, IMAGE_FAILED, error="cannot decode the image (empty, corrupt, or not a format OpenCV reads)")
                continue
            found = self.detector.detect(image)
            if not found:
                add(path, IMAGE_FAILED, error="no face found")
                continue
            for index, face in enumerate(found):
                try:
                    add(path, index, align_face(image, face.landmarks, self.size), found=face)
                except FacezooError as exc:
                    add(path, index, error=f"face {index}: {exc}", found=face)
        return {"path": np.asarray(rows["path"], dtype=object), "face": np.asarray(rows["face"], np.int32),
                "image": np.stack(rows["image"]), "error": np.asarray(rows["error"], dtype=object),
                "box": np.stack(rows["box"]), "score": np.asarray(rows["score"], np.float32),
                "landmarks": np.stack(rows["landmarks"])}


OUTPUT_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("face", pa.int32()),
    ("embedding", pa.list_(pa.float32())),
    ("error", pa.string()),
])
#: With a detector (`embed-dataset --detector`), each row also says which face it is: x1, y1, x2, y2;
#: the detector's score; 5×2 landmarks in the ArcFace template's order (null on an error row).
DETECTED_SCHEMA = pa.schema([
    *OUTPUT_SCHEMA,
    ("box", pa.list_(pa.float32(), 4)),
    ("score", pa.float32()),
    ("landmarks", pa.list_(pa.list_(pa.float32(), 2), 5)),
])


def output_table(batch: dict) -> pa.Table:
    """The Parquet rows: path, face, embedding (float32 list, null on error), error (null if none)."""
    embeddings = np.ascontiguousarray(batch["embedding"], dtype=np.float32)
    count, dimension = embeddings.shape
    failed = np.asarray([bool(e) for e in batch["error"]])
    offsets = pa.array(np.arange(0, (count + 1) * dimension, dimension, dtype=np.int32))
    vectors = pa.ListArray.from_arrays(offsets, pa.array(embeddings.ravel()), mask=pa.array(failed))
    errors = pa.array([str(e) if e else None for e in batch["error"]], type=pa.string())
    columns = [pa.array([str(p) for p in batch["path"]], pa.string()), pa.array(batch["face"], pa.int32()), vectors, errors]
    if "box" not in batch:
        return pa.Table.from_arrays(columns, schema=OUTPUT_SCHEMA)
    missing = pa.array(~np.isfinite(np.asarray(batch["score"], np.float32)))
    boxes = np.ascontiguousarray(batch["box"], np.float32)
    points = np.ascontiguousarray(batch["landmarks"], np.float32).reshape(count, 10)
    columns += [
        pa.FixedSizeListArray.from_arrays(pa.array(boxes.ravel()), 4, mask=missing),
        pa.array(np.asarray(batch["score"], np.float32), pa.float32(), mask=np.asarray(missing)),
        pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pa.array(points.ravel()), 2), 5,
                                          mask=missing),
    ]
    return pa.Table.from_arrays(columns, schema=DETECTED_SCHEMA)
