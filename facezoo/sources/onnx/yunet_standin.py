"""A stand-in for OpenCV Zoo's YuNet 2023mar face detector (``face_detection_yunet_2023mar.onnx``).

The real file cannot be downloaded here, so the decoder is checked against ``cv2.FaceDetectorYN``
on this graph instead, and the converters are judged on it. It keeps everything of the real file
that the decoder and the runtimes see: the input ``input`` declared 1x3x640x640 (BGR 0..255, no
normalization) although OpenCV runs it at the image's own size padded to a multiple of 32; the 12
outputs ``cls_*``, ``obj_*``, ``bbox_*``, ``kps_*`` for strides 8/16/32 with the real names and
shapes ([1, N, 1], [1, N, 1], [1, N, 4], [1, N, 10]); Sigmoid on cls/obj; NCHW → [1, H*W, C]
through Transpose and a Reshape to [1, -1, C], so the graph runs at any padded size in ONNX Runtime
and OpenCV DNN.

The weights are set by hand so that it behaves like a trained detector on real photos: about one
face per face after NMS 0.3, true faces scoring ~0.94-0.98 and the rest well below, and every
prior near a face predicting (nearly) the same box and landmarks, so that whichever of them NMS
keeps, and whichever wins when a converter moves the scores a little, the face is the same.
How:

* trunk: layer 1 (/2) measures per pixel soft skin colour ranges (trapezoids and ramps 10-25 grey
  levels wide, no hard thresholds), how fast R-G changes (the blurred border between two other
  colours passes through skin colours), and the raw B+G+R sum; layer 2 (/4) ANDs them into a skin
  map; layers 3-5 carry it down to /8, /16 and /32 with mass-preserving binomial blurs (at /8 a
  soft cut drops lines and specks);
* heads: each prior measures the skin around it in flat-topped windows (mass, centroid offset,
  second moments), using the smallest of six window sizes that holds the blob whole (half of a
  stride's windows are, in pixels, those of the next, so two strides measure a face alike). The box is
  centred on the centroid with sides from the mass; the landmarks are a face template on that box;
  so every prior whose window holds the face gives the same box. cls/obj fall with the centroid's
  distance from the prior (steeply past one cell, so few priors score near the threshold) and with
  a blob that is too large or small for the stride, elongated, sparse, or thin at the prior;
  offsets and sizes are clamped so bbox/kps stay within a few units.

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

# -- skin (BGR input, per pixel after a 3x3 blur): corners of soft trapezoids and ramps, 10-25 grey
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
_OFFSET_LIMIT = 3.0  # centroid offsets clamped to this many cells (such priors score ~0.7 at best)

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
_LOGIT = {"cls": (1.3, 0.9, 2.0, 4.0, 6.0, 2.5, 3.0, 4.0), "obj": (1.2, 0.8, 2.0, 5.0, 5.0, 2.6, 3.0, 4.0)}


class _Graph:
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


def _trapezoid(index: int, corners) -> dict[int, float]:
    """Coefficients over the channels relu(v - c_k) that give a trapezoid 0 → 1 → 0 in v."""
    c0, c1, c2, c3 = corners
    return {index: 1 / (c1 - c0), index + 1: -1 / (c1 - c0), index + 2: -1 / (c3 - c2), index + 3: 1 / (c3 - c2)}


def _ramp(index: int, corners) -> dict[int, float]:
    """Coefficients over relu(v - a), relu(v - b) that give a ramp 0 → 1 from a to b."""
    a, b = corners
    return {index: 1 / (b - a), index + 1: -1 / (b - a)}


def _window(radius: float, taper: float, half: int | None = None) -> np.ndarray:
    """A separable flat-topped window: 1 within ``radius`` cells, falling linearly to 0 at
    ``radius + taper``; (2 * half + 1) cells square (by default just large enough)."""
    if half is None:
        half = int(np.ceil(radius + taper)) - 1
    d = np.abs(np.arange(-half, half + 1, dtype=np.float64))
    w = np.clip((radius + taper - d) / taper, 0.0, 1.0)
    return np.outer(w, w)


def _1x1(rows) -> np.ndarray:
    return np.asarray(rows, np.float64)[:, :, None, None]


def yunet_like(seed: int = 0):
    """The stand-in graph as an ``onnx.ModelProto``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = _Graph(seed)
    # -- layer 1 (/2): soft skin measures per pixel (relu(v - corner) for each corner), how fast R-G
    # changes there, and the B+G+R sum
    b, gr, rd = np.eye(3)
    rows, shifts = [], []
    for vector, corners in ((rd - gr, _RG), (gr - b, _GB), (rd - gr - (gr - b) / 2, _HUE), (rd, _RED)):
        rows += [vector] * len(corners)
        shifts += [-c for c in corners]
    rows.append(b + gr + rd)
    shifts.append(0.0)
    kernel = _spread(np.array(rows))
    sobel = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / 8.0  # d/dx in grey levels per pixel
    edges = np.stack([sign * (rd - gr)[:, None, None] * k for k in (sobel, sobel.T) for sign in (1.0, -1.0)])
    kernel = np.concatenate([kernel, edges])
    shifts += [-_EDGE[0]] * 4
    designed = len(shifts)  # 17: R-G at 4 corners, G-B at 4, hue at 2, R at 2, the sum, 4 edges
    extra = WIDTH_1 - designed
    kernel = np.concatenate([kernel, _random_rows(g.rng("l1"), extra, 3, np.sqrt(2.0 / 27))])
    scale = np.concatenate([np.ones(designed), np.full(extra, 0.02)])
    shift = np.concatenate([shifts, g.rng("l1/shift").normal(0.0, 0.5, extra)])
    x = g.conv_bn_relu(INPUT_NAME, kernel, 2, scale, shift, "l1")

    # -- layer 2 (/4): channel 0 the skin map (an AND of the four measures, less where colour
    # edges are), channel 1 the B+G+R sum, the rest mixed from layer 1's random channels
    skin = np.zeros(WIDTH_1)
    for index, value in {**_trapezoid(0, _RG), **_trapezoid(4, _GB), **_ramp(8, _HUE), **_ramp(10, _RED)}.items():
        skin[index] = value
    skin[13:17] = -1.0 / _EDGE[1]
    bright = np.zeros(WIDTH_1)
    bright[12] = 1.0
    r = g.rng("l2")
    mix = np.concatenate([np.zeros((WIDTH - 2, designed)), r.normal(0.0, 0.3, (WIDTH - 2, extra))], axis=1)
    kernel = _spread(np.vstack([skin, bright, mix]))
    shift = np.concatenate([[-3.0, 0.0], r.normal(0.0, 0.2, WIDTH - 2)])
    x = g.conv_bn_relu(x, kernel, 2, np.ones(WIDTH), shift, "l2")

    # -- layers 3..5 (/8, /16, /32): channels 0 and 1 blurred down, the rest mixed at random
    features = {}
    for stride in STRIDES:
        r = g.rng(f"down{stride}")
        keep = np.zeros((2, WIDTH, 3, 3))
        keep[0, 0], keep[1, 1] = _BINOMIAL, _BINOMIAL
        kernel = np.concatenate([keep, _random_rows(r, WIDTH - 2, WIDTH, 0.15)])
        kernel[2:, :2] = 0.0  # the random channels stay off the skin map and the 0..765 sum
        scale, shift = np.ones(WIDTH), np.concatenate([[0.0, 0.0], r.normal(0.0, 0.1, WIDTH - 2)])
        if stride == STRIDES[0]:
            scale[0], shift[0] = 1.0 / (1.0 - _SOLID), -_SOLID / (1.0 - _SOLID)
        x = g.conv_bn_relu(x, kernel, 2, scale, shift, f"down{stride}")
        features[stride] = x

    # -- heads, then NCHW → [1, H*W, C]
    for stride, feature in features.items():
        outputs = _head(g, stride, feature)
        for name in OUTPUT_CHANNELS:
            y = g.node("Transpose", [outputs[name]], "transpose", perm=[0, 2, 3, 1])
            target = g.const("shape", np.array([1, -1, OUTPUT_CHANNELS[name]], np.int64))
            g.node("Reshape", [y, target], "reshape", output=f"{name}_{stride}")

    height, width = INPUT_SHAPE[2:]  # the declared shapes: those of a 640x640 input, as in the real file
    graph_outputs = [helper.make_tensor_value_info(f"{head}_{s}", TensorProto.FLOAT,
                                                   [1, (height // s) * (width // s), c])
                     for head, c in OUTPUT_CHANNELS.items() for s in STRIDES]
    graph = helper.make_graph(
        g.nodes, "yunet-standin", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(INPUT_SHAPE))],
        graph_outputs, [numpy_helper.from_array(v, k) for k, v in g.initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facezoo-standin")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _measure(g: _Graph, stride: int, skin_map: str) -> tuple[str, str]:
    """Per prior, the skin around it in the smallest window that holds its blob whole.

    Returns (Σ s·[w·dx, w·dy, 1 - w, w·dx², w·dy²], Σ s·w + eps) over the footprint of window w
    (s the skin map, offsets in cells), as a blend: window k gets weight fit_k · Π_{j<k} (1 - fit_j), where fit_k says that skin barely
    covers the band just inside window k's flat edge, so the blob lies within its flat part; the
    largest window takes what is left. Every prior whose chosen windows hold the blob flat then
    measures the same centroid (prior + offset) and mass.
    """
    numerator = denominator = rest = None
    radii = _RADII[stride]
    for k, radius in enumerate(radii):
        taper = radius / 4.0
        window = _window(radius, taper)
        half = window.shape[0] // 2
        d = np.arange(-half, half + 1, dtype=np.float64)
        moments = np.stack([window * d[None, :], window * d[:, None], 1.0 - window,
                            window * d[None, :] ** 2, window * d[:, None] ** 2])[:, None]
        num = g.conv(skin_map, moments, None, f"moments{stride}_{k}")
        den = g.conv(skin_map, window[None, None], np.array([_MASS_EPS]), f"mass{stride}_{k}")
        if k < len(radii) - 1:
            band = window - _window(radius - taper, taper, half)
            lo, hi = _FIT
            cover = np.stack([band, band])[:, None] * (-1.0 / (hi - lo) / band.sum())
            ramp = g.node("Relu", [g.conv(skin_map, cover, np.array([hi, lo]) / (hi - lo), f"band{stride}_{k}")],
                          "relu")  # [(hi - cover)/(hi - lo), (lo - cover)/(hi - lo)], each ≥ 0
            fit = g.conv(ramp, _1x1([[1.0, -1.0], [-1.0, 1.0]]), np.array([0.0, 1.0]), f"fit{stride}_{k}")
            if rest is not None:  # [rest · fit, rest · (1 - fit)]
                fit = g.node("Mul", [rest, fit], "mul")
            weight = g.conv(fit, _1x1([[1.0, 0.0]]), None, f"take{stride}_{k}")
            left = g.conv(fit, _1x1([[0.0, 1.0]]), None, f"left{stride}_{k}")
        else:
            weight, left = rest, None
        part_num, part_den = (g.node("Mul", [weight, t], "mul") for t in (num, den))
        numerator = part_num if numerator is None else g.node("Add", [numerator, part_num], "add")
        denominator = part_den if denominator is None else g.node("Add", [denominator, part_den], "add")
        rest = left
    return numerator, denominator


def _head(g: _Graph, stride: int, feature: str) -> dict[str, str]:
    """cls, obj, bbox and kps of one stride (NCHW), from the skin map in channel 0 of ``feature``."""
    r = g.rng(f"head{stride}")
    skin_map = g.conv(feature, _1x1([[1.0] + [0.0] * (WIDTH - 1)]), None, f"skin{stride}")
    numerator, mass = _measure(g, stride, skin_map)
    ratios = g.node("Div", [numerator, mass], "div")  # dx, dy (cells), taper fraction, E dx², E dy²
    squares = g.node("Mul", [ratios, ratios], "mul")
    w = np.zeros((2, 10))
    w[0, 3], w[0, 5], w[1, 4], w[1, 6] = 1.0, -1.0, 1.0, -1.0
    # E dx² - (E dx)² cancels where a prior is far from the skin: the Relu keeps a rounded result
    # (FP16) from going below zero there
    variances = g.node("Relu", [g.conv(g.node("Concat", [ratios, squares], "concat", axis=1), _1x1(w), None,
                                       f"var{stride}")], "relu")
    variances = g.node("Add", [variances, g.const("var_eps", np.full((1, 2, 1, 1), _VAR_EPS, np.float32))], "add")
    centre = g.conv(skin_map, _BINOMIAL[None, None], None, f"centre{stride}")
    head = g.node("Concat", [ratios, g.node("Log", [variances], "log"), g.node("Log", [mass], "log"),
                             g.node("Sqrt", [mass], "sqrt"), centre], "concat", axis=1)
    # head: 0 dx, 1 dy, 2 taper fraction, 3 E dx², 4 E dy², 5 log var x, 6 log var y, 7 log mass,
    # 8 sqrt mass, 9 skin at the prior. parts = relu(affine(head)):
    lo, hi = _SCALE[stride]
    e0, e_tol = _ELONGATION
    limit, side = _OFFSET_LIMIT, _MAX_SIDE[stride]
    terms = [  # (weights on head channels, bias)
        ({0: 1.0}, 0.0), ({0: -1.0}, 0.0), ({1: 1.0}, 0.0), ({1: -1.0}, 0.0),  # 0-3 |dx|, |dy| in halves
        ({7: 1.0}, -hi), ({7: -1.0}, lo),  # 4, 5: log area above, below the stride's range
        ({2: 1.0}, 0.0),  # 6: skin in the window's taper
        ({9: 1.0}, 0.0), ({9: 1.0}, -_FILL),  # 7, 8: skin at the prior, its excess over _FILL
        ({6: 1.0, 5: -1.0}, -(e0 + e_tol)), ({6: -1.0, 5: 1.0}, e0 - e_tol),  # 9, 10: taller, wider than a face
        ({7: -1.0, 5: 0.5, 6: 0.5}, np.log(4 * np.pi) + _DENSE),  # 11: sparse
        ({0: 1.0}, -limit), ({0: -1.0}, -limit), ({1: 1.0}, -limit), ({1: -1.0}, -limit),  # 12-15: offsets over
        ({7: 1.0}, -2.0 * np.log(side)), ({8: 1.0}, -side),  # 16, 17: size over the stride's largest box
        ({0: 1.0}, -1.0), ({0: -1.0}, -1.0), ({1: 1.0}, -1.0), ({1: -1.0}, -1.0),  # 18-21: offsets over a cell
    ]
    w = np.zeros((len(terms), 10))
    for row, (weights, _) in enumerate(terms):
        for column, value in weights.items():
            w[row, column] = value
    parts = g.node("Relu", [g.conv(head, _1x1(w), np.array([bias for _, bias in terms]), f"parts{stride}")], "relu")
    both = g.node("Concat", [head, parts], "concat", axis=1)  # 10 + 22 channels

    # bbox: the centroid offset (clamped), log sides from the mass (clamped)
    w = np.zeros((4, 10 + len(terms)))
    w[0, 0], w[0, 10 + 12], w[0, 10 + 13] = 1.0, -1.0, 1.0
    w[1, 1], w[1, 10 + 14], w[1, 10 + 15] = 1.0, -1.0, 1.0
    w[2:, 7], w[2:, 10 + 16] = 0.5, -0.5
    outputs = {"bbox": g.conv(both, _1x1(w), np.array([0.0, 0.0, np.log(_BOX_W), np.log(_BOX_H)]),
                              f"bbox{stride}")}
    # kps: the template on that box, around the centroid
    w = np.zeros((10, 10 + len(terms)))
    w[0::2, 0], w[0::2, 10 + 12], w[0::2, 10 + 13] = 1.0, -1.0, 1.0
    w[1::2, 1], w[1::2, 10 + 14], w[1::2, 10 + 15] = 1.0, -1.0, 1.0
    w[0::2, 8], w[0::2, 10 + 17] = _TEMPLATE[:, 0] * _BOX_W, -_TEMPLATE[:, 0] * _BOX_W
    w[1::2, 8], w[1::2, 10 + 17] = _TEMPLATE[:, 1] * _BOX_H, -_TEMPLATE[:, 1] * _BOX_H
    outputs["kps"] = g.conv(both, _1x1(w), None, f"kps{stride}")

    # cls, obj: the parts, and a little of the trunk's random channels (obj also a little of B+G+R)
    with_trunk = g.node("Concat", [parts, feature], "concat", axis=1)  # 22 + WIDTH channels
    for name in ("cls", "obj"):
        peak, slope, steep, scale_slope, taper_slope, fill_gain, shape_slope, dense_slope = _LOGIT[name]
        w = np.zeros((1, len(terms) + WIDTH))
        w[0, 0:4] = -slope
        w[0, 18:22] = -steep
        w[0, 4:6] = -scale_slope
        w[0, 6] = -taper_slope
        w[0, 7], w[0, 8] = fill_gain / _FILL, -fill_gain / _FILL  # skin at the prior, up to _FILL
        w[0, 9:11] = -shape_slope
        w[0, 11] = -dense_slope
        w[0, len(terms) + 2:] = r.normal(0.0, 0.03, WIDTH - 2)
        if name == "obj":
            w[0, len(terms) + 1] = 2e-4  # brighter skin is a bit more certain
        logit = g.conv(with_trunk, _1x1(w), np.array([peak]), f"{name}{stride}")
        outputs[name] = g.node("Sigmoid", [logit], "sigmoid")
    return outputs


def write_yunet_standin(path: Path, seed: int = 0) -> Path:
    """Write the stand-in to ``path`` whole or not at all (a temporary name beside it, then a rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as temporary:
        temporary.write_bytes(yunet_like(seed).SerializeToString())
    return path


__all__ = ["INPUT_NAME", "INPUT_SHAPE", "OUTPUT_NAMES", "STRIDES", "write_yunet_standin", "yunet_like"]
