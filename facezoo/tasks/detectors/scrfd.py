"""SCRFD (insightface ``det_10g.onnx`` = ``scrfd_10g_bnkps.onnx``), decoded as insightface's
``insightface.model_zoo.scrfd.SCRFD`` does.

insightface's SCRFD class (``forward``, ``_detect_candidates``/``detect``, ``nms``,
``distance2bbox``, ``distance2kps``) is the ground truth: same image, same faces. Its conventions,
kept here on purpose:

* letterbox: the photo is resized with ``cv2.resize`` (bilinear) keeping its aspect ratio so it
  fills the input size on one side (the other side ``int()``-truncated), placed top-left on a
  black (zero) canvas of the input size; boxes and landmarks are divided back by
  ``det_scale = new_height / height``;
* the net's nine outputs: scores, box distances, keypoint distances, each for strides 8, 16, 32
  in that order, ``(cells · 2, C)`` rows (cells row-major, two anchors per cell, the anchors of
  one cell adjacent); a leading batch axis of 1 is accepted too;
* anchor centre = (column, row) · stride (the cell's top-left corner, not its middle); box =
  centre ∓ distance · stride (left, top, right, bottom); landmark = centre + offset · stride;
  all float32;
* a candidate is kept when ``score >= score_threshold``; candidates are ordered by score
  (stable, strides in order), then NMS with insightface's own arithmetic: areas and overlaps with
  the ``+ 1`` pixel convention and a box suppressed when its IoU is *above* the threshold
  (``ovr <= thresh`` survives). ``cv2.dnn.NMSBoxes`` does not match it (no ``+ 1``, and it keeps
  ties and suppresses on ``>`` of a differently computed IoU, and it takes integer or float
  ``Rect``s as x, y, w, h), so a small numpy NMS reproduces the reference's instead.

The net's own input contract (RGB, (x − 127.5) / 128) belongs to the converted graph: here the
net is called, like every facezoo detector, with N×3×H×W float32 BGR 0..255.

Boxes are not clipped to the image (insightface does not clip either).
"""

from __future__ import annotations

import cv2
import numpy as np

from facezoo.tasks.detectors.face import Face, RunPart

PARTS = ("net",)
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2  # per cell, for the 3-stride (6 or 9 output) SCRFD files
INPUT_SIZE = (640, 640)  # (width, height), as insightface's det_size
#: det_10g.onnx's outputs, in the file's order: scores, bboxes, kps; each for strides 8, 16, 32.
SCORE_NAMES = ("448", "471", "494")
BBOX_NAMES = ("451", "474", "497")
KPS_NAMES = ("454", "477", "500")
OUTPUT_NAMES = SCORE_NAMES + BBOX_NAMES + KPS_NAMES
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4

#: For each ArcFace landmark (LANDMARK_NAMES order), the index of SCRFD's point that gives it.
#: SCRFD is trained on RetinaFace's WIDER FACE landmarks: image-left eye, image-right eye, nose,
#: image-left mouth corner, image-right mouth corner. insightface's FaceAnalysis passes SCRFD's
#: ``kps`` unchanged to ``face_align.norm_crop`` against ``arcface_dst`` (first point the
#: image-left eye, (38.29, 51.70)), so the map is the identity.
SCRFD_TO_ARCFACE = (0, 1, 2, 3, 4)


