"""A stand-in for insightface's SCRFD 10G with keypoints (``det_10g.onnx`` = ``scrfd_10g_bnkps.onnx``).

The real file cannot be downloaded here (and is under a non-commercial research licence), so the
decoder is checked against insightface's own SCRFD class running this graph. It keeps what the
decoder and the runtimes see of the real file: the input ``input.1`` (1×3×640×640, RGB,
(x − 127.5) / 128), and the nine outputs in the file's order and names — scores ``448``/``471``/
``494``, box distances ``451``/``474``/``497``, keypoint offsets ``454``/``477``/``500`` for strides
8/16/32 — with no batch axis: (cells · 2, 1), (cells · 2, 4), (cells · 2, 10), two anchors per cell,
each cell's anchors adjacent (NCHW → NHWC → Reshape [-1, C], as the real heads do).

Weights are set by hand so that it finds skin-coloured blobs with sensible boxes, smoothly:

* skin: a 1×1 convolution gives five soft ramps of R−G, G−B and R (10-45 grey levels wide) clipped
  to 0..1, their product (ReduceProd) is a per-pixel skin map; average pooling gives the skin
  fraction per 8×8, 16×16 and 32×32 cell;
* per stride, a 7×7-cell window around each cell measures skin mass and first moments (one
  convolution); the centroid offset (clamped ±2 cells) and sqrt(mass) give a box centred on the
  blob's centroid with sides 1.15 and 1.40 sqrt(mass) cells, and landmarks on a face template of
  that box, so every anchor near a blob predicts (nearly) the same face;
* score = sigmoid of: skin in the 3×3 cells around the anchor, less the squared centroid distance
  and less the blob being too large (past ~4.2 cells: the next stride takes it) or too small
  (under ~1.6 cells) for the stride. The second anchor of a cell scores a little lower and its box
  is a few percent larger, so a decoder that miscounts anchors is caught.

Limitation: the skin ramps are loose, so on the astronaut photo it finds the face (a box of about
(151, 8)-(296, 185)) and also a dozen smaller skin-coloured patches (scores 0.51-0.93); that is
enough to exercise the decoder and NMS against the reference, but it is not yet a one-face-per-face
detector like the YuNet stand-in.

Deterministic: ``seed`` only picks the small per-stride offsets of the second anchor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.atomic import atomic_path
from facezoo.sources.standin_statistics import parameter_rng

OPSET = 13
INPUT_NAME = "input.1"
INPUT_SHAPE = (1, 3, 640, 640)
STRIDES = (8, 16, 32)
ANCHORS = 2
SCORE_NAMES = ("448", "471", "494")
BBOX_NAMES = ("451", "474", "497")
KPS_NAMES = ("454", "477", "500")
OUTPUT_NAMES = SCORE_NAMES + BBOX_NAMES + KPS_NAMES
WINDOW = 7  # cells, the measuring window of each stride

# Landmarks around the box centre in box widths (x) and heights (y), ArcFace order.
_TEMPLATE = np.array([[-0.17, -0.10], [0.17, -0.10], [0.0, 0.05], [-0.13, 0.22], [0.13, 0.22]], np.float32)
_BOX_W, _BOX_H = 1.15, 1.40  # box sides in sqrt(skin mass)
# soft ramps on grey levels: (channel weights on R, G, B; low end, high end; rising?)
_RAMPS = (
    ((1, -1, 0), 8.0, 20.0, True),     # R-G rises into skin
    ((1, -1, 0), 75.0, 100.0, False),  # and falls out of it
    ((0, 1, -1), -4.0, 6.0, True),     # G-B
    ((0, 1, -1), 52.0, 70.0, False),
    ((1, 0, 0), 50.0, 95.0, True),     # R: dark is not skin
)


class _Graph:
    def __init__(self):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint: str = "c") -> str:
        name = self.name(hint)
        array = np.asarray(value)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs, output: str | None = None, **attrs) -> str:
        output = output or self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output], **attrs))
        return output


def _skin(g: _Graph, x: str) -> str:
    """1×1×H×W skin map in 0..1 from the normalized RGB input."""
    weight = np.zeros((len(_RAMPS), 3, 1, 1), np.float32)
    bias = np.zeros(len(_RAMPS), np.float32)
    for k, (channels, low, high, rising) in enumerate(_RAMPS):
        sign = 1.0 if rising else -1.0
        span = high - low
        # grey level = 128 x + 127.5; the 127.5 cancels in differences
        w = np.asarray(channels, np.float32) * 128.0
        offset = 127.5 * sum(channels)
        weight[k, :, 0, 0] = sign * w / span
        bias[k] = sign * (offset - (low if rising else high)) / span
    ramps = g.op("Conv", [x, g.const(weight, "skin_w"), g.const(bias, "skin_b")], kernel_shape=[1, 1])
    ramps = g.op("Clip", [ramps, g.const(np.float32(0)), g.const(np.float32(1))])
    return g.op("ReduceProd", [ramps], axes=[1], keepdims=1)


def _heads(g: _Graph, cells: str, stride: int, rng: np.random.Generator) -> tuple[str, str, str]:
    """Score, box and keypoint outputs (NCHW) of one stride from its skin-fraction map."""
    half = WINDOW // 2
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    kernel = np.zeros((4, 1, WINDOW, WINDOW), np.float32)
    kernel[0, 0] = 1.0  # mass
    kernel[1, 0] = offsets[None, :]  # x moment
    kernel[2, 0] = offsets[:, None]  # y moment
    kernel[3, 0, half - 1:half + 2, half - 1:half + 2] = 1.0 / 9.0  # skin near the anchor
    feats = g.op("Conv", [cells, g.const(kernel, "win_w")], kernel_shape=[WINDOW, WINDOW],
                 pads=[half, half, half, half])
    mass, mx, my, near = (g.op("Slice", [feats, g.const([k]), g.const([k + 1]), g.const([1])]) for k in range(4))
    denominator = g.op("Add", [mass, g.const(np.float32(0.5))])
    lo, hi = g.const(np.float32(-2.0)), g.const(np.float32(2.0))
    cx = g.op("Clip", [g.op("Div", [mx, denominator]), lo, hi])
    cy = g.op("Clip", [g.op("Div", [my, denominator]), lo, hi])
    root = g.op("Sqrt", [g.op("Add", [mass, g.const(np.float32(1e-3))])])
    # centroid in cells from the anchor (the cell's top-left corner): cell middle + offset
    px = g.op("Add", [cx, g.const(np.float32(0.5))])
    py = g.op("Add", [cy, g.const(np.float32(0.5))])
    half_w = g.op("Mul", [root, g.const(np.float32(_BOX_W / 2))])
    half_h = g.op("Mul", [root, g.const(np.float32(_BOX_H / 2))])
    left = g.op("Sub", [half_w, px])
    top = g.op("Sub", [half_h, py])
    right = g.op("Add", [half_w, px])
    bottom = g.op("Add", [half_h, py])
    box = g.op("Concat", [left, top, right, bottom], axis=1)
    points = []
    for tx, ty in _TEMPLATE:
        points.append(g.op("Add", [px, g.op("Mul", [root, g.const(np.float32(tx * _BOX_W))])]))
        points.append(g.op("Add", [py, g.op("Mul", [root, g.const(np.float32(ty * _BOX_H))])]))
    kps = g.op("Concat", points, axis=1)
    # score logit: skin near the anchor, centroid close, blob the right size for the stride
    d2 = g.op("Add", [g.op("Mul", [cx, cx]), g.op("Mul", [cy, cy])])
    too_big = g.op("Relu", [g.op("Sub", [root, g.const(np.float32(4.2))])])
    too_small = g.op("Relu", [g.op("Sub", [g.const(np.float32(1.6)), root])])
    terms = g.op("Concat", [near, d2, too_big, too_small], axis=1)
    second = float(rng.uniform(0.15, 0.35))
    weight = np.array([[12.0, -3.0, -4.0, -6.0]] * ANCHORS, np.float32).reshape(ANCHORS, 4, 1, 1)
    bias = np.array([-6.0, -6.0 - second], np.float32)
    score = g.op("Sigmoid", [g.op("Conv", [terms, g.const(weight, "score_w"), g.const(bias, "score_b")],
                                  kernel_shape=[1, 1])])
    grow = np.float32(1.0 + rng.uniform(0.02, 0.05))
    boxes = g.op("Concat", [box, g.op("Mul", [box, g.const(grow)])], axis=1)
    kpss = g.op("Concat", [kps, g.op("Mul", [kps, g.const(grow)])], axis=1)
    return score, boxes, kpss


def _rows(g: _Graph, nchw: str, channels: int, output: str) -> str:
    nhwc = g.op("Transpose", [nchw], perm=[0, 2, 3, 1])
    return g.op("Reshape", [nhwc, g.const(np.array([-1, channels], np.int64))], output)


def scrfd_like(seed: int = 0):
    """An SCRFD-10G-with-keypoints look-alike ModelProto: same input, same nine outputs."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    skin = _skin(g, INPUT_NAME)
    cells = g.op("AveragePool", [skin], kernel_shape=[8, 8], strides=[8, 8])
    per_stride = {}
    for stride in STRIDES:
        if stride > STRIDES[0]:
            cells = g.op("AveragePool", [cells], kernel_shape=[2, 2], strides=[2, 2])
        per_stride[stride] = _heads(g, cells, stride, parameter_rng(seed, f"scrfd/{stride}"))
    outputs = []
    for head, (names, channels) in enumerate([(SCORE_NAMES, 1), (BBOX_NAMES, 4), (KPS_NAMES, 10)]):
        for stride, name in zip(STRIDES, names):
            _rows(g, per_stride[stride][head], channels, name)
            rows = (INPUT_SHAPE[2] // stride) * (INPUT_SHAPE[3] // stride) * ANCHORS
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [rows, channels]))
    graph = helper.make_graph(g.nodes, "scrfd_standin",
                              [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(INPUT_SHAPE))],
                              outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facezoo")
    model.ir_version = 8
    checker.check_model(model)
    return model


def write_scrfd_like(path: Path, seed: int = 0) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(scrfd_like(seed).SerializeToString())
    return path


__all__ = ["INPUT_NAME", "INPUT_SHAPE", "OUTPUT_NAMES", "scrfd_like", "write_scrfd_like"]
