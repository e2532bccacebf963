"""`facezoo embed-dataset` on a real local Ray: every row equals the in-process Embedder."""

from __future__ import annotations

import json
import os
import subprocess

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facezoo.faces import synthetic_face
from facezoo.preprocessing import template
from facezoo.runtime import Embedder, load
from serving_support import NAME, facezoo_command

LOCAL_RAY = ["--num-cpus", "2", "--object-store-mb", "200"]


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(facezoo_command("embed-dataset", *args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "400"})


def _rows(output) -> dict[tuple[str, int], dict]:
    table = pq.read_table(output)
    assert table.schema.field("path").type == pa.string() and table.schema.field("face").type == pa.int32()
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    return {(row["path"], row["face"]): row for row in table.to_pylist()}


@pytest.fixture(scope="module")
def model_file(converted_standin):
    return converted_standin.converted_dir / NAME / "FP32" / f"{NAME}.xml"


def test_aligned_crops_with_a_corrupt_file(tmp_path, converted_standin, model_file):
    images = tmp_path / "faces"
    crops = {}
    for index in range(240):  # a few hundred faces in nested folders, PNG and lossless names
        path = f"person{index % 12:02d}/{index:03d}.png"
        crops[path] = synthetic_face(index % 40, index // 40)
        (images / path).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(images / path), crops[path])
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (images / "empty.png").write_bytes(b"")
    assert cv2.imwrite(str(images / "photo.png"), cv2.resize(synthetic_face(1), (250, 250)))
    output = tmp_path / "out" / "faces.parquet"
    result = _run([str(images), "--model", NAME, "-c", str(converted_standin.converted_dir), "-o", str(output),
                   "--batch-size", "16", *LOCAL_RAY])
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "240 embeddings of 243 images" in " ".join(result.stdout.split())
    failures = " ".join(result.stderr.split())
    assert "3 failed" in failures and "broken.jpg: cannot decode" in failures and "empty.png" in failures
    assert "photo.png: 250×250 is not an aligned face crop" in failures
    rows = _rows(output)
    assert len(rows) == 243
    for path in ("broken.jpg", "empty.png", "photo.png"):
        assert rows[(path, -1)]["embedding"] is None and rows[(path, -1)]["error"]
    names = sorted(crops)
    with load(model_file) as model:
        expected = Embedder(model).embed([crops[name] for name in names])
    got = np.asarray([rows[(name, 0)]["embedding"] for name in names], np.float32)
    assert all(rows[(name, 0)]["error"] is None for name in names)
    np.testing.assert_allclose(got, expected, atol=1e-4)  # batches of other sizes: last-digit differences
    assert not [p.name for p in output.parent.iterdir() if p.name.startswith(".")]  # staging renamed away


def _photo_with_faces(identities: list[int]) -> tuple[np.ndarray, list[list[list[float]]]]:
    """A 320×200 photo with one face per identity, each turned and scaled differently, and their points."""
    photo = np.full((200, 320, 3), 70, np.uint8)
    points = []
    for slot, identity in enumerate(identities):
        matrix = cv2.getRotationMatrix2D((56, 56), -8 + 16 * slot, 1.2)
        matrix[:, 2] += (20 + 160 * slot, 30)
        warped = cv2.warpAffine(synthetic_face(identity), matrix, (320, 200), borderValue=(0, 0, 0))
        mask = cv2.warpAffine(np.full((112, 112), 255, np.uint8), matrix, (320, 200)) > 0
        photo[mask] = warped[mask]
        points.append((np.hstack([template((112, 112)), np.ones((5, 1))]) @ matrix.T).tolist())
    return photo, points


def test_landmarks_align_every_face_on_two_actors(tmp_path, converted_standin, model_file):
    images = tmp_path / "photos"
    images.mkdir()
    landmarks, photos = {}, {}
    for index in range(24):
        name = f"group{index:02d}.png"
        photo, points = _photo_with_faces([index, 50 + index] if index % 3 else [index])
        assert cv2.imwrite(str(images / name), photo)
        photos[name] = (photo, np.asarray(points))
        landmarks[name if index % 2 else str(images / name)] = points  # relative and absolute keys
    assert cv2.imwrite(str(images / "unlisted.png"), synthetic_face(3))
    landmarks_file = tmp_path / "landmarks.json"
    landmarks_file.write_text(json.dumps(landmarks))
    output = tmp_path / "aligned.parquet"
    args = [str(images), "--model", NAME, "-c", str(converted_standin.converted_dir), "-o", str(output),
            "--landmarks", str(landmarks_file), "--actors", "2", "--batch-size", "8",
            "--num-cpus", "3", "--object-store-mb", "200"]
    result = _run(args)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "unlisted.png: no landmarks for this image" in " ".join(result.stderr.split())
    rows = _rows(output)
    assert len(rows) == sum(len(points) for _, points in photos.values()) + 1
    with load(model_file) as model:
        embedder = Embedder(model)
        for name, (photo, points) in photos.items():
            expected = embedder.embed([photo] * len(points), landmarks=points)
            for face in range(len(points)):
                np.testing.assert_allclose(rows[(name, face)]["embedding"], expected[face], atol=1e-4)  # batches of other sizes: last-digit differences


def test_bad_arguments_are_errors_naming_them(tmp_path, converted_standin):
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "nowhere"), "--model", NAME], "not a folder"),
        ([str(tmp_path / "empty"), "--model", NAME], "no images"),
        ([str(tmp_path), "--model", NAME, "--actors", "0"], "--actors"),
        ([str(tmp_path), "--model", "nope"], "no converted model"),
        ([str(tmp_path), "--model", NAME, "--ray-address", "127.0.0.1:1", "--num-cpus", "2"], "--num-cpus"),
    ]
    for args, message in cases:
        result = _run([*args, "-c", str(converted_standin.converted_dir), "-o", str(tmp_path / "x.parquet")], 120)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a.png": [[1, 2, 3]]}))
    assert cv2.imwrite(str(tmp_path / "a.png"), synthetic_face(1))
    result = _run([str(tmp_path), "--model", NAME, "-c", str(converted_standin.converted_dir), "-o",
                   str(tmp_path / "x.parquet"), "--landmarks", str(bad)], 120)
    assert result.returncode == 1 and "'a.png': expected a list of 5×2 points per face" in result.stderr
