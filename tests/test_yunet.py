"""YuNet: facezoo's decoder against OpenCV's own (``cv2.FaceDetectorYN``), and the stand-in file.

Two kinds of nets feed both decoders. The stand-in (:mod:`facezoo.sources.onnx.yunet_standin`)
runs on the astronaut photo and composites of it; facezoo runs it in ONNX Runtime, OpenCV in its
DNN module, so the two differ by float rounding only. The stand-in itself must behave like a
trained YuNet (one face per face, near-tied priors agreeing on the box) and keep its faces and raw
heads when rounded to FP16, or it would judge converters by its own fragility. "Scripted" nets
return fixed raw outputs whatever the image, so the corner cases of OpenCV's decoding can be set up
exactly: score ties
across strides, a score equal to the threshold, boxes whose integer truncation decides NMS,
clamping of cls/obj, top_k. Each mutation test shows that a plausibly wrong decoder would fail
the comparison on those inputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facezoo.sources.onnx import yunet_standin
from facezoo.sources.onnx.yunet_standin import write_yunet_standin
from facezoo.tasks.detection import box_iou
from facezoo.tasks.detectors import yunet
from facezoo.tasks.detectors.face import Face

PHOTO = Path(__file__).resolve().parent / "data" / "photos" / "astronaut.jpg"
HEADS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
# ONNX Runtime and OpenCV DNN compute the same float32 graph with different kernels: the
# measured gaps are ~5e-5 px (boxes up to ~900 px) and ~2e-7 in score; these leave 20x room.
BOX_TOL, POINT_TOL, SCORE_TOL = 1e-3, 1e-3, 1e-5


# -- helpers ------------------------------------------------------------------------------------
def rows_of(faces: list[Face]) -> np.ndarray:
    """facezoo's faces as OpenCV's N×15 rows (x, y, w, h, 5 landmark pairs, score)."""
    return np.array([[f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1],
                      *np.asarray(f.landmarks).reshape(-1), f.score] for f in faces], np.float64).reshape(-1, 15)


def opencv_faces(model: str | bytes, image: np.ndarray, score_threshold=yunet.SCORE_THRESHOLD,
                 nms_threshold=yunet.NMS_THRESHOLD, top_k=yunet.TOP_K) -> np.ndarray:
    """cv2.FaceDetectorYN's N×15 rows for ``image`` (a path or the ONNX bytes)."""
    h, w = image.shape[:2]
    if isinstance(model, bytes):
        detector = cv2.FaceDetectorYN.create("onnx", np.frombuffer(model, np.uint8), np.zeros(0, np.uint8),
                                             (w, h), score_threshold, nms_threshold, top_k)
    else:
        detector = cv2.FaceDetectorYN.create(model, "", (w, h), score_threshold, nms_threshold, top_k)
    _, faces = detector.detect(image)
    return np.zeros((0, 15)) if faces is None else faces.astype(np.float64)


def same_faces(ours: np.ndarray, reference: np.ndarray) -> bool:
    return (ours.shape == reference.shape
            and np.allclose(ours[:, :4], reference[:, :4], rtol=0, atol=BOX_TOL)
            and np.allclose(ours[:, 4:14], reference[:, 4:14], rtol=0, atol=POINT_TOL)
            and np.allclose(ours[:, 14], reference[:, 14], rtol=0, atol=SCORE_TOL))


