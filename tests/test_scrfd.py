"""facezoo's SCRFD decoder against insightface's own SCRFD class, both on the stand-in graph.

The reference is ``insightface/model_zoo/scrfd.py`` from the insightface 2.1 sdist, fetched
through this machine's package index (pip) and loaded by file path; its two sibling imports
(``.coreml_cache``, ``.onnxruntime_utils``) are stubbed, nothing else is changed. Same photo, same
faces: boxes, scores and landmarks equal to the last bit. Mutations (anchor count, stride order,
anchor layout) are shown to break that.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import tarfile
import types
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from facezoo.errors import ConversionError
from facezoo.registry import load_zoo
from facezoo.runtime import Detector
from facezoo.sources.onnx.scrfd_standin import INPUT_NAME, OUTPUT_NAMES, write_scrfd_like
from facezoo.tasks.detectors import scrfd
from facezoo.tasks.detectors.face import Face, RunPart
from reference_sdists import fetch_sdist

PHOTO = Path(__file__).parent / "data" / "photos" / "astronaut.jpg"
SDIST = "insightface-2.1.tar.gz"
SDIST_SHA256 = "776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01"
MEMBER = "insightface-2.1/insightface/model_zoo/scrfd.py"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return write_scrfd_like(tmp_path_factory.mktemp("scrfd") / "det_10g_standin.onnx", seed=0)


@pytest.fixture(scope="module")
def insightface_scrfd(tmp_path_factory):
    """insightface's SCRFD class, imported under a private package name: ``insightface_scrfd(file)``
    is its detector on that ONNX file, prepared at 640×640 on the CPU."""
    sdist = fetch_sdist("insightface==2.1", SDIST, SDIST_SHA256, tmp_path_factory.mktemp("insightface-sdist"))
    folder = tmp_path_factory.mktemp("insightface")
    with tarfile.open(sdist) as archive:
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
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value

    def detector(model_file: Path):
        made = module.SCRFD(model_file=str(model_file))
        made.prepare(-1, input_size=(640, 640))
        return made

    return detector


@pytest.fixture(scope="module")
def reference(insightface_scrfd, model_path):
    """insightface's SCRFD on the stand-in file."""
    return insightface_scrfd(model_path)


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


# ----------------------------------------------------------------------------- the zoo entry, end to end


def test_the_zoo_entry_has_the_real_files_facts():
    spec = load_zoo().get("scrfd")
    [file] = spec.files
    assert (file.name, file.size) == ("scrfd_10g_bnkps.onnx", 16_923_827)
    assert file.sha256 == "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"
    assert "non-commercial" in spec.license
    assert spec.input.channel_order == "RGB" and spec.input.mean == [127.5] and spec.input.std == [128.0]
    [part] = spec.parts
    assert part.outputs == list(OUTPUT_NAMES) and part.outputs_batched is False
    assert {a.metric: a.value for a in spec.accuracy} == {"AP-easy": 0.954, "AP-medium": 0.9401, "AP-hard": 0.828}


@pytest.fixture(scope="module")
def scrfd_download(tmp_path_factory) -> Path:
    """The stand-in behind the zoo entry, served on loopback and downloaded by facezoo."""
    from facezoo.downloader import download_models
    from facezoo.standins import build_standins
    from facezoo.standins.server import StandinServer

    root = tmp_path_factory.mktemp("scrfd-zoo")
    with StandinServer(root / "standins") as server:
        zoo = build_standins(load_zoo(), root / "standins", ["scrfd"], base_url=server.url).zoo()
        summary = download_models(zoo.select("scrfd"), output_dir=root / "models", cache_dir=root / "cache",
                                  progress="none", timeout=30.0, retry_delay=0.01)
    assert summary.ok, summary.failed
    return root / "models"


