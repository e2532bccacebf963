"""ONNX -> MindSpore importer: every supported operator against ONNX Runtime, real graphs, MINDIR."""

from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mindspore import nn
from onnx import TensorProto, helper, numpy_helper

from facezoo.converters import onnx_graph
from facezoo.converters.mindir import (
    SUPPORTED_OPS,
    export_mindir,
    onnx_to_mindspore,
)
from facezoo.errors import ConversionError

TINY = Path(__file__).resolve().parent / "data" / "reference" / "mxnet" / "tiny-r34"
RNG = np.random.default_rng(1234)


def _cos(a, b):
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _model(nodes, inputs, outputs, inits=None, opset=17):
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _ort(model, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _ms(cell, arrays):
    out = cell(*[ms.Tensor(a) for a in arrays])
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.asnumpy() for o in outs]


def check(model, *arrays, rtol=1e-5, atol=1e-5, precision="FP32"):
    """The imported cell gives what ONNX Runtime gives; returns the cell."""
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    expected = _ort(model, dict(zip(names, arrays)))
    cell = onnx_to_mindspore(model, precision=precision)
    got = _ms(cell, arrays)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape, cell.source
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=cell.source)
    return cell


def x4(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


# --------------------------------------------------------------------- operators one by one ----
def test_conv_variants():
    w = x4(6, 2, 3, 3)
    w1 = x4(4, 6, 1, 1)
    b = x4(6)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], group=2, pads=[1, 0, 2, 1], strides=[2, 1], dilations=[1, 2]),
        helper.make_node("Conv", ["c1", "w1"], ["c2"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Conv", ["x", "dw"], ["c3"], group=4, pads=[1, 1, 1, 1]),
    ]
    model = _model(nodes, [("x", ["N", 4, 11, 9])], ["c2", "c3"], {"w": w, "b": b, "w1": w1, "dw": x4(4, 1, 3, 3)})
    check(model, x4(2, 4, 11, 9), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [9, 11, 18])
def test_pad_modes_and_encodings(opset):
    """Pad: attributes up to opset 10, constant inputs from 11, an axes input from 18."""
    if opset < 11:
        nodes = [helper.make_node("Pad", ["x"], ["c"], mode="constant", pads=[0, 0, 1, 2, 0, 1, 0, 3], value=0.5),
                 helper.make_node("Pad", ["x"], ["r"], mode="reflect", pads=[0, 0, 2, 1, 0, 0, 1, 2]),
                 helper.make_node("Pad", ["x"], ["e"], mode="edge", pads=[0, 1, 1, 1, 0, 0, 1, 1])]
        inits = {}
    elif opset < 18:
        nodes = [helper.make_node("Pad", ["x", "p1", "v"], ["c"], mode="constant"),
                 helper.make_node("Pad", ["x", "p2"], ["r"], mode="reflect"),
                 helper.make_node("Pad", ["x", "p3"], ["e"], mode="edge")]
        inits = {"p1": np.array([0, 0, 1, 2, 0, 1, 0, 3], np.int64), "v": np.array(0.5, np.float32),
                 "p2": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64), "p3": np.array([0, 1, 1, 1, 0, 0, 1, 1], np.int64)}
    else:
        nodes = [helper.make_node("Pad", ["x", "p1", "v", "axes"], ["c"], mode="constant"),
                 helper.make_node("Pad", ["x", "p2", "", "axes"], ["r"], mode="reflect"),
                 helper.make_node("Pad", ["x", "p3", "", "axes"], ["e"], mode="edge")]
        inits = {"p1": np.array([1, 2, 0, 3], np.int64), "v": np.array(0.5, np.float32), "axes": np.array([2, 3], np.int64),
                 "p2": np.array([2, 1, 1, 2], np.int64), "p3": np.array([1, 1, 1, 1], np.int64)}
    model = _model(nodes, [("x", ["N", 3, 5, 6])], ["c", "r", "e"], inits, opset=opset)
    check(model, x4(2, 3, 5, 6))


