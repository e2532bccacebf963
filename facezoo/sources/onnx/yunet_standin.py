"""A stand-in for OpenCV Zoo's YuNet 2023mar face detector (``face_detection_yunet_2023mar.onnx``).

The real file cannot be downloaded here, so the decoder is checked against ``cv2.FaceDetectorYN``
on this graph instead, and the converters are judged on it. It keeps everything of the real file
that the decoder and the runtimes see: the input ``input`` declared 1x3x640x640 (BGR 0..255, no
normalization) although OpenCV runs it at the image's own size padded to a multiple of 32; the 12
outputs ``cls_*``, ``obj_*``, ``bbox_*``, ``kps_*`` for strides 8/16/32 with the real names and
shapes ([1, N, 1], [1, N, 1], [1, N, 4], [1, N, 10]); Sigmoid on cls/obj; NCHW → [1, H*W, C]
through Transpose and a Reshape to [1, -1, C], so the graph runs at any padded size in ONNX Runtime
and OpenCV DNN.

The weights are set by hand so that it behaves like a trained detector on real photos: one face
per face after NMS 0.3, true faces scoring ~0.94-0.98 and the rest far below (background ~1e-3),
every prior near a face predicting (nearly) the same box and landmarks, so that whichever of them
NMS keeps, and whichever wins when a converter moves the scores a little, the face is the same; and
raw heads that FP16 moves by well under 1 % of their range. How:

* trunk: layer 1 (/2) measures per pixel how far its colour lies outside soft skin ranges (ramps
  10-45 grey levels wide, no hard thresholds; pieces that are zero inside the ranges, so a skin
  pixel's stay exact in FP16), how fast R-G changes (the blurred border between two other colours
  passes through skin colours), and the raw B+G+R sum; layer 2 (/4) turns them into a skin map
  (1 less the deficits) and a constant channel; layers 3-5 carry the map down to /8, /16 and /32
  with mass-preserving binomial blurs (at /8 less a soft cut, subtracted inside the convolution by
  way of the constant, that drops lines and specks);
* heads: each prior measures the skin around it in flat-topped windows (mass, centroid offset
  clamped to ±1.5 cells, second moments) and takes those of the smallest of six window sizes that
  holds the blob whole (half of a stride's windows are, in pixels, those of the next, so two
  strides measure a face alike). The box is centred on the centroid with sides from the mass; the
  landmarks are a face template on that box; so every prior whose window holds the face gives the
  same box. cls/obj fall with the centroid's distance from the prior (steeply past one cell, so few
  priors score near the threshold) and with a blob that is too large or small for the stride,
  elongated, sparse, or thin at the prior, down to a floor; offsets and sizes are clamped, and
  offsets fade out where a window holds next to no skin, so bbox/kps stay within a few units.

Like a trained network it is unkind to converters: every trunk convolution is followed by an
unfolded BatchNormalization whose statistics look trained (moving means and variances off
zero/one, some channels with variance 1e-4..1e-3 whose filters were scaled down and whose BN scales
them back up ~30-100x) and whose affine part carries the designed offsets, so the BN cannot be
dropped; the B+G+R channel (0..765) runs down the trunk into obj (only), and the window moment sums
reach a few thousand. Random channels ride along in the trunk and nudge cls/obj a little; they
stay off the skin map, the boxes and the landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo.atomic import atomic_path
from facezoo.sources.standin_statistics import parameter_rng

OPSET = 13
INPUT_NAME = "input"
INPUT_SHAPE = (1, 3, 640, 640)
STRIDES = (8, 16, 32)
OUTPUT_CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
OUTPUT_NAMES = tuple(f"{head}_{s}" for head in OUTPUT_CHANNELS for s in STRIDES)
WIDTH_1 = 20  # channels of the first trunk feature map (/2)
WIDTH = 16  # of the others (/4 .. /32)
BN_EPS = 1e-5

# Landmarks around the box centre in box widths (x) and heights (y), ArcFace order: the eye on the
# image's left, the one on its right, nose, mouth corner on the image's left, on its right.
_TEMPLATE = np.array([[-0.17, -0.10], [0.17, -0.10], [0.0, 0.05], [-0.13, 0.22], [0.13, 0.22]], np.float32)
# Box sides in units of sqrt(skin area): a face's skin covers most of its box.
_BOX_W, _BOX_H = 1.15, 1.40

# -- skin (BGR input, per pixel after a 3x3 blur): corners of soft trapezoids and ramps, 10-45 grey
# levels wide, so that small input errors move the map a little only.
_RG = (8.0, 20.0, 75.0, 100.0)  # R-G
_GB = (-4.0, 6.0, 52.0, 70.0)  # G-B
_HUE = (-4.0, 10.0)  # (R-G) - (G-B)/2 rising: hair and wood are greener than skin
_RED = (50.0, 95.0)  # R rising: dark regions are not skin
# |d(R-G)/dx| and |d(R-G)/dy| (grey levels per pixel) above the first take skin away, 1 per the second
_EDGE = (2.0, 20.0)
_SOLID = 0.5  # the /8 map keeps the skin fraction above this (a ramp to 1): lines and specks go

# -- measuring windows. Flat radii in cells of each stride (2.5 to 8), tapers a quarter of that:
# six sizes a third of an octave apart, so the three largest of a stride are the three smallest of
# the next in pixels and two strides measure a face of a size between them in the same window.
_RADII = {s: tuple(4.0 * 2.0 ** (k / 3.0) for k in range(-2, 4)) for s in STRIDES}
_FIT = (0.015, 0.05)  # skin cover of a window's inner edge band: the blob fits below, spills above
_MASS_EPS = 0.05  # cells of skin added to every window's mass: no division by zero on gray
_VAR_EPS = 0.25  # cells² added to the variances before their log
_OFFSET_LIMIT = 1.5  # centroid offsets clamped to this many cells (such priors score below ~0.85)
_OFFSET_MASS = (0.5, 1.5)  # offsets fade in from this sqrt(skin mass) (cells) over the next
_MIN_MASS = 1.0  # box sides as if the window held at least this much skin (cells)

# -- scores. Per stride, the log skin area (cells²) it prefers (skin of 24-48, 48-96, 96-320 px
# across) and the side (cells) at which its boxes stop growing.
_SCALE = {8: (np.log(3.0 ** 2), np.log(6.0 ** 2)), 16: (np.log(3.0 ** 2), np.log(6.0 ** 2)),
          32: (np.log(3.0 ** 2), np.log(10.0 ** 2))}
_MAX_SIDE = {8: 9.0, 16: 9.0, 32: 12.0}
_ELONGATION = (0.25, 0.45)  # log(var y / var x) of a face, and the tolerance either side
_FILL = 0.6  # skin at the prior counts up to this (a face's eyes and mouth are not skin)
_DENSE = -0.85  # log(mass / (4π σx σy)) below this: skin too thin or scattered for a face
# Logit terms: (peak; per cell of centroid offset (|dx| + |dy|), and more per cell beyond the first,
# so that scores cross the threshold steeply; per unit of log area out of the stride's range; per
# unit of taper fraction; at a prior filled with skin; per unit of elongation out of tolerance; per
# unit of sparseness)
_LOGIT = {"cls": (1.3, 0.9, 3.0, 4.0, 6.0, 2.5, 3.0, 4.0), "obj": (1.2, 0.8, 3.0, 5.0, 5.0, 2.6, 3.0, 4.0)}
_SMALL_LIMIT = 1.5  # log area below the range counts up to this much
_FLOOR = -7.0  # logits held above this: background scores ~1e-3, as a trained net's (not 1e-30)
_TRUNK_NOISE = 0.03  # std of the weights from the trunk's random channels to the logits


class StandinGraph:
    """Nodes and initializers of the stand-in, with trained-looking BatchNorm around designed convs."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.nodes: list = []
        self.initializers: dict[str, np.ndarray] = {}
        self.count = 0

    def _name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self._name(hint)
        self.initializers[name] = np.array(value, order="C")
        return name

    def node(self, op: str, inputs: list[str], hint: str, output: str | None = None, **attrs) -> str:
        from onnx import helper

        name = self._name(hint)
        out = output or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def rng(self, key: str) -> np.random.Generator:
        return parameter_rng(self.seed, f"yunet/{key}")

    def model(self, name: str, input_name: str, input_shape, outputs: list):
        """The graph as a checked ``onnx.ModelProto`` (one float input; ``outputs``: value infos)."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            self.nodes, name, [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
            outputs, [numpy_helper.from_array(v, k) for k, v in self.initializers.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facezoo-standin")
        model.ir_version = 7
        onnx.checker.check_model(model)
        return model

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray | None, hint: str, stride: int = 1) -> str:
        """A plain convolution, "same" padding (odd kernels)."""
        kh, kw = weight.shape[-2:]
        inputs = [x, self.const(f"{hint}_w", np.asarray(weight, np.float32))]
        if bias is not None:
            inputs.append(self.const(f"{hint}_b", np.asarray(bias, np.float32)))
        return self.node("Conv", inputs, hint, kernel_shape=[kh, kw], strides=[stride, stride],
                         pads=[kh // 2, kw // 2, kh // 2, kw // 2])

    def conv_bn_relu(self, x: str, weight: np.ndarray, stride: int, scale: np.ndarray, shift: np.ndarray,
                     key: str) -> str:
        """Conv (no bias) + BatchNormalization + ReLU computing relu(scale * conv(x) + shift) per channel.

        The BN statistics are drawn to look trained and gamma/beta solved to give that affine map;
        a few channels get their filter scaled by ~0.01-0.03 and a matching tiny moving variance.
        """
        r = self.rng(key)
        cout = weight.shape[0]
        weight = weight.astype(np.float64).copy()
        quiet = r.choice(cout, max(1, cout // 8), replace=False)
        shrink = np.ones(cout)
        shrink[quiet] = 10.0 ** r.uniform(np.log10(0.01), np.log10(0.03), quiet.size)
        weight *= shrink[:, None, None, None]
        scale = np.asarray(scale, np.float64) / shrink
        variance = np.exp(r.normal(0.0, 1.0, cout)) * 4.0
        variance[quiet] = 10.0 ** r.uniform(-4.0, -3.0, quiet.size)
        mean = r.normal(0.0, 1.0, cout) * np.sqrt(variance)
        gamma = scale * np.sqrt(variance + BN_EPS)
        beta = np.asarray(shift, np.float64) + scale * mean
        y = self.conv(x, weight, None, "conv", stride)
        params = [self.const(n, v.astype(np.float32)) for n, v in
                  (("bn_gamma", gamma), ("bn_beta", beta), ("bn_mean", mean), ("bn_var", variance))]
        y = self.node("BatchNormalization", [y, *params], "bn", epsilon=BN_EPS)
        return self.node("Relu", [y], "relu")


_BINOMIAL = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0


def _spread(kernel: np.ndarray) -> np.ndarray:
    """A 3x3 binomial footprint for a per-pixel linear map (cout x cin → cout x cin x 3 x 3).

    At stride 2 every input pixel gets the same total weight, so a map's mass (its sum times the
    cell area) is kept however a blob sits on the grid.
    """
    return kernel[:, :, None, None] * _BINOMIAL


def _random_rows(r: np.random.Generator, rows: int, cin: int, std: float) -> np.ndarray:
    return r.normal(0.0, std, (rows, cin, 3, 3))


def _deficit(vector: np.ndarray, corners) -> tuple[list, list, dict[int, float]]:
    """How far v = vector · BGR lies outside a soft range: 2 corners (a ramp rising from a to b) or
    4 (a trapezoid c0 < c1 ≤ c2 < c3). Returns the layer-1 rows and shifts of the pieces
    relu(c - v) below the range and relu(v - c) above it, all zero inside it, and the coefficients
    over them that give the deficit: 0 inside, rising linearly to 1 outside."""
    if len(corners) == 2:
        below, above = corners, ()
    else:
        below, above = corners[:2], corners[2:]
    rows, shifts, coefficients = [], [], {}
    if below:
        a, c = below
        rows += [-vector, -vector]
        shifts += [c, a]  # relu(c - v), relu(a - v)
        coefficients.update({0: 1.0 / (c - a), 1: -1.0 / (c - a)})
    if above:
        c, d = above
        rows += [vector, vector]
        shifts += [-c, -d]  # relu(v - c), relu(v - d)
        coefficients.update({len(rows) - 2: 1.0 / (d - c), len(rows) - 1: -1.0 / (d - c)})
    return rows, shifts, coefficients


def _window(radius: float, taper: float, half: int | None = None) -> np.ndarray:
    """A separable flat-topped window: 1 within ``radius`` cells, falling linearly to 0 at
    ``radius + taper``; (2 * half + 1) cells square (by default just large enough)."""
    if half is None:
        half = int(np.ceil(radius + taper)) - 1
    d = np.abs(np.arange(-half, half + 1, dtype=np.float64))
    w = np.clip((radius + taper - d) / taper, 0.0, 1.0)
    return np.outer(w, w)


def one_by_one(rows) -> np.ndarray:
    return np.asarray(rows, np.float64)[:, :, None, None]


def skin_heads(g: StandinGraph, image: str) -> dict[int, dict[str, str]]:
    """The trunk and the heads on a 1×3×H×W BGR 0..255 tensor ``image``: per stride, the NCHW
    cls and obj (after Sigmoid), bbox (centroid offset from the cell's top-left corner in cells,
    log sides in cells) and kps (offsets in cells). The SCRFD stand-in reuses them."""
    # -- layer 1 (/2): per pixel, how far its colour lies outside each soft skin range (pieces that
    # are zero inside the range, so a skin pixel's are exact in FP16), how fast R-G changes there,
    # and the B+G+R sum
    b, gr, rd = np.eye(3)
    rows, shifts, deficit = [], [], {}
    for vector, corners in ((rd - gr, _RG), (gr - b, _GB), (rd - gr - (gr - b) / 2, _HUE), (rd, _RED)):
        piece_rows, piece_shifts, coefficients = _deficit(vector, corners)
        deficit.update({len(rows) + i: c for i, c in coefficients.items()})
        rows += piece_rows
        shifts += piece_shifts
    bright_index = len(rows)
    rows.append(b + gr + rd)
    shifts.append(0.0)
    kernel = _spread(np.array(rows))
    sobel = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / 8.0  # d/dx in grey levels per pixel
    edges = np.stack([sign * (rd - gr)[:, None, None] * k for k in (sobel, sobel.T) for sign in (1.0, -1.0)])
    edge_index = len(rows)
    kernel = np.concatenate([kernel, edges])
    shifts += [-_EDGE[0]] * 4
    designed = len(shifts)  # 17: R-G at 4 corners, G-B at 4, hue at 2, R at 2, the sum, 4 edges
    extra = WIDTH_1 - designed
    kernel = np.concatenate([kernel, _random_rows(g.rng("l1"), extra, 3, np.sqrt(2.0 / 27))])
    scale = np.concatenate([np.ones(designed), np.full(extra, 0.02)])
    shift = np.concatenate([shifts, g.rng("l1/shift").normal(0.0, 0.5, extra)])
    x = g.conv_bn_relu(image, kernel, 2, scale, shift, "l1")

    # -- layer 2 (/4): channel 0 the skin map, 1 less the deficits (an AND of the four ranges) and
    # less where colour edges are (the blurred border between two other colours passes through skin
    # colours); channel 1 the B+G+R sum; channel 2 a constant 1; the rest mixed from layer 1's random
    # channels
    skin = np.zeros(WIDTH_1)
    for index, value in deficit.items():
        skin[index] = -value
    skin[edge_index:edge_index + 4] = -1.0 / _EDGE[1]
    bright = np.zeros(WIDTH_1)
    bright[bright_index] = 1.0
    r = g.rng("l2")
    mix = np.concatenate([np.zeros((WIDTH - 3, designed)), r.normal(0.0, 0.3, (WIDTH - 3, extra))], axis=1)
    kernel = _spread(np.vstack([skin, bright, np.zeros(WIDTH_1), mix]))
    shift = np.concatenate([[1.0, 0.0, 1.0], r.normal(0.0, 0.2, WIDTH - 3)])
    x = g.conv_bn_relu(x, kernel, 2, np.ones(WIDTH), shift, "l2")

    # -- layers 3..5 (/8, /16, /32): channels 0 and 1 blurred down (at /8 the skin fraction less
    # _SOLID: lines and specks go; subtracted in the convolution, by way of the constant channel,
    # so that FP16 keeps the small differences), the rest mixed at random
    features = {}
    for stride in STRIDES:
        r = g.rng(f"down{stride}")
        keep = np.zeros((2, WIDTH, 3, 3))
        keep[0, 0], keep[1, 1] = _BINOMIAL, _BINOMIAL
        scale = np.ones(WIDTH)
        if stride == STRIDES[0]:
            keep[0, 2] = -_SOLID * _BINOMIAL
            scale[0] = 1.0 / (1.0 - _SOLID)
        kernel = np.concatenate([keep, _random_rows(r, WIDTH - 2, WIDTH, 0.15)])
        kernel[2:, :3] = 0.0  # the random channels stay off the skin map, the 0..765 sum (and the constant)
        shift = np.concatenate([[0.0, 0.0], r.normal(0.0, 0.1, WIDTH - 2)])
        x = g.conv_bn_relu(x, kernel, 2, scale, shift, f"down{stride}")
        features[stride] = x

    return {stride: _head(g, stride, feature) for stride, feature in features.items()}


def yunet_like(seed: int = 0):
    """The stand-in graph as an ``onnx.ModelProto``."""
    from onnx import TensorProto, helper

    g = StandinGraph(seed)
    # -- heads, then NCHW → [1, H*W, C]
    for stride, outputs in skin_heads(g, INPUT_NAME).items():
        for name in OUTPUT_CHANNELS:
            y = g.node("Transpose", [outputs[name]], "transpose", perm=[0, 2, 3, 1])
            target = g.const("shape", np.array([1, -1, OUTPUT_CHANNELS[name]], np.int64))
            g.node("Reshape", [y, target], "reshape", output=f"{name}_{stride}")

    height, width = INPUT_SHAPE[2:]  # the declared shapes: those of a 640x640 input, as in the real file
    graph_outputs = [helper.make_tensor_value_info(f"{head}_{s}", TensorProto.FLOAT,
                                                   [1, (height // s) * (width // s), c])
                     for head, c in OUTPUT_CHANNELS.items() for s in STRIDES]
    return g.model("yunet-standin", INPUT_NAME, INPUT_SHAPE, graph_outputs)


def _measure(g: StandinGraph, stride: int, skin_map: str) -> str:
    """Per prior, the skin around it in the smallest window that holds its blob whole.

    Each window w gives [dx, dy, taper fraction, E dx², E dy², log mass] (Σ s·[w·dx, w·dy, 1 - w,
    w·dx², w·dy²] over Σ s·w + eps, s the skin map, offsets in cells, dx and dy clamped to
    ±_OFFSET_LIMIT); the result blends them, window k with weight fit_k · Π_{j<k} (1 - fit_j),
    where fit_k says that skin barely covers the band just inside window k's flat edge, so the blob
    lies within its flat part; the largest window takes what is left. Every prior whose chosen windows hold the blob flat then measures the same
    centroid (prior + offset) and mass. (Blending the ratios rather than the sums, with offsets
    clamped, keeps a sliver of weight on a large window, which FP16 rounding moves, from swinging
    the result.)
    """
    blend = rest = None
    radii = _RADII[stride]
    for k, radius in enumerate(radii):
        taper = radius / 4.0
        window = _window(radius, taper)
        half = window.shape[0] // 2
        d = np.arange(-half, half + 1, dtype=np.float64)
        moments = np.stack([window * d[None, :], window * d[:, None], 1.0 - window,
                            window * d[None, :] ** 2, window * d[:, None] ** 2])[:, None]
        mass = g.conv(skin_map, window[None, None], np.array([_MASS_EPS]), f"mass{stride}_{k}")
        ratios = g.node("Div", [g.conv(skin_map, moments, None, f"moments{stride}_{k}"), mass], "div")
        # offsets clamped to ±_OFFSET_LIMIT: a window that sees a blob far off gives an offset that
        # says no more than "far", so a sliver of weight on it moves the blend little
        limit = _OFFSET_LIMIT
        beyond = g.node("Relu", [g.conv(ratios, one_by_one([[1, 0, 0, 0, 0], [-1, 0, 0, 0, 0], [0, 1, 0, 0, 0],
                                                      [0, -1, 0, 0, 0]]), np.full(4, -limit),
                                        f"beyond{stride}_{k}")], "relu")
        w = np.zeros((5, 9))
        w[:, :5] = np.eye(5)
        w[0, 5], w[0, 6], w[1, 7], w[1, 8] = -1.0, 1.0, -1.0, 1.0
        ratios = g.conv(g.node("Concat", [ratios, beyond], "concat", axis=1), one_by_one(w), None, f"clamp{stride}_{k}")
        measured = g.node("Concat", [ratios, g.node("Log", [mass], "log")], "concat", axis=1)
        if k < len(radii) - 1:
            band = window - _window(radius - taper, taper, half)
            lo, hi = _FIT
            cover = np.stack([band, band])[:, None] * (-1.0 / (hi - lo) / band.sum())
            ramp = g.node("Relu", [g.conv(skin_map, cover, np.array([hi, lo]) / (hi - lo), f"band{stride}_{k}")],
                          "relu")  # [(hi - cover)/(hi - lo), (lo - cover)/(hi - lo)], each ≥ 0
            fit = g.conv(ramp, one_by_one([[1.0, -1.0], [-1.0, 1.0]]), np.array([0.0, 1.0]), f"fit{stride}_{k}")
            if rest is not None:  # [rest · fit, rest · (1 - fit)]
                fit = g.node("Mul", [rest, fit], "mul")
            weight = g.conv(fit, one_by_one([[1.0, 0.0]]), None, f"take{stride}_{k}")
            left = g.conv(fit, one_by_one([[0.0, 1.0]]), None, f"left{stride}_{k}")
        else:
            weight, left = rest, None
        part = g.node("Mul", [weight, measured], "mul")
        blend = part if blend is None else g.node("Add", [blend, part], "add")
        rest = left
    return blend


def _head(g: StandinGraph, stride: int, feature: str) -> dict[str, str]:
    """cls, obj, bbox and kps of one stride (NCHW), from the skin map in channel 0 of ``feature``."""
    r = g.rng(f"head{stride}")
    skin_map = g.conv(feature, one_by_one([[1.0] + [0.0] * (WIDTH - 1)]), None, f"skin{stride}")
    measured = _measure(g, stride, skin_map)  # dx, dy (cells), taper fraction, E dx², E dy², log mass
    squares = g.node("Mul", [measured, measured], "mul")
    w = np.zeros((2, 12))
    w[0, 3], w[0, 6], w[1, 4], w[1, 7] = 1.0, -1.0, 1.0, -1.0
    # E dx² - (E dx)² cancels where a prior is far from the skin: the Relu keeps a rounded result
    # (FP16) from going below zero there
    variances = g.node("Relu", [g.conv(g.node("Concat", [measured, squares], "concat", axis=1), one_by_one(w), None,
                                       f"var{stride}")], "relu")
    variances = g.node("Add", [variances, g.const("var_eps", np.full((1, 2, 1, 1), _VAR_EPS, np.float32))], "add")
    root = g.node("Exp", [g.conv(measured, one_by_one([[0.0] * 5 + [0.5]]), None, f"half_log{stride}")], "exp")  # √mass
    centre = g.conv(skin_map, _BINOMIAL[None, None], None, f"centre{stride}")
    head = g.node("Concat", [measured, g.node("Log", [variances], "log"), root, centre], "concat", axis=1)
    # head: 0 dx, 1 dy (clamped), 2 taper fraction, 3 E dx², 4 E dy², 5 log mass, 6 log var x,
    # 7 log var y, 8 sqrt mass, 9 skin at the prior. parts: relu(affine(head)), by name
    lo, hi = _SCALE[stride]
    e0, e_tol = _ELONGATION
    side = _MAX_SIDE[stride]
    terms = {  # name: (weights on head channels, bias)
        "+dx": ({0: 1.0}, 0.0), "-dx": ({0: -1.0}, 0.0), "+dy": ({1: 1.0}, 0.0), "-dy": ({1: -1.0}, 0.0),
        "+dx>1": ({0: 1.0}, -1.0), "-dx>1": ({0: -1.0}, -1.0), "+dy>1": ({1: 1.0}, -1.0), "-dy>1": ({1: -1.0}, -1.0),
        "large": ({5: 1.0}, -hi), "small": ({5: -1.0}, lo),  # log area above, below the stride's range
        "very small": ({5: -1.0}, lo - _SMALL_LIMIT),  # below by more than _SMALL_LIMIT
        "taper": ({2: 1.0}, 0.0),  # skin in the window's taper
        "fill": ({9: 1.0}, 0.0), "overfill": ({9: 1.0}, -_FILL),  # skin at the prior, its excess over _FILL
        "tall": ({7: 1.0, 6: -1.0}, -(e0 + e_tol)), "wide": ({7: -1.0, 6: 1.0}, e0 - e_tol),
        "sparse": ({5: -1.0, 6: 0.5, 7: 0.5}, np.log(4 * np.pi) + _DENSE),
        "log mass": ({5: 1.0}, -np.log(_MIN_MASS)), "log mass over": ({5: 1.0}, -2.0 * np.log(side)),
        "root": ({8: 1.0}, -np.sqrt(_MIN_MASS)), "root over": ({8: 1.0}, -side),
        "fade": ({8: 1.0}, -_OFFSET_MASS[0]), "fade over": ({8: 1.0}, -sum(_OFFSET_MASS)),
    }
    index = {name: i for i, name in enumerate(terms)}
    w = np.zeros((len(terms), 10))
    for row, (weights, _) in enumerate(terms.values()):
        for column, value in weights.items():
            w[row, column] = value
    parts = g.node("Relu", [g.conv(head, one_by_one(w), np.array([bias for _, bias in terms.values()]), f"parts{stride}")],
                   "relu")

    def weights(rows: int, values: dict, width: int = len(terms), first: int = 0) -> np.ndarray:
        """A rows × width 1x1 kernel: values maps (row, part name) to a weight (part names index
        channels from ``first`` on)."""
        kernel = np.zeros((rows, width))
        for (row, name), value in values.items():
            kernel[row, first + index[name]] += value
        return kernel

    # bbox, kps: the centroid offset faded in with the mass (a window with next to no skin has no
    # centroid to speak of), sides from the mass held within [_MIN_MASS, side²]; kps the template
    # on that box, around the centroid
    w = weights(3, {(2, "fade"): 1.0 / _OFFSET_MASS[1], (2, "fade over"): -1.0 / _OFFSET_MASS[1]}, 10 + len(terms), 10)
    w[0, 0] = w[1, 1] = 1.0
    offsets = g.conv(g.node("Concat", [head, parts], "concat", axis=1), one_by_one(w), None, f"offsets{stride}")
    fade = g.conv(offsets, one_by_one([[0.0, 0.0, 1.0]]), None, f"fade{stride}")
    faded = g.node("Mul", [offsets, fade], "mul")  # dx·fade, dy·fade, fade²
    sizes = g.node("Concat", [faded, parts], "concat", axis=1)
    w = weights(4, {(k, name): value for k in (2, 3) for name, value in (("log mass", 0.5), ("log mass over", -0.5))},
                3 + len(terms), 3)
    w[0, 0] = w[1, 1] = 1.0
    bias = np.array([0.0, 0.0, np.log(_BOX_W), np.log(_BOX_H)]) + np.r_[0.0, 0.0, 0.5, 0.5] * np.log(_MIN_MASS)
    outputs = {"bbox": g.conv(sizes, one_by_one(w), bias, f"bbox{stride}")}
    template = (_TEMPLATE * np.array([_BOX_W, _BOX_H])).reshape(-1)
    w = weights(10, {}, 3 + len(terms), 3)
    w[0::2, 0] = w[1::2, 1] = 1.0
    w[:, 3 + index["root"]], w[:, 3 + index["root over"]] = template, -template
    outputs["kps"] = g.conv(sizes, one_by_one(w), template * np.sqrt(_MIN_MASS), f"kps{stride}")

    # cls, obj: the parts (every term bounded) held above _FLOOR, then a little of the trunk's
    # random channels (obj also a little of B+G+R), so that background priors score ~1e-3, varied
    for name in ("cls", "obj"):
        peak, slope, steep, scale_slope, taper_slope, fill_gain, shape_slope, dense_slope = _LOGIT[name]
        values = {(0, part): -slope for part in ("+dx", "-dx", "+dy", "-dy")}
        values.update({(0, part): -steep for part in ("+dx>1", "-dx>1", "+dy>1", "-dy>1")})
        values.update({(0, "large"): -scale_slope, (0, "small"): -scale_slope, (0, "very small"): scale_slope,
                       (0, "taper"): -taper_slope, (0, "fill"): fill_gain / _FILL, (0, "overfill"): -fill_gain / _FILL,
                       (0, "tall"): -shape_slope, (0, "wide"): -shape_slope, (0, "sparse"): -dense_slope})
        above = g.node("Relu", [g.conv(parts, one_by_one(weights(1, values)), np.array([peak - _FLOOR]),
                                       f"{name}{stride}_design")], "relu")
        w = np.zeros((1, 1 + WIDTH))
        w[0, 0] = 1.0
        w[0, 1 + 2:] = r.normal(0.0, _TRUNK_NOISE, WIDTH - 2)
        if name == "obj":
            w[0, 1 + 1] = 2e-4  # brighter skin is a bit more certain (the 0..765 channel)
        logit = g.conv(g.node("Concat", [above, feature], "concat", axis=1), one_by_one(w), np.array([_FLOOR]),
                       f"{name}{stride}")
        outputs[name] = g.node("Sigmoid", [logit], "sigmoid")
    return outputs


def write_yunet_standin(path: Path, seed: int = 0) -> Path:
    """Write the stand-in to ``path`` whole or not at all (a temporary name beside it, then a rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as temporary:
        temporary.write_bytes(yunet_like(seed).SerializeToString())
    return path


__all__ = ["INPUT_NAME", "INPUT_SHAPE", "OUTPUT_NAMES", "STRIDES", "skin_heads", "write_yunet_standin", "yunet_like"]