def test_scrfd_converts_everywhere_and_finds_what_insightface_finds(scrfd_download, insightface_scrfd, tmp_path):
    """Converted to ONNX, IR and MINDIR at FP32 and FP16 (each passing the gates; every head given
    a batch axis), and the converted IR gives the faces insightface's SCRFD gives on the file."""
    from facezoo.conversion import ConversionRequest, convert_model

    result = convert_model(ConversionRequest(load_zoo().get("scrfd"), scrfd_download, tmp_path,
                                             ["onnx", "openvino", "mindir"], ["FP32", "FP16"]))
    assert result.passed and result.published == ["FP32", "FP16"], result.error
    card = json.loads((tmp_path / "scrfd" / "FP32" / "model_card.json").read_text())
    assert card["input"]["shape"] == [-1, 3, 640, 640] and "letterbox" in card["size_policy"]
    shapes = card["parts"]["net"]["output_shapes"]
    assert shapes["448"] == [-1, 12800, 1] and shapes["497"] == [-1, 800, 4] and shapes["500"] == [-1, 800, 10]
    photos = [c for c in result.checks if c.file.endswith("(photos)")]
    assert photos and all(c.passed and c.metrics["matched"] == c.metrics["faces"] > 0 for c in photos)

    reference = insightface_scrfd(scrfd_download / "scrfd" / "scrfd_10g_bnkps.onnx")
    detector = Detector("scrfd", converted_dir=tmp_path)
    try:
        for image in (_photo(), _wide(_photo())):
            det, kpss = reference.detect(image, input_size=(640, 640))
            faces = detector.detect(image)
            assert len(faces) == len(det) > 0
            boxes, points = _as_arrays(faces)
            np.testing.assert_allclose(boxes[:, :4], det[:, :4], atol=0.05)
            np.testing.assert_allclose(boxes[:, 4], det[:, 4], atol=1e-4)
            np.testing.assert_allclose(points, kpss, atol=0.05)
    finally:
        detector.close()


def test_heads_without_a_batch_axis_must_be_declared(scrfd_download, tmp_path):
    """Left at the default (outputs_batched: true), the file's (rows, C) heads are caught by name,
    with the fix, and nothing is published."""
    from facezoo.conversion import ConversionRequest, convert_model

    spec = load_zoo().get("scrfd")
    undeclared = dataclasses.replace(spec, parts=[dataclasses.replace(spec.parts[0], outputs_batched=True)])
    result = convert_model(ConversionRequest(undeclared, scrfd_download, tmp_path, ["onnx"], ["FP32"]))
    assert not result.passed and not result.published
    assert "output '448' has shape [12800, 1] for a batch of 1" in result.error
    assert "parts[net].outputs_batched: false" in result.error
    assert not (tmp_path / "scrfd" / "FP32").exists()


def test_a_head_not_made_by_a_reshape_cannot_be_given_a_batch_axis():
    from onnx import TensorProto, helper

    from facezoo.sources.onnx import graph as edits

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ConversionError, match="output 'y' has no batch axis and is not made by a Reshape"):
        edits.add_output_batch_axis(model, ["y"], 1)


def test_heads_that_share_one_reshape_target_get_one_batched_target():
    """Exporters share constants: two heads reshaped by the same [-1, C] initializer."""
    import onnxruntime as ort
    from onnx import TensorProto, checker, helper, numpy_helper

    from facezoo.sources.onnx import graph as edits

    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "target"], ["a"]),
             helper.make_node("Neg", ["t"], ["n"]),
             helper.make_node("Reshape", ["n", "target"], ["b"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [12, 2]) for n in "ab"],
                              [numpy_helper.from_array(np.array([-1, 2], np.int64), "target")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    edits.add_output_batch_axis(model, ["a", "b"], 1)
    edits.make_batch_dynamic(model)
    checker.check_model(model)
    x = np.arange(48, dtype=np.float32).reshape(2, 2, 3, 4)
    a, b = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert a.shape == b.shape == (2, 12, 2)
    np.testing.assert_array_equal(a[1], x[1].transpose(1, 2, 0).reshape(-1, 2))
    np.testing.assert_array_equal(b, -a)
