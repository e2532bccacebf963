"""facezoo's SCRFD decoder against insightface's own SCRFD class, both on the stand-in graph.

The reference is ``insightface/model_zoo/scrfd.py`` from the insightface 2.1 sdist, loaded by file
path from /tmp/insf/insightface-2.1.tar.gz (or $FACEZOO_INSIGHTFACE_SDIST); its two sibling imports
(``.coreml_cache``, ``.onnxruntime_utils``) are stubbed, nothing else is changed. Without the sdist
the comparisons are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tarfile
import types
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from facezoo.sources.onnx.scrfd_standin import INPUT_NAME, OUTPUT_NAMES, write_scrfd_like
from facezoo.tasks.detectors import scrfd
from facezoo.tasks.detectors.face import Face, RunPart

PHOTO = Path(__file__).parent / "data" / "photos" / "astronaut.jpg"
SDIST = Path(os.environ.get("FACEZOO_INSIGHTFACE_SDIST", "/tmp/insf/insightface-2.1.tar.gz"))
MEMBER = "insightface-2.1/insightface/model_zoo/scrfd.py"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return write_scrfd_like(tmp_path_factory.mktemp("scrfd") / "det_10g_standin.onnx", seed=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_path):
    """insightface's SCRFD on the stand-in file, imported under a private package name."""
    if not SDIST.is_file():
        pytest.skip(f"insightface sdist not at {SDIST}")
    folder = tmp_path_factory.mktemp("insightface")
    with tarfile.open(SDIST) as archive:
        (folder / "scrfd.py").write_bytes(archive.extractfile(MEMBER).read())
    package = "_facezoo_insightface_ref"
    stubs = {
        package: types.ModuleType(package),
        f"{package}.coreml_cache": types.ModuleType(f"{package}.coreml_cache"),
        f"{package}.onnxruntime_utils": types.ModuleType(f"{package}.onnxruntime_utils"),
    }
    stubs[package].__path__ = [str(folder)]

    def unused(*args, **kwargs):
        raise AssertionError("CoreML is not used here")

    stubs[f"{package}.coreml_cache"].copy_session_options = unused
    stubs[f"{package}.coreml_cache"].create_coreml_session = unused
    stubs[f"{package}.onnxruntime_utils"].get_default_providers = lambda: ["CPUExecutionProvider"]
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location(f"{package}.scrfd", folder / "scrfd.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        detector = module.SCRFD(model_file=str(model_path))
        detector.prepare(-1, input_size=(640, 640))
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    return detector


@pytest.fixture(scope="module")
def run(model_path) -> RunPart:
    """The stand-in behind facezoo's contract (N×3×H×W float32 BGR 0..255): the converted graph's
    job, BGR→RGB and (x − 127.5) / 128, done here."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def run(part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert part == "net"
        x = ((np.asarray(batch, np.float32)[:, ::-1] - np.float32(127.5)) / np.float32(128.0)).astype(np.float32)
        return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(x)})))

    return run


def _photo() -> np.ndarray:
    image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _wide(image: np.ndarray) -> np.ndarray:
    """Two copies at two scales on a gray 400×900 canvas: the letterbox fills the width."""
    canvas = np.full((400, 900, 3), 90, np.uint8)
    a = cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    b = cv2.resize(image, None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)
    canvas[:358, :358] = a[:358, :358]
    canvas[100:100 + b.shape[0], 500:500 + b.shape[1]] = b
    return canvas


def _tall(image: np.ndarray) -> np.ndarray:
    """One small copy low on a 700×300 canvas: the letterbox fills the height, upscaling nothing."""
    canvas = np.full((700, 300, 3), 160, np.uint8)
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas[400:656, 20:276] = small
    return canvas


IMAGES = {"astronaut": _photo, "wide": lambda: _wide(_photo()), "tall": lambda: _tall(_photo())}


def _as_arrays(faces: list[Face]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([list(f.box) + [f.score] for f in faces], np.float32).reshape(-1, 5)
    points = np.array([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2)
    return boxes, points


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_same_faces_as_the_reference(name, reference, run):
    image = IMAGES[name]()
    det, kpss = reference.detect(image, input_size=(640, 640))
    faces = scrfd.detect(image, run)
    assert len(det) > 0, "the stand-in should find the photo's face"
    boxes, points = _as_arrays(faces)
    np.testing.assert_array_equal(boxes, det)
    np.testing.assert_array_equal(points, kpss)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_alternatives_are_what_nms_merged(name, reference, run):
    image = IMAGES[name]()
    candidates, _ = reference._detect_candidates(image, (640, 640), 0.5)
    faces = scrfd.detect(image, run)
    assert len(faces) + sum(len(f.alternatives) for f in faces) == len(candidates)
    for face in faces:
        for other in face.alternatives:
            assert other.score <= face.score
            x1, y1 = max(face.box[0], other.box[0]), max(face.box[1], other.box[1])
            x2, y2 = min(face.box[2], other.box[2]), min(face.box[3], other.box[3])
            inter = max(0.0, x2 - x1 + 1) * max(0.0, y2 - y1 + 1)
            union = ((face.box[2] - face.box[0] + 1) * (face.box[3] - face.box[1] + 1)
                     + (other.box[2] - other.box[0] + 1) * (other.box[3] - other.box[1] + 1) - inter)
            assert inter / union > scrfd.NMS_THRESHOLD - 1e-6


def test_thresholds_are_passed_through(reference, run):
    image = _photo()
    reference.nms_thresh = 0.2
    try:
        det, _ = reference.detect(image, input_size=(640, 640), det_thresh=0.7)
    finally:
        reference.nms_thresh = 0.4
    boxes, _ = _as_arrays(scrfd.detect(image, run, score_threshold=0.7, nms_threshold=0.2))
    np.testing.assert_array_equal(boxes, det)


def test_a_gray_image_has_no_face(run):
    assert scrfd.detect(np.full((480, 640, 3), 128, np.uint8), run) == []


def test_a_wrong_anchor_count_or_stride_order_is_caught(run, monkeypatch):
    image = _photo()
    with monkeypatch.context() as patch:
        patch.setattr(scrfd, "NUM_ANCHORS", 1)
        with pytest.raises(ValueError):
            scrfd.detect(image, run)
    with monkeypatch.context() as patch:
        patch.setattr(scrfd, "STRIDES", tuple(reversed(scrfd.STRIDES)))
        with pytest.raises(ValueError):
            scrfd.detect(image, run)


def test_anchors_laid_out_wrongly_give_other_faces(reference, run, monkeypatch):
    """Anchors tiled (all cells, then all cells again) instead of each cell's two adjacent: the
    sizes fit, so only a comparison with the reference catches it."""
    image = _photo()
    det, _ = reference.detect(image, input_size=(640, 640))

    right = scrfd.anchor_centres

    def tiled(rows, cols, stride, anchors=scrfd.NUM_ANCHORS):
        return np.tile(right(rows, cols, stride, 1), (anchors, 1))

    monkeypatch.setattr(scrfd, "anchor_centres", tiled)
    boxes, _ = _as_arrays(scrfd.detect(image, run))
    assert boxes.shape != det.shape or not np.allclose(boxes, det, atol=1.0)