def test_batchnorm_prelu_activations():
    c = 5
    inits = {
        "g": RNG.uniform(0.5, 1.5, c).astype(np.float32),
        "be": x4(c),
        "m": x4(c),
        "v": RNG.uniform(0.2, 2.0, c).astype(np.float32),
        "slope": RNG.uniform(0.0, 0.5, (c, 1, 1)).astype(np.float32),
        "slope_w": RNG.uniform(0.0, 0.5, (6,)).astype(np.float32),  # broadcasts along the last axis
        "one": np.array([0.3], np.float32),
    }
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "be", "m", "v"], ["bn"], epsilon=2e-5),
        helper.make_node("PRelu", ["bn", "slope"], ["p1"]),
        helper.make_node("PRelu", ["bn", "slope_w"], ["p2"]),
        helper.make_node("PRelu", ["bn", "one"], ["p3"]),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.1),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Sigmoid", ["bn"], ["s"]),
        helper.make_node("Tanh", ["bn"], ["t"]),
        helper.make_node("Abs", ["bn"], ["a"]),
        helper.make_node("Neg", ["a"], ["ng"]),
        helper.make_node("Exp", ["ng"], ["e"]),
        helper.make_node("Sqrt", ["e"], ["sq"]),
        helper.make_node("Log", ["sq"], ["lg"]),
    ]
    model = _model(nodes, [("x", ["N", c, 4, 6])], ["p1", "p2", "p3", "lr", "r", "s", "t", "lg"], inits)
    check(model, x4(3, c, 4, 6, lo=-3, hi=3))


def test_arithmetic_and_variadic():
    inits = {
        "k": np.array(127.5, np.float32),
        "k1": np.array([0.0078125], np.float32),
        "mean": x4(1, 3, 1, 1),
        "four": np.full((1, 1, 1, 1), 4.0, np.float32),  # raises the rank of a rank-2 operand
    }
    nodes = [
        helper.make_node("Sub", ["x", "k"], ["a"]),
        helper.make_node("Mul", ["a", "k1"], ["b"]),
        helper.make_node("Sub", ["k", "b"], ["c"]),
        helper.make_node("Div", ["c", "k"], ["d"]),
        helper.make_node("Div", ["k1", "x"], ["e"]),
        helper.make_node("Add", ["d", "mean"], ["f"]),
        helper.make_node("Max", ["f", "b", "d"], ["mx"]),
        helper.make_node("Min", ["f", "b"], ["mn"]),
        helper.make_node("Sum", ["mx", "mn", "f"], ["sm"]),
        helper.make_node("Clip", ["sm", "lo", "hi"], ["cl"]),
        helper.make_node("Mul", ["y", "four"], ["r4"]),
        helper.make_node("Add", ["x", "x"], ["xx"]),
    ]
    inits["lo"] = np.array(-1.0, np.float32)
    inits["hi"] = np.array(2.5, np.float32)
    model = _model(nodes, [("x", ["N", 3, 2, 2]), ("y", ["N", 5])], ["e", "cl", "r4", "xx"], inits)
    check(model, x4(2, 3, 2, 2, lo=1, hi=255), x4(2, 5), rtol=1e-5, atol=1e-4)


def test_clip_opset_11_attributes_and_one_sided():
    nodes = [helper.make_node("Clip", ["x", "", "hi"], ["y"])]
    model = _model(nodes, [("x", ["N", 7])], ["y"], {"hi": np.array(0.25, np.float32)}, opset=11)
    check(model, x4(2, 7))


def test_gemm_matmul_flatten_reshape():
    inits = {
        "w": x4(10, 24),
        "bias": x4(10),
        "wt": x4(24, 6),
        "c": x4(1, 6),
        "m": x4(6, 4),
        "shape": np.array([0, -1], np.int64),
        "shape2": np.array([-1, 2, 3], np.int64),
    }
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),  # N x 24, batch copied
        helper.make_node("Gemm", ["flat", "w", "bias"], ["g1"], transB=1),
        helper.make_node("Gemm", ["flat", "wt", "c"], ["g2"], alpha=0.5, beta=2.0),
        helper.make_node("Gemm", ["w", "flat"], ["g3"], transB=1),  # constant A, runtime B
        helper.make_node("MatMul", ["g2", "m"], ["mm"]),
        helper.make_node("Flatten", ["x"], ["f1"], axis=2),
        helper.make_node("Reshape", ["g2", "shape2"], ["r2"]),
        helper.make_node("Gemm", ["g2", "g2"], ["g4"], transA=1),
    ]
    model = _model(nodes, [("x", ["N", 2, 3, 4])], ["g1", "g3", "mm", "f1", "r2", "g4"], inits)
    check(model, x4(3, 2, 3, 4), rtol=1e-5, atol=1e-5)


