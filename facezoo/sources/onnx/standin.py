"""Stand-in ONNX face models: graphs facezoo writes itself, with the traps real exports have.

``write_standin(spec, folder, seed=...)`` writes the file ``spec.conversion.model`` names: for
``architecture: mobilefacenet-sface`` (OpenCV Zoo SFace) a MobileFaceNet-style network, input
``data`` 1x3x112x112 RGB 0..255 (no scaling, as OpenCV feeds it), 128-d output ``fc1``, exported at a
fixed batch of 1 with that batch in a Reshape constant, BatchNormalization left unfolded, PReLU as
the ``PRelu`` op in some places and decomposed into Relu/Abs/Sub/Mul in others, depthwise and
grouped convolutions. :func:`exported_nhwc` is a second recipe, a user's export from another
toolchain: an NHWC input with a Transpose, a fixed batch of 2 reached through a
Shape → Gather → Concat → Reshape chain, Pad, MaxPool, AveragePool, a squeeze-excite block with
Sigmoid, Concat, Clip, MatMul + Add, Div by a constant, initializers listed as graph inputs, at
any opset from 9 to 17.

Weights: He-normal convolutions seeded by (seed, tensor name); BatchNorm statistics calibrated
on synthetic faces through ONNX Runtime, one BN at a time, then moved off as a trained network's
are (:mod:`facezoo.sources.standin_statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo import faces, preprocessing
from facezoo.errors import FacezooError
from facezoo.registry import ModelSpec
from facezoo.sources.standin_statistics import TRAINED, TrainedStatistics, parameter_rng

WRITER_VERSION = "3"  # 2: the YuNet recipe; 3: the SCRFD recipe
CALIBRATION_FACES = 16
#: The architectures this writer makes stand-ins for, with their module:function(seed) -> ModelProto.
RECIPES = {
    "mobilefacenet-sface": "facezoo.sources.onnx.standin:sface_like",
    "yunet": "facezoo.sources.onnx.yunet_standin:yunet_like",
    "scrfd": "facezoo.sources.onnx.scrfd_standin:scrfd_like",
}


@dataclass
class GraphWriter:
    """Builds an ONNX graph node by node, with the op encodings of the chosen opset."""

    opset: int
    seed: int = 0
    nodes: list = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    batchnorms: list[tuple[str, str]] = field(default_factory=list)  # (BN node input, BN name)
    producers: dict[str, str] = field(default_factory=dict)  # conv/gemm output -> its weight name
    counter: int = 0

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers[name] = np.array(value, order="C")  # not ascontiguousarray: it makes scalars 1-D
        return name

    def node(self, op: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs) -> str | list[str]:
        from onnx import helper

        base = self.name(hint or op.lower())
        names = [base] if outputs == 1 else [f"{base}:{k}" for k in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=base, **attrs))
        return names[0] if outputs == 1 else names

    # -- layers -------------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, pad: int | None = None,
             group: int = 1, bias: bool = False) -> str:
        pad = kernel // 2 if pad is None else pad
        fan_in = cin // group * kernel * kernel
        weight = self.const("conv_w", parameter_rng(self.seed, f"conv{self.counter}").standard_normal(
            (cout, cin // group, kernel, kernel)).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in)))
        inputs = [x, weight]
        if bias:
            inputs.append(self.const("conv_b", parameter_rng(self.seed, f"bias{self.counter}").normal(0, 0.01, cout).astype(np.float32)))
        out = self.node("Conv", inputs, "conv", kernel_shape=[kernel, kernel], strides=[stride, stride],
                        pads=[pad] * 4, group=group)
        self.producers[out] = weight
        return out

    def bn(self, x: str, channels: int, gamma: tuple[float, float] = (0.6, 1.4)) -> str:
        r = parameter_rng(self.seed, f"bn{self.counter}")
        params = [
            self.const("bn_gamma", r.uniform(*gamma, channels).astype(np.float32)),
            self.const("bn_beta", r.normal(0, 0.1, channels).astype(np.float32)),
            self.const("bn_mean", np.zeros(channels, np.float32)),
            self.const("bn_var", np.ones(channels, np.float32)),
        ]
        out = self.node("BatchNormalization", [x, *params], "bn", epsilon=1e-5)
        self.batchnorms.append((x, out))
        return out

    def prelu(self, x: str, channels: int, decomposed: bool = False) -> str:
        slope = parameter_rng(self.seed, f"prelu{self.counter}").uniform(0.0, 1.0, channels).astype(np.float32)
        shaped = slope.reshape(-1, 1, 1)
        if not decomposed:
            return self.node("PRelu", [x, self.const("prelu_slope", shaped)], "prelu")
        # relu(x) + slope * (x - |x|) / 2: what some exporters write for PReLU
        positive = self.node("Relu", [x], "relu")
        negative = self.node("Sub", [x, self.node("Abs", [x], "abs")], "sub")
        scaled = self.node("Mul", [negative, self.const("prelu_half_slope", 0.5 * shaped)], "mul")
        return self.node("Add", [positive, scaled], "add")

    def clip(self, x: str, low: float, high: float) -> str:
        if self.opset < 11:
            return self.node("Clip", [x], "clip", min=low, max=high)
        return self.node("Clip", [x, self.const("clip_min", np.array(low, np.float32)),
                                  self.const("clip_max", np.array(high, np.float32))], "clip")

    def pad(self, x: str, pads: list[int]) -> str:
        if self.opset < 11:
            return self.node("Pad", [x], "pad", pads=pads, mode="constant", value=0.0)
        return self.node("Pad", [x, self.const("pads", np.array(pads, np.int64))], "pad", mode="constant")

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset < 13:
            return self.node("Unsqueeze", [x], "unsqueeze", axes=axes)
        return self.node("Unsqueeze", [x, self.const("axes", np.array(axes, np.int64))], "unsqueeze")

    def conv_bn(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, group: int = 1,
                act: str | None = "prelu", gamma: tuple[float, float] = (0.6, 1.4), pad: int | None = None) -> str:
        y = self.bn(self.conv(x, cin, cout, kernel, stride, pad=pad, group=group), cout, gamma)
        if act == "prelu":
            return self.prelu(y, cout)
        if act == "prelu-decomposed":
            return self.prelu(y, cout, decomposed=True)
        if act == "relu6":
            return self.clip(y, 0.0, 6.0)
        return y

    def depthwise_block(self, x: str, cin: int, cout: int, stride: int, residual: bool, act: str) -> str:
        hidden = 2 * cin
        y = self.conv_bn(x, cin, hidden, 1, act=act)
        y = self.conv_bn(y, hidden, hidden, 3, stride, group=hidden, act=act)
        y = self.conv_bn(y, hidden, cout, 1, act=None, gamma=(0.1, 0.3) if residual else (0.6, 1.4))
        return self.node("Add", [x, y], "add") if residual else y

    def squeeze_excite(self, x: str, channels: int) -> str:
        pooled = self.node("GlobalAveragePool", [x], "gap")
        squeezed = self.node("Relu", [self.conv(pooled, channels, channels // 4, 1, pad=0, bias=True)], "relu")
        gate = self.node("Sigmoid", [self.conv(squeezed, channels // 4, channels, 1, pad=0, bias=True)], "sigmoid")
        return self.node("Mul", [x, gate], "mul")

    def dense(self, x: str, cin: int, cout: int, gemm: bool = True) -> str:
        weight = parameter_rng(self.seed, f"dense{self.counter}").standard_normal((cout, cin)).astype(np.float32)
        weight *= np.float32(np.sqrt(1.0 / cin))
        bias = self.const("fc_b", np.zeros(cout, np.float32))
        if gemm:
            w = self.const("fc_w", weight)
            out = self.node("Gemm", [x, w, bias], "gemm", transB=1)
        else:
            w = self.const("fc_w", weight.T.copy())
            out = self.node("Add", [self.node("MatMul", [x, w], "matmul"), bias], "add")
        self.producers[out] = w
        return out

    # -- the file -------------------------------------------------------------------------------
    def model(self, input_name: str, input_shape: list[int], output: str, output_name: str, output_shape: list[int],
              initializers_as_inputs: bool = False):
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        nodes = [_renamed(n, output, output_name) for n in self.nodes]
        inits = [numpy_helper.from_array(v, k) for k, v in self.initializers.items()]
        inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)]
        if initializers_as_inputs:
            inputs += [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                       for k, v in self.initializers.items()]
        graph = helper.make_graph(nodes, "facezoo-standin", inputs,
                                  [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="facezoo-standin")
        model.ir_version = min(model.ir_version, 8 if self.opset >= 15 else 7)
        onnx.checker.check_model(model)
        return model


def _renamed(node, old: str, new: str):
    import copy

    node = copy.deepcopy(node)
    node.output[:] = [new if o == old else o for o in node.output]
    node.input[:] = [new if i == old else i for i in node.input]
    return node


def calibrate(model, writer: GraphWriter, feeds: list[dict[str, np.ndarray]], statistics: TrainedStatistics | None,
              output_renames: dict[str, str]) -> None:
    """Set each BatchNorm's statistics from its input over ``feeds``, one BN at a time, in ONNX Runtime."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    by_name = {init.name: init for init in model.graph.initializer}
    consumers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    for source, bn_out in writer.batchnorms:
        source = output_renames.get(source, source)
        bn = next(n for n in model.graph.node if n.output[0] == output_renames.get(bn_out, bn_out))
        probe = helper.make_tensor_value_info(source, 1, None)  # a probe output: ONNX Runtime needs no shape
        model.graph.output.append(probe)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # initializers listed as inputs are the point of some stand-ins
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        x = np.concatenate([session.run([source], feed)[0] for feed in feeds])
        model.graph.output.pop()
        axes = (0,) + tuple(range(2, x.ndim))
        weight_name = writer.producers.get(source)
        if statistics is not None and weight_name and consumers.get(source) == 1:
            r = parameter_rng(writer.seed, f"{bn.name}/quiet")
            channels = x.shape[1]
            count = max(1, int(round(statistics.quiet_fraction * channels)))
            scale = np.ones(channels, np.float32)
            low, high = np.log10(statistics.quiet_scale[0]), np.log10(statistics.quiet_scale[1])
            scale[r.choice(channels, count, replace=False)] = 10.0 ** r.uniform(low, high, count)
            weight = numpy_helper.to_array(by_name[weight_name])
            shape = (-1,) + (1,) * (weight.ndim - 1) if weight.shape[0] == channels else (1, -1)
            by_name[weight_name].CopyFrom(numpy_helper.from_array((weight * scale.reshape(shape)).astype(np.float32),
                                                                  weight_name))
            x = x * scale.reshape((1, -1) + (1,) * (x.ndim - 2))
        mean = x.mean(axis=axes, dtype=np.float64)
        var = x.var(axis=axes, dtype=np.float64)
        if statistics is not None:
            r = parameter_rng(writer.seed, f"{bn.name}/trained")
            mean = mean + r.normal(0.0, statistics.mean_shift, mean.shape) * np.sqrt(var)
            var = var * np.exp(r.normal(0.0, statistics.variance_spread, var.shape))
        for name, value in ((bn.input[3], mean), (bn.input[4], var)):
            by_name[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))


