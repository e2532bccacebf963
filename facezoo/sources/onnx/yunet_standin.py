"""A stand-in for OpenCV Zoo's YuNet 2023mar face detector (``face_detection_yunet_2023mar.onnx``).

The real file cannot be downloaded here, so the decoder is checked against ``cv2.FaceDetectorYN``
on this graph instead. It keeps everything of the real file that the decoder and the runtimes
see: the input ``input`` declared 1x3x640x640 (BGR 0..255, no normalization) although OpenCV runs
it at the image's own size padded to a multiple of 32; the 12 outputs ``cls_*``, ``obj_*``,
``bbox_*``, ``kps_*`` for strides 8/16/32 with the real names and shapes ([1, N, 1], [1, N, 1],
[1, N, 4], [1, N, 10]); Sigmoid on cls/obj; NCHW → [1, H*W, C] through Transpose and a Reshape
to [1, -1, C], so the graph runs at any padded size in ONNX Runtime and OpenCV DNN.

The weights are set by hand so that it *detects* something on real photos (the decoder's NMS,
thresholds and top-k then have work to do): the first convolution measures R-G, G-B and R, a
ReLU "trapezoid" per measure passes only skin-like values, their sum less 2 (an AND of the three)
is a skin map that stride-2 averaging convolutions carry down to /8, /16 and /32, the heads turn
the local skin fraction into cls/obj logits (scores around 0.9 on faces, near 0 on gray), box
sizes near a face's and landmarks from a face template (ArcFace order: the image's left eye
first). Random channels ride along and nudge every output, so neighbouring priors differ.

Like a trained network it is unkind to converters: every convolution is followed by an unfolded
BatchNormalization whose statistics look trained (moving means and variances off zero/one, some
channels with variance 1e-4..1e-3 whose filters were scaled down and whose BN scales them back up
~30-100x) and whose affine part carries the designed offsets, so the BN cannot be dropped; one
channel carries the raw B+G+R sum (0..765) all the way to the heads.
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
WIDTH = 16  # channels of every feature map
BN_EPS = 1e-5

# Landmarks around the box centre in box widths (x) and heights (y), ArcFace order: the eye on the
# image's left, the one on its right, nose, mouth corner on the image's left, on its right.
_TEMPLATE = np.array([[-0.17, -0.10], [0.17, -0.10], [0.0, 0.05], [-0.13, 0.22], [0.13, 0.22]], np.float32)
# log of the box side in cells of each stride: ~ 56, 88 and 128 px boxes
_LOG_SIDE = {8: np.log(7.0), 16: np.log(5.5), 32: np.log(4.0)}
# Head logits: cls = gain * (skin - cut), obj likewise with its own cut; per stride.
_CLS = {8: (14.0, 0.52), 16: (13.0, 0.50), 32: (12.0, 0.45)}
_OBJ = {8: (11.0, 0.45), 16: (10.0, 0.42), 32: (10.0, 0.38)}


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
        k = weight.shape[-1]
        y = self.node("Conv", [x, self.const("conv_w", weight.astype(np.float32))], "conv",
                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        params = [self.const(n, v.astype(np.float32)) for n, v in
                  (("bn_gamma", gamma), ("bn_beta", beta), ("bn_mean", mean), ("bn_var", variance))]
        y = self.node("BatchNormalization", [y, *params], "bn", epsilon=BN_EPS)
        return self.node("Relu", [y], "relu")


def _spread(kernel: np.ndarray) -> np.ndarray:
    """A 3x3 averaging footprint for a per-pixel linear map (cout x cin → cout x cin x 3 x 3)."""
    return kernel[:, :, None, None] * np.full((3, 3), 1.0 / 9.0)


def _random_rows(r: np.random.Generator, rows: int, cin: int, std: float) -> np.ndarray:
    return r.normal(0.0, std, (rows, cin, 3, 3))


def yunet_like(seed: int = 0):
    """The stand-in graph as an ``onnx.ModelProto``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = _Graph(seed)
    designed_1 = 11
    # -- layer 1 (/2): per pixel R-G, G-B and R (BGR input), each at the corners of a trapezoid,
    # and the B+G+R sum
    b, gr, rd = np.eye(3)
    measures = [(rd - gr, (10, 20, 45, 60)), (gr - b, (5, 15, 35, 48))]
    rows, shifts = [], []
    for vector, corners in measures:
        for corner in corners:
            rows.append(vector)
            shifts.append(-corner)
    rows += [rd, rd, b + gr + rd]
    shifts += [-130, -170, 0]
    kernel = _spread(np.array(rows))
    extra = WIDTH - designed_1
    kernel = np.concatenate([kernel, _random_rows(g.rng("l1"), extra, 3, np.sqrt(2.0 / 27))])
    scale = np.concatenate([np.ones(designed_1), np.full(extra, 0.02)])
    shift = np.concatenate([shifts, g.rng("l1/shift").normal(0.0, 0.5, extra)])
    x = g.conv_bn_relu(INPUT_NAME, kernel, 2, scale, shift, "l1")

    # -- layer 2 (/4): channel 0 the skin map, channel 1 the B+G+R sum
    skin = np.zeros(WIDTH)
    skin[0:4] = np.array([1, -1, -1, 1]) / 10.0  # trapezoid of R-G: plateau 10 wide → 1
    skin[4:8] = np.array([1, -1, -1, 1]) / 10.0  # of G-B
    skin[8:10] = np.array([1, -1]) / 40.0  # of R: 130..170 → 0..1
    bright = np.zeros(WIDTH)
    bright[10] = 1.0
    r = g.rng("l2")
    mix = np.concatenate([np.zeros((WIDTH - 2, designed_1)), r.normal(0.0, 0.3, (WIDTH - 2, extra))], axis=1)
    kernel = _spread(np.vstack([skin, bright, mix]))
    scale = np.ones(WIDTH)
    shift = np.concatenate([[-2.0, 0.0], r.normal(0.0, 0.2, WIDTH - 2)])
    x = g.conv_bn_relu(x, kernel, 2, scale, shift, "l2")

    # -- layers 3..5 (/8, /16, /32): channels 0 and 1 averaged, the rest mixed at random
    features = {}
    for stride in (8, 16, 32):
        r = g.rng(f"down{stride}")
        keep = np.zeros((2, WIDTH, 3, 3))
        keep[0, 0], keep[1, 1] = 1.0 / 9.0, 1.0 / 9.0
        kernel = np.concatenate([keep, _random_rows(r, WIDTH - 2, WIDTH, 0.15)])
        kernel[2:, :2] = 0.0  # the random channels stay off the 0..765 sum
        shift = np.concatenate([[0.0, 0.0], r.normal(0.0, 0.1, WIDTH - 2)])
        x = g.conv_bn_relu(x, kernel, 2, np.ones(WIDTH), shift, f"down{stride}")
        features[stride] = x

    # -- heads: 1x1 convs with bias, Sigmoid on cls/obj, NCHW → [1, H*W, C]
    for stride, feature in features.items():
        r = g.rng(f"head{stride}")
        side = _LOG_SIDE[stride]
        box_cells = float(np.exp(side))
        heads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (gain, cut) in (("cls", _CLS[stride]), ("obj", _OBJ[stride])):
            w = np.zeros((1, WIDTH))
            w[0, 0] = gain
            w[0, 1] = 4e-4 if name == "obj" else 0.0  # brighter skin is a bit more certain
            w[0, 2:] = r.normal(0.0, 0.08, WIDTH - 2)
            heads[name] = (w, np.array([-gain * cut - (0.25 if name == "obj" else 0.0)]))
        w = np.zeros((4, WIDTH))
        w[:, 2:] = r.normal(0.0, 0.05, (4, WIDTH - 2))
        w[2:, 0] = 0.4  # more skin, a larger box
        heads["bbox"] = (w, np.array([0.0, 0.0, side - 0.2, side - 0.1]))
        w = np.zeros((10, WIDTH))
        w[:, 2:] = r.normal(0.0, 0.03, (10, WIDTH - 2))
        heads["kps"] = (w, (_TEMPLATE * box_cells).reshape(-1).astype(np.float64))
        for name, (w, bias) in heads.items():
            y = g.node("Conv", [feature, g.const(f"{name}{stride}_w", w[:, :, None, None].astype(np.float32)),
                                g.const(f"{name}{stride}_b", bias.astype(np.float32))], f"{name}{stride}",
                       kernel_shape=[1, 1])
            if name in ("cls", "obj"):
                y = g.node("Sigmoid", [y], "sigmoid")
            y = g.node("Transpose", [y], "transpose", perm=[0, 2, 3, 1])
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


def write_yunet_standin(path: Path, seed: int = 0) -> Path:
    """Write the stand-in to ``path`` whole or not at all (a temporary name beside it, then a rename)."""
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as temporary:
        temporary.write_bytes(yunet_like(seed).SerializeToString())
    return path


__all__ = ["INPUT_NAME", "INPUT_SHAPE", "OUTPUT_NAMES", "STRIDES", "write_yunet_standin", "yunet_like"]