def test_shape_ops():
    inits = {
        "axes": np.array([1, -1], np.int64),
        "sq": np.array([1], np.int64),
        "idx": np.array([2, 1, 0], np.int64),
        "neg": np.array([-1, 0], np.int64),
        "split": np.array([1, 2], np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["x", "idx"], ["bgr"], axis=1),
        helper.make_node("Gather", ["x", "neg"], ["g2"], axis=1),
        helper.make_node("Gather", ["x", "one"], ["g3"], axis=3),  # scalar index drops the axis
        helper.make_node("Transpose", ["bgr"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Unsqueeze", ["g3", "axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "sq"], ["s"]),
        helper.make_node("Concat", ["bgr", "g2", "x"], ["cat"], axis=-3),
        helper.make_node("Split", ["cat", "split"], ["p1", "p2"], axis=2),
        helper.make_node("Split", ["cat"], ["q1", "q2", "q3", "q4"], axis=1),
        helper.make_node("Identity", ["q2"], ["id"]),
        helper.make_node("Dropout", ["id"], ["dr"]),
        helper.make_node("Cast", ["dr"], ["cs"], to=TensorProto.FLOAT),
    ]
    inits["one"] = np.array(1, np.int64)
    model = _model(nodes, [("x", ["N", 3, 3, 4])], ["t", "s", "p1", "p2", "q4", "cs"], inits)
    check(model, x4(2, 3, 3, 4))