def any_size(model: onnx.ModelProto) -> bytes:
    """The file with its declared 640×640 (and the outputs' prior counts) made symbolic.

    ONNX Runtime checks inputs against the declared shape, so it needs this to run the net at the
    padded image size as OpenCV does; OpenCV DNN ignores the declaration.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        for axis in (2, 3):
            value.type.tensor_type.shape.dim[axis].dim_param = f"{value.name}_{axis}"
    for value in model.graph.output:
        value.type.tensor_type.shape.dim[1].dim_param = f"{value.name}_priors"
    return model.SerializeToString()


def ort_run(session: ort.InferenceSession, seen: list | None = None):
    """The RunPart facezoo's decoder calls: the padded batch in, the 12 outputs by name out."""

    def run(part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert part == "net"
        if seen is not None:
            seen.append(batch)
        return dict(zip(yunet.OUTPUT_NAMES, session.run(list(yunet.OUTPUT_NAMES), {"input": batch})))

    return run


def blank_outputs(height: int, width: int) -> dict[str, np.ndarray]:
    return {f"{head}_{s}": np.zeros((1, (height // s) * (width // s), c), np.float32)
            for head, c in HEADS.items() for s in yunet.STRIDES}


def scripted_net(outputs: dict[str, np.ndarray], height: int, width: int) -> bytes:
    """An ONNX net whose 12 outputs are ``outputs`` whatever the image (the input feeds a zero)."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["mean", "shape3"], ["mean3"]),
             helper.make_node("Mul", ["mean3", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape3"),
             numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero")]
    declared = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        declared.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "scripted", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3, height, width])], declared, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def both(outputs: dict[str, np.ndarray], height: int, width: int, **thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(facezoo's rows, OpenCV's rows) for fixed raw outputs of a height×width image."""
    image = np.zeros((height, width, 3), np.uint8)
    ours = yunet.detect(image, lambda part, batch: outputs, **thresholds)
    return rows_of(ours), opencv_faces(scripted_net(outputs, height, width), image, **thresholds)


def put(outputs, stride: int, row: int, col: int, width: int, cls: float, obj: float,
        bbox=(0.5, 0.5, 0.0, 0.0), kps=None) -> None:
    """Set the raw outputs of one prior (cell ``row``, ``col`` of a ``width``-wide image's grid)."""
    i = row * (width // stride) + col
    outputs[f"cls_{stride}"][0, i, 0] = cls
    outputs[f"obj_{stride}"][0, i, 0] = obj
    outputs[f"bbox_{stride}"][0, i] = bbox
    outputs[f"kps_{stride}"][0, i] = np.zeros(10) if kps is None else kps


def decisions_are_clear(outputs: dict[str, np.ndarray], padded_h: int, padded_w: int, threshold: float = 0.9,
                        margin: float = 1e-3) -> bool:
    """Whether float noise of ``margin`` (px, and 1e-4 in score) could not change OpenCV's answer here:
    no score that close to the threshold, and no box coordinate that close to an integer whose
    truncation, moved by one, would change what NMS keeps. Two backends' rounding then cannot
    change the count: an agreement on these outputs is not luck."""
    scores = np.concatenate([np.sqrt(np.clip(outputs[f"cls_{s}"], 0, 1) * np.clip(outputs[f"obj_{s}"], 0, 1)).ravel()
                             for s in yunet.STRIDES])
    if np.any(np.abs(scores - np.float32(threshold)) < 1e-4):
        return False
    rows = rows_of(yunet.decode(outputs, padded_h, padded_w, padded_h, padded_w, threshold, 1.0, 100000))
    boxes, kept = rows[:, :4], rows[:, 14].tolist()  # every candidate (NMS at IoU 1 removes none)

    def nms(values):
        return list(cv2.dnn.NMSBoxes([tuple(int(v) for v in row) for row in values], kept, threshold, 0.3, 1.0, 5000))

    base = nms(boxes)
    for i, j in np.argwhere(np.abs(boxes - np.round(boxes)) < margin):
        for step in (-margin, margin):
            moved = boxes.copy()
            moved[i, j] += step
            if nms(moved) != base:
                return False
    return True


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return write_yunet_standin(tmp_path_factory.mktemp("yunet") / "face_detection_yunet_2023mar.onnx", seed=0)


@pytest.fixture(scope="module")
def session(standin) -> ort.InferenceSession:
    return ort.InferenceSession(any_size(onnx.load(str(standin))), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(PHOTO))
    assert image is not None and image.shape == (512, 512, 3)
    return image


def composites(photo: np.ndarray) -> dict[str, np.ndarray]:
    tile = cv2.resize(photo, (300, 300), interpolation=cv2.INTER_AREA)
    canvas = np.full((620, 640, 3), 90, np.uint8)  # 2x2 copies: plain, mirrored, upside down, darker
    canvas[:300, :300] = tile
    canvas[:300, 320:620] = tile[:, ::-1]
    canvas[310:610, :300] = tile[::-1]
    canvas[310:610, 320:620] = (tile * 0.8).astype(np.uint8)
    return {
        "photo": photo,
        "scaled 0.5": cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        "scaled 1.7": cv2.resize(photo, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_LINEAR),
        "rotated 90": cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE),
        "mirrored": np.ascontiguousarray(photo[:, ::-1]),
        "2x2 canvas": canvas,
        "cut by the border": np.ascontiguousarray(photo[100:, 210:]),  # the face's left and top cut off
        "641x479": cv2.resize(photo, (641, 479), interpolation=cv2.INTER_LINEAR),
    }


# -- (a) the stand-in on photos: facezoo + ONNX Runtime == cv2.FaceDetectorYN --------------------
def test_facezoo_finds_the_faces_opencv_finds_on_photos(standin, session, photo):
    counts = {}
    for name, image in composites(photo).items():
        seen: list[np.ndarray] = []
        ours = rows_of(yunet.detect(image, ort_run(session, seen)))
        reference = opencv_faces(str(standin), image)
        assert same_faces(ours, reference), (name, ours.shape, reference.shape)
        assert len(reference) >= 1, name  # the stand-in detects something on every one
        assert np.all(np.diff(ours[:, 14]) <= 0), name  # best first
        (batch,) = seen
        h, w = image.shape[:2]
        assert batch.dtype == np.float32 and batch.shape == (1, 3) + yunet.padded_size(h, w), name
        np.testing.assert_array_equal(batch[0, :, :h, :w], image.transpose(2, 0, 1))  # BGR 0..255 as is
        assert not batch[0, :, h:, :].any() and not batch[0, :, :, w:].any()
        assert decisions_are_clear(ort_run(session)("net", batch), *batch.shape[2:]), name
        counts[name] = len(reference)
    # one face per face, as a trained YuNet finds (NMS had work to do: see the next test)
    assert counts == {name: 4 if name == "2x2 canvas" else 1 for name in counts}


def test_the_photo_has_many_overlapping_candidates_and_some_near_the_threshold(session, photo):
    padded, (h, w) = yunet.pad_to_divisor(photo)
    outputs = ort_run(session)("net", padded.transpose(2, 0, 1)[None].astype(np.float32))
    scores = np.concatenate([np.sqrt(np.clip(outputs[f"cls_{s}"], 0, 1) * np.clip(outputs[f"obj_{s}"], 0, 1)).ravel()
                             for s in yunet.STRIDES])
    passing = int((scores >= 0.9).sum())
    faces = yunet.decode(outputs, h, w, *padded.shape[:2], 0.9, 0.3, 5000)
    assert len(faces) == 1 and passing >= 4  # NMS merges them into one face
    assert ((scores > 0.8) & (scores < 0.9)).sum() >= 3  # the threshold matters too
    # without NMS (IoU 1 removes none) every passing prior is a face; a top_k of 2 keeps two
    assert len(yunet.decode(outputs, h, w, *padded.shape[:2], 0.9, 1.0, 5000)) == passing
    assert len(yunet.decode(outputs, h, w, *padded.shape[:2], 0.9, 1.0, 2)) == 2
    assert len(yunet.decode(outputs, h, w, *padded.shape[:2], 0.9, 0.3, 2)) == 1
    # the stand-in's faces sit on the astronaut's face (x ~175..275, y ~60..185), the eyes in
    # ArcFace order: the eye on the image's left first
    best = faces[0]
    cx, cy = (best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2
    assert 150 < cx < 300 and 50 < cy < 200
    assert best.landmarks.shape == (5, 2) and best.landmarks.dtype == np.float32
    assert best.landmarks[0, 0] < best.landmarks[1, 0] and best.landmarks[3, 0] < best.landmarks[4, 0]


# -- (a') like a trained detector, and still so in FP16 --------------------------------------------
def gate_photos() -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """The detection gate's photos (facezoo.photos) with their face counts: the composite has an
    astronaut cut by the border, found or not."""
    from facezoo import photos

    counts = {"astronaut": (1, 1), "astronaut-mirrored-0.6": (1, 1), "composite": (3, 4), "generated": (1, 1)}
    return [(name, image, counts[name]) for name, image in photos.gate_photos()]


def raw_outputs(session: ort.InferenceSession, image: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    padded, (h, w) = yunet.pad_to_divisor(image)
    return ort_run(session)("net", padded.transpose(2, 0, 1)[None].astype(np.float32)), (h, w, *padded.shape[:2])


def near_ties(outputs: dict[str, np.ndarray], sizes: tuple[int, ...], margin: float = 0.02):
    """(face, min box IoU, max landmark distance) over each face's candidates (priors passing the
    threshold that overlap it) scoring within ``margin`` of it: what NMS might have kept instead."""
    faces = yunet.decode(outputs, *sizes)
    candidates = yunet.decode(outputs, *sizes, yunet.SCORE_THRESHOLD, 1.0, 100000)
    for face in faces:
        tied = [c for c in candidates if c.score >= face.score - margin and box_iou(c.box, face.box) > 0.3]
        yield (face, min(box_iou(c.box, face.box) for c in tied),
               max(float(np.linalg.norm(c.landmarks - face.landmarks, axis=1).max()) for c in tied))


def test_the_standin_behaves_like_a_trained_detector(session, photo):
    """One face per face, true faces clearly above the threshold, and the priors that nearly tie
    with a face (that NMS, or a converter moving scores a little, might keep instead) giving the
    same box and landmarks; bbox and kps offsets of a few units, as a trained YuNet's."""
    photos = [(name, image, (1, 1)) for name, image in composites(photo).items() if name != "2x2 canvas"]
    photos += [("2x2 canvas", composites(photo)["2x2 canvas"], (4, 4)), *gate_photos()]
    for name, image, (fewest, most) in photos:
        outputs, sizes = raw_outputs(session, image)
        ties = list(near_ties(outputs, sizes))
        assert fewest <= len(ties) <= most, (name, len(ties))
        for face, iou, landmark_px in ties:
            assert face.score > 0.93, (name, face.score)
            assert iou > 0.97 and landmark_px < 1.5, (name, iou, landmark_px)
        for head, limit in (("bbox", 3.0), ("kps", 6.0)):
            assert all(np.abs(outputs[f"{head}_{s}"]).max() < limit for s in yunet.STRIDES), (name, head)


def test_fp16_copies_find_the_same_faces(standin, session):
    """The stand-in rounded to FP16 (its weights only; and facezoo's FP16 graph, FP16 compute) finds
    the original's faces on the gate photos: IoU ≥ 0.97, landmarks within 1.5 px, none missing or
    extra at 0.92 or above (those below may fall on either side of 0.9); and the FP16 graph's raw
    heads stay within the FP16 gate (cosine 0.999, max error 1 % of the largest value) everywhere,
    background priors included."""
    from facezoo import photos
    from facezoo.converters.onnx_graph import to_fp16
    from facezoo.gates import GATES
    from facezoo.tasks.detection import match_faces
    from facezoo.tasks.recognition import closeness

    original = onnx.ModelProto.FromString(any_size(onnx.load(str(standin))))
    rounded = onnx.ModelProto.FromString(original.SerializeToString())
    for init in rounded.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float16).astype(np.float32), init.name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxconverter-common's notes on the weights it rounds
        fp16 = to_fp16(original)
    sessions = [ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
                for copy in (rounded, fp16)]
    for converted in sessions:
        for name, image, _ in gate_photos():
            match = match_faces(yunet.detect(image, ort_run(session)), yunet.detect(image, ort_run(converted)),
                                yunet.SCORE_THRESHOLD, 0.02)
            assert match.missing == match.extra == 0 and match.matched >= 1, (name, match)
            assert min(match.ious) >= 0.97 and max(match.landmark_px) <= 1.5, (name, match)
    gate = GATES["FP16"]
    for size in ((160, 192), (480, 640)):  # the gate's probe size, and the photos'
        batch = photos.probe_photos(size).transpose(0, 3, 1, 2).astype(np.float32)
        expected = [session.run(list(yunet.OUTPUT_NAMES), {"input": x[None]}) for x in batch]
        got = [sessions[1].run(list(yunet.OUTPUT_NAMES), {"input": x[None]}) for x in batch]
        for k, name in enumerate(yunet.OUTPUT_NAMES):
            measured = closeness(np.stack([e[k] for e in expected]), np.stack([o[k] for o in got]))
            assert measured["min_cosine"] >= gate.min_cosine, (size, name, measured)
            assert measured["max_relative_error"] <= gate.max_relative_error, (size, name, measured)


# -- (b) nothing face-like: no faces in either --------------------------------------------------
def test_uniform_gray_gives_no_faces(standin, session):
    for shape in ((480, 640, 3), (333, 250, 3)):
        gray = np.full(shape, 128, np.uint8)
        assert yunet.detect(gray, ort_run(session)) == []
        assert len(opencv_faces(str(standin), gray)) == 0


# -- (c) the stand-in file ----------------------------------------------------------------------
def test_standin_declares_yunets_contract_and_runs_at_any_padded_size(standin, session):
    model = onnx.load(str(standin))
    onnx.checker.check_model(model)
    assert standin.stat().st_size < 1_000_000
    (value,) = model.graph.input
    assert value.name == "input" and [d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 3, 640, 640]
    declared = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    assert list(declared) == list(yunet.OUTPUT_NAMES)
    for name, dims in declared.items():
        head, stride = name.split("_")
        assert dims == [1, (640 // int(stride)) ** 2, HEADS[head]]
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Sigmoid") == 6 and ops.count("Transpose") == 12 and "BatchNormalization" in ops
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    reshapes = [inits[n.input[1]].tolist() for n in model.graph.node if n.op_type == "Reshape"]
    assert sorted(reshapes) == sorted([[1, -1, c] for c in HEADS.values() for _ in yunet.STRIDES])
    variances = np.concatenate([inits[n.input[4]] for n in model.graph.node if n.op_type == "BatchNormalization"])
    assert variances.min() < 1e-3 and variances.max() > 1.0  # trained-looking statistics

    for h, w in ((640, 640), (32, 32), (480, 672), (96, 1024)):
        x = np.random.default_rng(h + w).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
        outputs = ort_run(session)("net", x)
        for name, value in outputs.items():
            head, stride = name.split("_")
            assert value.shape == (1, (h // int(stride)) * (w // int(stride)), HEADS[head]), (h, w, name)
        net = cv2.dnn.readNet(str(standin))  # OpenCV DNN runs the file as written at that size
        net.setInput(x)
        for name, value in zip(yunet.OUTPUT_NAMES, net.forward(list(yunet.OUTPUT_NAMES))):
            np.testing.assert_allclose(value, outputs[name], rtol=1e-4, atol=1e-3, err_msg=f"{h}x{w} {name}")
    # the file as written: ONNX Runtime enforces the declared 640×640, hence any_size()
    plain = ort.InferenceSession(str(standin), providers=["CPUExecutionProvider"])
    assert plain.run(["cls_8"], {"input": np.zeros((1, 3, 640, 640), np.float32)})[0].shape == (1, 6400, 1)
    with pytest.raises(Exception, match="(?i)dimension"):
        plain.run(["cls_8"], {"input": np.zeros((1, 3, 480, 640), np.float32)})


def test_standin_is_deterministic_and_written_atomically(standin, tmp_path, monkeypatch):
    again = write_yunet_standin(tmp_path / "a.onnx", seed=0)
    assert again.read_bytes() == standin.read_bytes()
    other = write_yunet_standin(tmp_path / "b.onnx", seed=1)
    assert other.read_bytes() != standin.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]  # no temporary left

    def broken(seed=0):
        raise RuntimeError("writer failed")

    target = tmp_path / "a.onnx"
    before = target.read_bytes()
    monkeypatch.setattr(yunet_standin, "yunet_like", broken)
    with pytest.raises(RuntimeError):
        write_yunet_standin(target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]


# -- OpenCV's corner cases, on scripted outputs ---------------------------------------------------
H, W = 64, 96  # grids: 8x12 at stride 8, 4x6 at 16, 2x3 at 32 (rows != cols catches a swap)


def tie_across_strides() -> dict[str, np.ndarray]:
    """Two priors with the same score and the same box, at strides 8 and 16, landmarks apart, and a
    third with that score at stride 32, apart from them."""
    out = blank_outputs(H, W)
    put(out, 8, 3, 5, W, 1.0, 0.81, (0.5, 0.5, np.log(4.0), np.log(4.0)), np.zeros(10))
    put(out, 16, 1, 2, W, 1.0, 0.81, (0.75, 0.75, np.log(2.0), np.log(2.0)), np.ones(10))
    put(out, 32, 1, 2, W, 1.0, 0.81, (0.5, 0.5, 0.0, 0.0), np.full(10, 0.25))  # same score, elsewhere
    return out


def test_score_ties_fall_to_the_first_stride_as_in_opencv():
    ours, reference = both(tie_across_strides(), H, W, score_threshold=0.5)
    assert same_faces(ours, reference) and len(reference) == 2
    # the stride-8 prior won: its landmarks are (cell + 0) * 8 = (40, 24); the stride-32 one,
    # kept too, comes after it although the scores are equal (a stable sort in prior order)
    np.testing.assert_allclose(reference[0, 4:6], [40.0, 24.0])
    np.testing.assert_allclose(reference[0, 0:4], [28.0, 12.0, 32.0, 32.0], atol=1e-4)
    np.testing.assert_allclose(reference[1, 4:6], [(2 + 0.25) * 32, (1 + 0.25) * 32])
    assert reference[0, 14] == reference[1, 14]


def test_clamping_rows_columns_and_top_k_as_in_opencv():
    out = blank_outputs(H, W)
    put(out, 8, 2, 9, W, 1.7, 0.9, (0.25, 0.75, 0.3, -0.2), np.arange(10) / 10)  # cls above 1: clamped
    put(out, 8, 6, 1, W, -0.3, 1.0)  # negative cls: score 0
    put(out, 16, 3, 0, W, 0.95, 1.2, (0.1, 0.9, 1.5, 1.0))  # obj above 1: clamped
    put(out, 32, 0, 0, W, 0.8, 0.99, (-0.4, 0.2, 0.5, 0.7))  # a box off the image: not clipped
    ours, reference = both(out, H, W, score_threshold=0.5)
    assert same_faces(ours, reference) and len(reference) == 3
    np.testing.assert_allclose(reference[:, 14], np.sqrt(np.float32([0.95, 0.9, 0.8 * 0.99])), atol=1e-7)
    second = reference[1]  # cls 1.7 → 1: score sqrt(0.9); row 2, column 9 of the 12-wide grid
    assert second[0] + second[2] / 2 == pytest.approx((9 + 0.25) * 8, abs=1e-4)
    assert second[1] + second[3] / 2 == pytest.approx((2 + 0.75) * 8, abs=1e-4)
    assert reference[2][0] < 0  # OpenCV does not clip
    for k in (1, 2):
        ours, reference = both(out, H, W, score_threshold=0.5, top_k=k)
        assert same_faces(ours, reference) and len(reference) == k


def test_a_single_prior_at_the_threshold_skips_nms_as_in_opencv():
    """OpenCV keeps priors with score >= threshold but runs NMS (which keeps > threshold) only when
    more than one passed: one prior exactly at the threshold is a face, two such priors are none."""
    out = blank_outputs(H, W)
    put(out, 8, 0, 0, W, 1.0, 0.5625)  # score sqrt(0.5625) = 0.75 exactly
    ours, reference = both(out, H, W, score_threshold=0.75)
    assert same_faces(ours, reference) and len(reference) == 1 and reference[0, 14] == 0.75
    # a decoder that always ran NMS would lose it
    assert len(cv2.dnn.NMSBoxes([(-4, -4, 8, 8)], [0.75], 0.75, 0.3)) == 0
    put(out, 8, 5, 8, W, 1.0, 0.5625)
    ours, reference = both(out, H, W, score_threshold=0.75)
    assert same_faces(ours, reference) and len(reference) == 0


def truncation_decides() -> dict[str, np.ndarray]:
    """Two boxes with IoU 0.183 as floats but 0.25 as OpenCV's truncated Rect2i."""
    out = blank_outputs(H, W)
    side = np.log(10.5 / 8)
    put(out, 8, 0, 0, W, 1.0, 0.81, (0.59375, 0.6875, side, side))  # x -0.5..10.0 → int 0..10
    put(out, 8, 0, 1, W, 1.0, 0.64, (0.5, 0.6875, side, side))  # x 6.75..17.25 → int 6..16
    return out


def test_nms_sees_truncated_integer_boxes_as_in_opencv():
    out = truncation_decides()
    ours, reference = both(out, H, W, score_threshold=0.5, nms_threshold=0.2)
    assert same_faces(ours, reference) and len(reference) == 1
    # NMS on the float boxes would keep both: the truncation is what decides here
    float_boxes = [tuple(map(float, r[:4])) for r in rows_of(yunet.decode(out, H, W, H, W, 0.5, 1.0, 10))]
    assert len(float_boxes) == 2
    assert len(cv2.dnn.NMSBoxes(float_boxes, [0.9, 0.8], 0.5, 0.2)) == 2


# -- (d) mutations are caught ---------------------------------------------------------------------
def test_a_wrong_stride_order_is_caught(monkeypatch):
    out = tie_across_strides()
    reference = opencv_faces(scripted_net(out, H, W), np.zeros((H, W, 3), np.uint8), score_threshold=0.5)
    assert same_faces(rows_of(yunet.decode(out, H, W, H, W, 0.5)), reference)
    monkeypatch.setattr(yunet, "STRIDES", (32, 16, 8))
    mutated = rows_of(yunet.decode(out, H, W, H, W, 0.5))
    assert len(mutated) == len(reference) and not same_faces(mutated, reference)


def test_outputs_paired_with_the_wrong_stride_are_refused():
    out = blank_outputs(H, W)
    out["bbox_8"], out["bbox_16"] = out["bbox_16"], out["bbox_8"]
    with pytest.raises(ValueError, match="bbox_8"):
        yunet.decode(out, H, W, H, W)


def test_a_swapped_landmark_order_is_caught(standin, session, photo, monkeypatch):
    reference = opencv_faces(str(standin), photo)
    assert same_faces(rows_of(yunet.detect(photo, ort_run(session))), reference)
    monkeypatch.setattr(yunet, "YUNET_TO_ARCFACE", (1, 0, 2, 4, 3))  # "right eye first" taken literally
    mutated = rows_of(yunet.detect(photo, ort_run(session)))
    assert len(mutated) == len(reference) and not same_faces(mutated, reference)
    np.testing.assert_allclose(mutated[:, :4], reference[:, :4], atol=BOX_TOL)  # only the landmarks moved


def test_a_transposed_grid_is_caught(standin, session, photo):
    """A decoder that walked the grid column-major would see these outputs; on a 641x479 image it differs."""
    image = composites(photo)["641x479"]
    reference = opencv_faces(str(standin), image)
    run = ort_run(session)

    def column_major(part, batch):
        outputs = run(part, batch)
        h, w = batch.shape[2:]
        return {name: v.reshape(h // int(name.split("_")[1]), w // int(name.split("_")[1]), -1)
                .transpose(1, 0, 2).reshape(v.shape) for name, v in outputs.items()}

    assert same_faces(rows_of(yunet.detect(image, run)), reference)
    assert not same_faces(rows_of(yunet.detect(image, column_major)), reference)


# -- padding ---------------------------------------------------------------------------------------
def test_pad_to_divisor_pads_right_and_bottom_with_zeros():
    image = np.random.default_rng(0).integers(1, 256, (479, 641, 3)).astype(np.uint8)
    padded, size = yunet.pad_to_divisor(image)
    assert size == (479, 641) and padded.shape == (480, 672, 3) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:479, :641], image)
    assert not padded[479:].any() and not padded[:, 641:].any()
    exact, size = yunet.pad_to_divisor(image[:448, :96])
    assert size == (448, 96) and exact.shape == (448, 96, 3)
    assert yunet.padded_size(1, 33) == (32, 64)
    with pytest.raises(ValueError):
        yunet.decode(blank_outputs(H, W), H, W, H + 8, W)