def letterbox(image_bgr: np.ndarray, input_size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """The photo resized into ``input_size`` (width, height) keeping its aspect ratio, top-left on
    zeros, and the scale that maps input pixels back (divide by it), as insightface computes them."""
    in_w, in_h = int(input_size[0]), int(input_size[1])
    height, width = image_bgr.shape[:2]
    im_ratio = float(height) / width
    model_ratio = float(in_h) / in_w
    if im_ratio > model_ratio:
        new_h = in_h
        new_w = int(new_h / im_ratio)
    else:
        new_w = in_w
        new_h = int(new_w * im_ratio)
    det_scale = float(new_h) / height
    resized = cv2.resize(image_bgr, (new_w, new_h))
    canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
    canvas[:new_h, :new_w, :] = resized
    return canvas, det_scale


def anchor_centres(rows: int, cols: int, stride: int, anchors: int = NUM_ANCHORS) -> np.ndarray:
    """(rows · cols · anchors, 2) float32 (x, y): each cell's top-left corner in pixels, repeated
    for its anchors (adjacent), cells row-major."""
    xs, ys = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
    centres = (np.stack([xs, ys], axis=-1) * np.float32(stride)).reshape(-1, 2)
    return np.repeat(centres, anchors, axis=0) if anchors > 1 else centres


def _head(outputs: dict[str, np.ndarray], name: str, rows: int, channels: int) -> np.ndarray:
    value = np.asarray(outputs[name], dtype=np.float32)
    if value.size != rows * channels:
        raise ValueError(f"SCRFD output {name!r} has shape {value.shape}; expected ({rows}, {channels}) "
                         f"(cells × {NUM_ANCHORS} anchors), optionally with a batch axis of 1")
    return value.reshape(rows, channels)


def _candidates(outputs: dict[str, np.ndarray], in_h: int, in_w: int,
                score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passing anchors over all strides, in stride then anchor order: boxes (n, 4), scores (n,),
    landmarks (n, 5, 2), in input pixels, float32."""
    boxes, scores, points = [], [], []
    for stride, s_name, b_name, k_name in zip(STRIDES, SCORE_NAMES, BBOX_NAMES, KPS_NAMES):
        rows, cols = in_h // stride, in_w // stride
        count = rows * cols * NUM_ANCHORS
        score = _head(outputs, s_name, count, 1)
        bbox = _head(outputs, b_name, count, 4) * stride
        kps = _head(outputs, k_name, count, 10) * stride
        centres = anchor_centres(rows, cols, stride)
        index = np.where(score >= score_threshold)[0]
        c = centres[index]
        d = bbox[index]
        boxes.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], axis=-1))
        scores.append(score[index, 0])
        points.append((kps[index].reshape(-1, 5, 2) + c[:, None, :]))
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


def nms(dets: np.ndarray, threshold: float, merged: dict[int, list[int]] | None = None) -> list[int]:
    """insightface's SCRFD.nms on (n, 5) float32 rows (x1, y1, x2, y2, score): indices kept, best
    first. ``merged`` (if given) receives, per kept index, the indices it suppressed, best first."""
    x1, y1, x2, y2, score = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        survives = overlap <= threshold
        if merged is not None:
            merged[int(i)] = [int(j) for j in rest[~survives]]
        order = rest[survives]
    return keep


def decode(outputs: dict[str, np.ndarray], det_scale: float, input_size: tuple[int, int] = INPUT_SIZE,
           score_threshold: float = SCORE_THRESHOLD, nms_threshold: float = NMS_THRESHOLD) -> list[Face]:
    """Faces from the net's nine raw outputs of one letterboxed ``input_size`` (width, height)
    image, in the photo's pixels (divided by ``det_scale``). Best score first."""
    in_w, in_h = int(input_size[0]), int(input_size[1])
    boxes, scores, points = _candidates(outputs, in_h, in_w, score_threshold)
    if len(scores) == 0:
        return []
    order = np.argsort(-scores, kind="stable")
    boxes = boxes / det_scale
    points = points / det_scale
    dets = np.hstack([boxes, scores[:, None]]).astype(np.float32, copy=False)[order]
    points = points[order]
    merged: dict[int, list[int]] = {}
    keep = nms(dets, nms_threshold, merged)

    def face(i: int, alternatives: tuple[Face, ...] = ()) -> Face:
        return Face(box=tuple(float(v) for v in dets[i, :4]), score=float(dets[i, 4]),
                    landmarks=points[i][list(SCRFD_TO_ARCFACE)].astype(np.float32), alternatives=alternatives)

    return [face(i, tuple(face(j) for j in merged[i])) for i in keep]


def detect(image_bgr: np.ndarray, run: RunPart, score_threshold: float = SCORE_THRESHOLD,
           nms_threshold: float = NMS_THRESHOLD, input_size: tuple[int, int] = INPUT_SIZE) -> list[Face]:
    """Faces in one H×W×3 uint8 BGR photo: letterbox into ``input_size`` (width, height), run the
    net once on the 1×3×H×W batch (BGR 0..255), decode."""
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"SCRFD takes an H×W×3 BGR image, not shape {image.shape}")
    if image.size == 0:
        return []
    canvas, det_scale = letterbox(image, input_size)
    batch = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    outputs = run("net", batch)
    return decode(outputs, det_scale, input_size, score_threshold, nms_threshold)


__all__ = ["BBOX_NAMES", "INPUT_SIZE", "KPS_NAMES", "NMS_THRESHOLD", "NUM_ANCHORS", "OUTPUT_NAMES", "PARTS",
           "SCORE_NAMES", "SCORE_THRESHOLD", "SCRFD_TO_ARCFACE", "STRIDES", "anchor_centres", "decode", "detect",
           "letterbox", "nms"]