def test_old_opset_attributes_and_constant_folding():
    slope = RNG.uniform(0, 0.5, 4).astype(np.float32)
    nodes = [
        # MindSpore's exporter: the PReLU slope is an Unsqueeze of a 1-D initializer (folded)
        helper.make_node("Unsqueeze", ["w"], ["w3"], axes=[1, 2]),
        helper.make_node("PRelu", ["x", "w3"], ["p"]),
        helper.make_node("Split", ["p"], ["a", "b"], axis=1, split=[2, 2]),
        helper.make_node("Max", ["a", "b"], ["mfm"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, -1], np.int64))),
        helper.make_node("Reshape", ["mfm", "shape"], ["r"]),
        helper.make_node("Softmax", ["r"], ["sm"]),  # opset 11: coerced to 2-D from axis 1
        helper.make_node("Squeeze", ["sm"], ["sq"], axes=[0]),
        helper.make_node("Shape", ["w3"], ["ws"]),
        helper.make_node("Cast", ["ws"], ["wsf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["sq", "wsf_first"], ["out"]),
        helper.make_node("Constant", [], ["wsf_first"], value_float=2.0),
    ]
    nodes = nodes[:-2] + [nodes[-1], nodes[-2]]
    model = _model(nodes, [("x", [1, 4, 3, 3])], ["out", "wsf"], {"w": slope}, opset=11)
    cell = check(model, x4(1, 4, 3, 3))
    names = sorted(p.name for p in cell.get_parameters())
    # the folded Unsqueeze keeps the initializer's name; the constant output is returned as is
    assert names == ["w", "wsf"], names


def test_softmax_opset13_and_reductions():
    nodes = [
        helper.make_node("Softmax", ["x"], ["s1"], axis=1),
        helper.make_node("ReduceMean", ["x"], ["rm"], axes=[2, 3], keepdims=0),
        helper.make_node("ReduceSum", ["x", "ax"], ["rs"], keepdims=1),
        helper.make_node("ReduceSumSquare", ["x"], ["rss"], axes=[1]),
        helper.make_node("ReduceMax", ["x"], ["rmax"], axes=[-1], keepdims=0),
        helper.make_node("ReduceMin", ["x"], ["rmin"], axes=[1, 2]),
    ]
    model = _model(nodes, [("x", ["N", 3, 4, 5])], ["s1", "rm", "rs", "rss", "rmax", "rmin"],
                   {"ax": np.array([1], np.int64)}, opset=13)
    check(model, x4(2, 3, 4, 5))


@pytest.mark.parametrize("ceil", [0, 1])
def test_pooling(ceil):
    nodes = [
        helper.make_node("MaxPool", ["x"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1],
                         ceil_mode=ceil),
        helper.make_node("MaxPool", ["x"], ["mp2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["x"], ["ap0"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 1, 0],
                         ceil_mode=ceil, count_include_pad=0),
        helper.make_node("AveragePool", ["x"], ["ap1"], kernel_shape=[3, 3], strides=[2, 3], pads=[1, 1, 1, 1],
                         ceil_mode=ceil, count_include_pad=1),
        helper.make_node("MaxPool", ["x"], ["same"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
        helper.make_node("GlobalMaxPool", ["x"], ["gmp"]),
    ]
    model = _model(nodes, [("x", ["N", 2, 10, 9])], ["mp", "mp2", "ap0", "ap1", "same", "gap", "gmp"])
    check(model, x4(2, 2, 10, 9, lo=-5, hi=-1))  # all negative: padding must never win a max


def test_dynamic_batch_mindir_of_a_mixed_graph(tmp_path):
    """Every shape-sensitive op exported with a symbolic batch: batch N == N runs of batch 1."""
    c = 4
    inits = {
        "w": x4(c, 3, 3, 3), "g": RNG.uniform(0.5, 1.5, c).astype(np.float32), "be": x4(c), "m": x4(c),
        "v": RNG.uniform(0.5, 2, c).astype(np.float32), "slope": RNG.uniform(0, 0.3, (c, 1, 1)).astype(np.float32),
        "idx": np.array([2, 1, 0], np.int64), "shape": np.array([0, -1], np.int64), "ax": np.array([1], np.int64),
        "split": np.array([2, 2], np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["x", "idx"], ["bgr"], axis=1),
        helper.make_node("Conv", ["bgr", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["bn"]),
        helper.make_node("PRelu", ["bn", "slope"], ["p"]),
        helper.make_node("MaxPool", ["p"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        helper.make_node("AveragePool", ["p"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("Split", ["mp", "split"], ["s1", "s2"], axis=1),
        helper.make_node("Max", ["s1", "s2"], ["mfm"]),
        helper.make_node("Concat", ["mfm", "ap"], ["cat"], axis=1),
        helper.make_node("Transpose", ["cat"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["sq"]),
        helper.make_node("Flatten", ["sq"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
        helper.make_node("GlobalAveragePool", ["p"], ["gap"]),
        helper.make_node("Softmax", ["y"], ["sm"]),
    ]
    inits["fc"] = x4(6, 6 * 5 * 5)  # cat: mfm 2 + avg 4 channels of 5 x 5
    model = _model(nodes, [("x", ["N", 3, 17, 17])], ["sm", "gap"], inits)
    x = x4(3, 3, 17, 17, lo=0, hi=255)
    expected = _ort(model, {"x": x})
    mindir = export_mindir(onnx_to_mindspore(model), tmp_path / "mixed.mindir")
    cell = nn.GraphCell(ms.load(str(mindir)))
    batch = [o.asnumpy() for o in cell(ms.Tensor(x))]
    singles = [[o.asnumpy() for o in cell(ms.Tensor(x[i : i + 1]))] for i in range(3)]
    for k, e in enumerate(expected):
        np.testing.assert_allclose(batch[k], e, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.concatenate([s[k] for s in singles]), batch[k], rtol=1e-5, atol=1e-6)


def test_every_supported_op_is_exercised():
    tested = {
        "Conv", "BatchNormalization", "PRelu", "LeakyRelu", "Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp",
        "Sqrt", "Log", "Sub", "Mul", "Div", "Add", "Max", "Min", "Sum", "Clip", "Reshape", "Gemm", "MatMul",
        "Flatten", "Gather", "Transpose", "Unsqueeze", "Squeeze", "Concat", "Split", "Identity", "Dropout",
        "Cast", "Constant", "Softmax", "Shape", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceMax",
        "ReduceMin", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Pad",
    }
    assert SUPPORTED_OPS == tested


# ------------------------------------------------------------------------------ errors ----
def test_first_unsupported_op_is_named():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="fine"),
        helper.make_node("Erf", ["a"], ["b"], name="the_erf"),
        helper.make_node("HardSwish", ["b"], ["c"], name="later"),
    ]
    model = _model(nodes, [("x", [1, 4])], ["c"])
    with pytest.raises(ConversionError, match=r"Erf.*the_erf"):
        onnx_to_mindspore(model)


def test_unsupported_attribute_is_named():
    nodes = [helper.make_node("Cast", ["x"], ["y"], name="to_int", to=TensorProto.INT32),
             helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT)]
    model = _model(nodes, [("x", [1, 4])], ["z"])
    with pytest.raises(ConversionError, match=r"Cast.*to_int.*INT32"):
        onnx_to_mindspore(model)
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"], name="dyn", axis=1),
             helper.make_node("Cast", ["x"], ["i"], to=TensorProto.FLOAT)]
    model = _model(nodes[::-1], [("x", [1, 4])], ["y"])
    with pytest.raises(ConversionError, match=r"Gather.*dyn"):
        onnx_to_mindspore(model)


# ---------------------------------------------------------------------- real graphs, MINDIR ----
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from facezoo.sources.mxnet.to_onnx import convert_mxnet_files

    path = tmp_path_factory.mktemp("tiny") / "tiny-r34.onnx"
    model = convert_mxnet_files(
        TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params", path,
        input_shape=(1, 3, 112, 112), output_node="fc1", output_name="pre_fc1", reverse_input_channels=True,
    )
    return model, path


def test_tiny_r34_ground_truth_through_mindir(tiny_onnx, tmp_path):
    """MXNet 1.9.1's output reproduced by the executor, the ONNX and the MINDIR (fed BGR)."""
    from facezoo.sources.mxnet.executor import MXNetModel

    model, path = tiny_onnx
    io = np.load(TINY / "tiny-r34-io.npz")
    rgb, truth = io["input_rgb"].astype(np.float32), io["output"]
    bgr = np.ascontiguousarray(rgb[:, ::-1])
    executor = MXNetModel.load(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params")
    by_executor = executor.run({"data": rgb}, ["fc1"])["fc1"]
    by_onnx = _ort(model, {"data": bgr})[0]
    cell = onnx_to_mindspore(model)
    mindir = export_mindir(cell, tmp_path / "tiny.mindir")
    graph = nn.GraphCell(ms.load(str(mindir)))
    by_mindir = graph(ms.Tensor(bgr)).asnumpy()
    singles = np.concatenate([graph(ms.Tensor(bgr[i : i + 1])).asnumpy() for i in range(len(bgr))])
    scale = np.abs(truth).max()
    for got in (by_executor, by_onnx, by_mindir):
        assert got.shape == truth.shape
        assert _cos(got, truth).min() >= 0.99999
        assert np.abs(got - truth).max() / scale < 1e-4
    assert np.abs(by_mindir - singles).max() / scale < 1e-5
    names = {p.name for p in cell.get_parameters()}
    assert {"bn0_gamma", "stage4_unit3_conv2_weight", "pre_fc1_weight", "fc1_moving_var"} <= names


def test_mindspore_exported_networks(tmp_path):
    """ONNX written by MindSpore's exporter (opset 11, Unsqueeze'd slopes, BN1d reshapes, mfm)."""
    from facezoo.sources.mindspore.networks import EmbeddingNet, build_network

    ms.set_context(mode=ms.GRAPH_MODE)
    for arch, shape, index in (("mobilefacenet", (1, 3, 112, 112), 0), ("lightcnn9", (1, 1, 128, 128), 1)):
        net = build_network(arch)
        stem = tmp_path / arch
        ms.export(EmbeddingNet(net, index), ms.Tensor(np.zeros(shape, np.float32)), file_name=str(stem),
                  file_format="ONNX")
        model = onnx.load(str(stem) + ".onnx")
        onnx_graph.rename_io(model, "data", "embedding")
        onnx_graph.make_batch_dynamic(model)
        ops = {n.op_type for n in model.graph.node}
        assert ({"Unsqueeze", "PRelu", "Reshape"} <= ops) if arch == "mobilefacenet" else ({"Split", "Max"} <= ops)
        x = RNG.uniform(-1, 1, (2, *shape[1:])).astype(np.float32)
        expected = _ort(model, {"data": x})[0]
        cell = onnx_to_mindspore(model)
        got = _ms(cell, [x])[0]
        assert _cos(got, expected).min() >= 0.99999
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
        # the MindSpore parameter names survive the round trip
        assert {p.name for p in net.get_parameters()} >= {p.name for p in cell.get_parameters()}


def _quick(path, out, precisions):
    """`facezoo convert --onnx FILE --formats mindir`: the file through the pipeline, no registry entry."""
    from facezoo.conversion import ConversionRequest, convert_model
    from facezoo.sources.onnx.adhoc import spec_for_file

    return convert_model(ConversionRequest(spec_for_file(path), path.parent, out, ["mindir"], precisions, path))


def test_an_onnx_file_converts_to_mindir_through_the_pipeline(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    out = tmp_path / "out"
    result = _quick(path, out, ["FP32", "FP16"])
    assert result.passed, result.error
    written = [out / "tiny-r34" / "FP32" / "tiny-r34.mindir", out / "tiny-r34" / "FP16" / "tiny-r34.mindir"]
    assert all(p.is_file() for p in written)
    assert sorted(p.name for p in out.iterdir()) == ["tiny-r34"]  # no scratch left behind
    # again: replaces that precision folder in place, leaves the other
    assert _quick(path, out, ["FP32"]).published == ["FP32"]
    assert sorted(p.name for p in (out / "tiny-r34").iterdir()) == ["FP16", "FP32"]
    io = np.load(TINY / "tiny-r34-io.npz")
    bgr = np.ascontiguousarray(io["input_rgb"][:, ::-1].astype(np.float32))
    fp16 = nn.GraphCell(ms.load(str(written[1])))(ms.Tensor(bgr)).asnumpy()
    assert fp16.dtype == np.float32 and _cos(fp16, io["output"]).min() >= 0.999


def _small_net(seed, batch="N"):
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        initializer=[numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
                     numpy_helper.from_array(rng.normal(size=(5, 144)).astype(np.float32), "fc")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_validation_catches_a_wrong_mindir_and_handles_static_batch(tmp_path):
    from conftest import check_artifact

    for seed in (1, 2):
        onnx.save_model(_small_net(seed), str(tmp_path / f"n{seed}.onnx"))
        export_mindir(onnx_to_mindspore(_small_net(seed)), tmp_path / f"n{seed}.mindir")
    inputs = RNG.uniform(0, 255, (3, 3, 6, 6)).astype(np.float32)
    reference = _ort(_small_net(1), {"x": inputs})[0]
    good = check_artifact(tmp_path / "n1.mindir", fmt="mindir", precision="FP32", backend_name="mindspore",
                          inputs=inputs, reference=reference)
    assert good.passed and good.metric("min_cosine") > 0.99999 and good.metric("batch_relative_diff") < 1e-5, good
    bad = check_artifact(tmp_path / "n2.mindir", fmt="mindir", precision="FP32", backend_name="mindspore",
                         inputs=inputs, reference=reference)
    assert not bad.passed and "cosine" in bad.reason
    # a model with a fixed batch of 1 imports too, and keeps its static input
    export_mindir(onnx_to_mindspore(_small_net(3, batch=1)), tmp_path / "static.mindir")
    cell = nn.GraphCell(ms.load(str(tmp_path / "static.mindir")))
    x = RNG.uniform(0, 255, (1, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(cell(ms.Tensor(x)).asnumpy(), _ort(_small_net(3, batch=1), {"x": x})[0],
                               rtol=1e-4, atol=1e-3)


def test_an_unsupported_operator_fails_the_conversion_and_leaves_nothing(tmp_path):
    model = _model([helper.make_node("Erf", ["x"], ["y"], name="e1")], [("x", ["N", 3, 8, 8])], ["y"])
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8]))
    path = tmp_path / "erf.onnx"
    onnx.save_model(model, str(path))
    result = _quick(path, tmp_path / "out", ["FP32"])
    assert not result.passed and "unsupported ONNX operator Erf (node 'e1')" in result.error
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