def _calibration_feeds(input_name: str, layout: str, batch: int, channel_order: str,
                       mean: float, std: float) -> list[dict[str, np.ndarray]]:
    """Synthetic faces in the original's preprocessing, in batches of the file's fixed batch."""
    ids = np.arange(CALIBRATION_FACES) + 9000
    x = preprocessing.to_model_input(faces.face_batch(ids, ids % 3), channel_order)
    x = (x - np.float32(mean)) / np.float32(std)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return [{input_name: np.ascontiguousarray(x[i : i + batch], np.float32)} for i in range(0, len(x), batch)]


def sface_like(seed: int = 0, statistics: TrainedStatistics | None = TRAINED, opset: int = 11):
    """A MobileFaceNet-style 128-d embedder in the shape of OpenCV Zoo's SFace (batch fixed at 1)."""
    w = GraphWriter(opset=opset, seed=seed)
    x = w.conv_bn("data", 3, 32, 3, 2)  # 56
    x = w.conv_bn(x, 32, 32, 3, group=32, act="prelu-decomposed")
    x = w.depthwise_block(x, 32, 48, 2, residual=False, act="prelu")  # 28
    x = w.depthwise_block(x, 48, 48, 1, residual=True, act="prelu-decomposed")
    x = w.depthwise_block(x, 48, 64, 2, residual=False, act="prelu")  # 14
    x = w.depthwise_block(x, 64, 64, 1, residual=True, act="prelu-decomposed")
    x = w.conv_bn(x, 64, 128, 1, group=4)  # grouped 1x1
    x = w.conv_bn(x, 128, 128, 14, group=128, act=None, pad=0)  # global depthwise conv: 1x1
    x = w.node("Reshape", [x, w.const("flatten_shape", np.array([1, 128], np.int64))], "reshape")
    x = w.dense(x, 128, 128)
    x = w.bn(x, 128)
    model = w.model("data", [1, 3, 112, 112], x, "fc1", [1, 128])
    calibrate(model, w, _calibration_feeds("data", "NCHW", 1, "RGB", 0.0, 1.0), statistics, {x: "fc1"})
    return model


