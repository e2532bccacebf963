"""YuNet (OpenCV Zoo ``face_detection_yunet_2023mar.onnx``), decoded as ``cv2.FaceDetectorYN`` does.

OpenCV's ``FaceDetectorYN`` (objdetect/src/face_detect.cpp) is the ground truth: same image, same
faces, to float rounding. So the arithmetic below keeps its conventions on purpose:

* the net runs at the image's own size padded right/bottom with zeros to a multiple of 32, not at
  the 640×640 the file declares (its Reshapes are [1, -1, C], so any such size works);
* strides 8, 16, 32, one prior per cell, cells in row-major order, strides in that order (the
  order matters: NMS breaks score ties by it);
* score = sqrt(clip(cls, 0, 1) · clip(obj, 0, 1)), in float32, kept when ``score >= threshold``;
* box centre = (cell + offset) · stride, side = exp(log side) · stride, landmarks = (cell +
  offset) · stride, all float32 like OpenCV's;
* OpenCV's own NMS (``cv2.dnn.NMSBoxes``) on the boxes truncated to integers (OpenCV builds
  ``Rect2i(int(x), int(y), int(w), int(h))``), with the same score threshold and top_k, and
  *only when more than one prior passes*: a single prior is returned as it is.

Boxes are not clipped to the image (OpenCV does not clip either).
"""

from __future__ import annotations

import cv2
import numpy as np

from facezoo.tasks.detectors.face import Face, RunPart

PARTS = ("net",)
DIVISOR = 32
STRIDES = (8, 16, 32)
HEADS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}  # output channels per prior
OUTPUT_NAMES = tuple(f"{head}_{stride}" for head in HEADS for stride in STRIDES)
# The OpenCV Zoo demo's defaults.
SCORE_THRESHOLD = 0.9
NMS_THRESHOLD = 0.3
TOP_K = 5000

#: For each ArcFace landmark (LANDMARK_NAMES order), the index of YuNet's point that gives it.
#: YuNet emits "right eye, left eye, nose tip, right mouth corner, left mouth corner" in OpenCV's
#: words, meaning the *person's* right: the eye on the image's left comes first. That is already
#: ArcFace's order (image-left eye, image-right eye, nose, image-left mouth corner, image-right),
#: so the map is the identity. Evidence: OpenCV's own FaceRecognizerSF.alignCrop feeds YuNet's five
#: points unchanged to a similarity fit against the ArcFace template, whose first point is the
#: image-left eye (38.29, 51.70).
YUNET_TO_ARCFACE = (0, 1, 2, 3, 4)


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The size OpenCV runs the net at: each side rounded up to a multiple of :data:`DIVISOR`."""
    return ((height - 1) // DIVISOR + 1) * DIVISOR, ((width - 1) // DIVISOR + 1) * DIVISOR


def pad_to_divisor(image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The image padded right and bottom with zeros to a multiple of 32, and its own (h, w).

    Padding there keeps pixel coordinates unchanged, so boxes need no shift back.
    """
    height, width = image_bgr.shape[:2]
    padded_h, padded_w = padded_size(height, width)
    padded = np.zeros((padded_h, padded_w) + image_bgr.shape[2:], image_bgr.dtype)
    padded[:height, :width] = image_bgr
    return padded, (height, width)


def _candidates(outputs: dict[str, np.ndarray], padded_h: int, padded_w: int,
                score_threshold: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Priors whose score passes, in OpenCV's order: (x, y, w, h) rows, scores, 5×2 landmarks."""
    boxes, scores, points = [], [], []
    for stride in STRIDES:
        rows, cols = padded_h // stride, padded_w // stride
        head = {name: np.asarray(outputs[f"{name}_{stride}"], np.float32) for name in HEADS}
        for name, channels in HEADS.items():
            if head[name].size != rows * cols * channels:
                raise ValueError(f"YuNet output {name}_{stride} has shape {head[name].shape}; a "
                                 f"{padded_h}x{padded_w} input gives [1, {rows * cols}, {channels}]")
            head[name] = head[name].reshape(rows * cols, channels)
        score = np.sqrt(np.clip(head["cls"][:, 0], 0, 1) * np.clip(head["obj"][:, 0], 0, 1))
        index = np.flatnonzero(~(score < score_threshold))  # OpenCV skips score < threshold only
        s = np.float32(stride)
        col = (index % cols).astype(np.float32)[:, None]
        row = (index // cols).astype(np.float32)[:, None]
        bbox = head["bbox"][index]
        centre = (np.hstack([col, row]) + bbox[:, :2]) * s
        side = np.exp(bbox[:, 2:]) * s
        boxes.append(np.hstack([centre - side / np.float32(2), side]))
        scores.append(score[index])
        kps = head["kps"][index].reshape(-1, 5, 2)
        points.append((kps + np.stack([col, row], axis=-1)) * s)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


def decode(outputs: dict[str, np.ndarray], height: int, width: int, padded_h: int, padded_w: int,
           score_threshold: float = SCORE_THRESHOLD, nms_threshold: float = NMS_THRESHOLD,
           top_k: int = TOP_K) -> list[Face]:
    """Faces from the net's 12 raw outputs of one image run at ``padded_h`` × ``padded_w``.

    ``height`` × ``width`` is the image's own size; the padding is right/bottom, so the boxes are
    already in its pixels. Best score first (OpenCV's NMS returns them so).
    """
    if padded_h % DIVISOR or padded_w % DIVISOR or padded_h < height or padded_w < width:
        raise ValueError(f"padded size {padded_h}x{padded_w} must be multiples of {DIVISOR} that hold "
                         f"the {height}x{width} image")
    threshold = np.float32(score_threshold)  # OpenCV keeps its thresholds as float
    boxes, scores, points = _candidates(outputs, padded_h, padded_w, threshold)
    if len(scores) > 1:
        rects = [tuple(int(v) for v in row) for row in boxes]  # int(): truncation, as Rect2i(int(x), ...)
        keep = cv2.dnn.NMSBoxes(rects, [float(v) for v in scores], float(threshold), float(nms_threshold),
                                1.0, int(top_k))
        keep = np.asarray(keep, np.int64).reshape(-1)
    else:
        keep = np.arange(len(scores))
    faces = []
    for i in keep:
        x, y, w, h = (float(v) for v in boxes[i])
        faces.append(Face(box=(x, y, x + w, y + h), score=float(scores[i]),
                          landmarks=points[i][list(YUNET_TO_ARCFACE)].astype(np.float32)))
    return faces


def detect(image_bgr: np.ndarray, run: RunPart, score_threshold: float = SCORE_THRESHOLD,
           nms_threshold: float = NMS_THRESHOLD, top_k: int = TOP_K) -> list[Face]:
    """Faces in one H×W×3 BGR image: pad, run the net once on the 1×3×H'×W' batch, decode."""
    image_bgr = np.asarray(image_bgr)
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"YuNet takes an H×W×3 BGR image, not shape {image_bgr.shape}")
    if image_bgr.size == 0:
        return []  # OpenCV returns no faces for an empty image
    padded, (height, width) = pad_to_divisor(image_bgr)
    batch = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)  # BGR 0..255, no scaling
    outputs = run("net", batch)
    return decode(outputs, height, width, padded.shape[0], padded.shape[1], score_threshold, nms_threshold, top_k)


__all__ = ["DIVISOR", "NMS_THRESHOLD", "OUTPUT_NAMES", "PARTS", "SCORE_THRESHOLD", "STRIDES", "TOP_K",
           "YUNET_TO_ARCFACE", "decode", "detect", "pad_to_divisor", "padded_size"]
