"""A stand-in for insightface's SCRFD 10G with keypoints (``det_10g.onnx`` = ``scrfd_10g_bnkps.onnx``).

The real file cannot be downloaded here (and is under a non-commercial research licence), so the
decoder is checked against insightface's own SCRFD class running this graph, and the converters
are judged on it. It keeps what the decoder and the runtimes see of the real file: the input
``input.1`` (1×3×640×640, RGB, (x − 127.5) / 128), and the nine outputs in the file's order and
names — scores ``448``/``471``/``494``, box distances ``451``/``474``/``497``, keypoint offsets
``454``/``477``/``500`` for strides 8/16/32 — with no batch axis: (cells · 2, 1), (cells · 2, 4),
(cells · 2, 10), two anchors per cell, each cell's anchors adjacent (NCHW → NHWC → Reshape
[-1, C], as the real heads do).

Its body is the YuNet stand-in's trunk and heads (:func:`~facezoo.sources.onnx.yunet_standin.skin_heads`:
trained-looking BatchNorm with quiet channels, large activations, one face per face), behind a
1×1 convolution that undoes SCRFD's input normalization and channel order (weights of 128 and a
bias of 127.5, as a graph exported by another tool carries them). Per stride and cell, YuNet's
heads become SCRFD's:

* score = sigmoid of a logit that rises steeply with YuNet's score sqrt(cls · obj) (16 per unit of
  its log) and crosses 0 where YuNet's threshold 0.9 is, so that what the YuNet stand-in does not
  call a face this one does not either; below, the logit is YuNet's log score itself, so the
  background scores ~1e-3, varied, as a trained net's;
* box distances (left, top, right, bottom) from the cell's top-left corner, in cells: half the
  side ∓ the centroid offset;
* keypoint offsets from that corner, in cells, as YuNet's;
* the cell's second anchor's logit is 0.1-0.25 lower and its distances and offsets are 2-5 % longer, so a
  decoder that miscounts or misorders anchors gives other faces.

Deterministic: ``seed`` picks the trunk's random channels and the second anchor's factors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.atomic import atomic_path
from facezoo.sources.onnx.yunet_standin import StandinGraph, one_by_one, skin_heads

INPUT_NAME = "input.1"
INPUT_SHAPE = (1, 3, 640, 640)
STRIDES = (8, 16, 32)
ANCHORS = 2
SCORE_NAMES = ("448", "471", "494")
BBOX_NAMES = ("451", "474", "497")
KPS_NAMES = ("454", "477", "500")
OUTPUT_NAMES = SCORE_NAMES + BBOX_NAMES + KPS_NAMES
MEAN, STD = 127.5, 128.0  # the real file's input normalization, RGB
YUNET_THRESHOLD = 0.9  # YuNet's score threshold, which becomes SCRFD's 0.5
STEEPNESS = 16.0  # score logit per unit of log YuNet score above it


def _scrfd_heads(g: StandinGraph, yunet: dict[str, str], stride: int) -> tuple[str, str, str]:
    """SCRFD's score, box-distance and keypoint heads (NCHW, two anchors) of one stride from the
    YuNet stand-in's cls, obj, bbox and kps."""
    r = g.rng(f"scrfd/anchors{stride}")
    lower = r.uniform(0.1, 0.25)  # logit
    grow = 1.0 + r.uniform(0.02, 0.05)
    # score: a logit from L = log sqrt(cls · obj) (YuNet's score), steep around YuNet's threshold
    # (0.9 → 0.5) and held at L itself below (background ~1e-3, varied, as a trained net's sigmoid
    # gives, not 1e-20); the second anchor's a little lower
    logs = g.node("Concat", [g.node("Log", [yunet["cls"]], "log"), g.node("Log", [yunet["obj"]], "log")], "concat",
                  axis=1)
    steep, shift = STEEPNESS / 2.0, -STEEPNESS * np.log(YUNET_THRESHOLD)
    anchors = np.array([0.0, -lower])
    rise = g.conv(logs, one_by_one([[steep, steep]] * ANCHORS), shift + anchors, f"score{stride}_rise")
    floor = g.conv(logs, one_by_one([[0.5, 0.5]] * ANCHORS), anchors, f"score{stride}_floor")
    score = g.node("Sigmoid", [g.node("Max", [rise, floor], "max")], "sigmoid")
    # bbox: dx, dy (cells), log w, log h → with exp: ..., w, h; distances = w/2 ∓ dx, h/2 ∓ dy
    both = g.node("Concat", [yunet["bbox"], g.node("Exp", [yunet["bbox"]], "exp")], "concat", axis=1)
    distances = np.array([[-1, 0, 0, 0, 0, 0, 0.5, 0], [0, -1, 0, 0, 0, 0, 0, 0.5],
                          [1, 0, 0, 0, 0, 0, 0.5, 0], [0, 1, 0, 0, 0, 0, 0, 0.5]], np.float64)
    box = g.conv(both, one_by_one(np.vstack([distances, grow * distances])), None, f"distances{stride}")
    kps = g.conv(yunet["kps"], one_by_one(np.vstack([np.eye(10), grow * np.eye(10)])), None, f"offsets{stride}")
    return score, box, kps


def scrfd_like(seed: int = 0):
    """An SCRFD-10G-with-keypoints look-alike ModelProto: same input, same nine outputs."""
    from onnx import TensorProto, helper

    g = StandinGraph(seed)
    # normalized RGB back to BGR 0..255: x·128 + 127.5, channels reversed
    unnormalize = np.zeros((3, 3))
    unnormalize[[0, 1, 2], [2, 1, 0]] = STD
    bgr = g.conv(INPUT_NAME, one_by_one(unnormalize), np.full(3, MEAN), "unnormalize")
    heads = {stride: _scrfd_heads(g, yunet, stride) for stride, yunet in skin_heads(g, bgr).items()}
    outputs = []
    for head, (names, channels) in enumerate([(SCORE_NAMES, 1), (BBOX_NAMES, 4), (KPS_NAMES, 10)]):
        for stride, name in zip(STRIDES, names):
            nhwc = g.node("Transpose", [heads[stride][head]], "transpose", perm=[0, 2, 3, 1])
            g.node("Reshape", [nhwc, g.const("shape", np.array([-1, channels], np.int64))], "reshape", output=name)
            rows = (INPUT_SHAPE[2] // stride) * (INPUT_SHAPE[3] // stride) * ANCHORS
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [rows, channels]))
    return g.model("scrfd-standin", INPUT_NAME, INPUT_SHAPE, outputs)


def write_scrfd_like(path: Path, seed: int = 0) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(scrfd_like(seed).SerializeToString())
    return path


__all__ = ["INPUT_NAME", "INPUT_SHAPE", "OUTPUT_NAMES", "scrfd_like", "write_scrfd_like"]