def exported_nhwc(seed: int = 0, statistics: TrainedStatistics | None = TRAINED, opset: int = 11, batch: int = 2,
                  input_name: str = "input_1", channel_order: str = "BGR", mean: float = 127.5, std: float = 128.0):
    """A user's export from another toolchain: NHWC input, fixed batch, every messy op on the list."""
    w = GraphWriter(opset=opset, seed=seed)
    x = w.node("Transpose", [input_name], "to_nchw", perm=[0, 3, 1, 2])
    x = w.conv_bn(w.pad(x, [0, 0, 1, 1, 0, 0, 1, 1]), 3, 32, 3, 2, pad=0)  # explicit Pad, then VALID conv
    x = w.node("MaxPool", [x], "maxpool", kernel_shape=[2, 2], strides=[2, 2])  # 28
    left = w.conv_bn(x, 32, 32, 3, group=32, act="relu6")
    right = w.conv_bn(x, 32, 32, 1, act="prelu-decomposed")
    x = w.node("Concat", [left, right], "concat", axis=1)  # 64
    x = w.conv_bn(x, 64, 64, 3, 2, group=8)  # 14
    x = w.squeeze_excite(x, 64)
    x = w.node("AveragePool", [x], "avgpool", kernel_shape=[2, 2], strides=[2, 2])  # 7
    x = w.conv_bn(x, 64, 96, 1)
    # the batch through a Shape -> Gather -> Concat chain, as tracing exporters write x.view(x.size(0), -1)
    shape = w.node("Shape", [x], "shape")
    first = w.node("Gather", [shape, w.const("zero", np.array(0, np.int64))], "gather", axis=0)
    target = w.node("Concat", [w.unsqueeze(first, [0]), w.const("minus_one", np.array([-1], np.int64))], "concat", axis=0)
    x = w.node("Reshape", [x, target], "reshape")
    x = w.dense(x, 96 * 7 * 7, 256, gemm=False)
    x = w.node("Div", [x, w.const("two", np.array(2.0, np.float32))], "div")
    x = w.bn(x, 256)
    model = w.model(input_name, [batch, 112, 112, 3], x, "embedding", [batch, 256], initializers_as_inputs=True)
    calibrate(model, w, _calibration_feeds(input_name, "NHWC", batch, channel_order, mean, std), statistics,
              {x: "embedding"})
    return model


def write_standin(spec: ModelSpec, folder: Path, *, seed: int = 0) -> list[Path]:
    """Write the stand-in ONNX file of an ONNX registry entry (of one graph, or of one net) into ``folder``."""
    import importlib

    import onnx

    models = [part.model for part in spec.parts] or [spec.conversion.model]
    if spec.framework != "onnx" or not all(models):
        raise FacezooError(f"model {spec.name!r} is not an ONNX model")
    if spec.architecture not in RECIPES:
        raise FacezooError(
            f"no ONNX stand-in for architecture {spec.architecture!r} of {spec.name!r} (recipes: {', '.join(RECIPES)})"
        )
    if len(models) != 1 or "/" in models[0]:
        raise FacezooError(f"model {spec.name!r}: the ONNX stand-in writer writes one plain file, not archive members")
    module, _, function = RECIPES[spec.architecture].partition(":")
    model = getattr(importlib.import_module(module), function)(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / models[0]
    partial = folder / f".{path.name}.partial"
    onnx.save_model(model, str(partial))
    partial.replace(path)
    return [path]


__all__ = ["GraphWriter", "RECIPES", "WRITER_VERSION", "calibrate", "exported_nhwc", "sface_like", "write_standin"]
