"""MXNet -> ONNX conversion checked against the NumPy executor with onnxruntime and OpenVINO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from facezoo.sources.mxnet.executor import MXNetModel
from facezoo.sources.mxnet.params import load_params, save_params
from facezoo.sources.mxnet.symbol import SymbolBuilder, UnsupportedOperatorError, load_symbol, save_symbol
from facezoo.sources.mxnet.to_onnx import convert_mxnet_files, mxnet_to_onnx

REF = Path(__file__).resolve().parent / "data" / "reference" / "mxnet"
TINY = REF / "tiny-r34"


def _cos(a, b):
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _ort(model: onnx.ModelProto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny-r34.onnx"
    model = convert_mxnet_files(
        TINY / "tiny-r34-symbol.json",
        TINY / "tiny-r34-0000.params",
        path,
        input_shape=(1, 3, 112, 112),
        output_node="fc1",
        output_name="pre_fc1",
        reverse_input_channels=True,
    )
    return model, path


@pytest.fixture(scope="module")
def reference():
    z = np.load(TINY / "tiny-r34-io.npz")
    x = z["input_rgb"]
    model = MXNetModel.load(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params")
    return x, model.run({"data": x})["fc1_output"], z["output"]


def test_structure(tiny_onnx):
    model, path = tiny_onnx
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "data" and out.name == "pre_fc1"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 112, 112]
    assert out.type.tensor_type.shape.dim[0].dim_param == "N" and out.type.tensor_type.shape.dim[1].dim_value == 64
    ops = [n.op_type for n in model.graph.node]
    assert "Gather" not in ops and "Dropout" not in ops  # channel swap folded, dropout dropped
    assert ops[:3] == ["Sub", "Mul", "Conv"]
    assert ops[-3:] == ["Flatten", "Gemm", "BatchNormalization"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["reverse_input_channels"] == "folded into conv0" and meta["source_output_node"] == "fc1"
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = load_params(TINY / "tiny-r34-0000.params")
    conv0 = next(n for n in model.graph.node if n.op_type == "Conv")
    np.testing.assert_array_equal(inits[conv0.input[1]], params["arg:conv0_weight"][:, ::-1])
    prelu = next(n for n in model.graph.node if n.op_type == "PRelu")
    assert inits[prelu.input[1]].shape == (8, 1, 1)
    bn = model.graph.node[-1]
    np.testing.assert_array_equal(inits[bn.input[1]], np.ones(64, np.float32))  # fix_gamma
    assert bn.output[0] == "pre_fc1"


def test_onnxruntime_bgr_matches_executor(tiny_onnx, reference):
    model, _ = tiny_onnx
    x, want, mx = reference
    sess = _ort(model)
    bgr = np.ascontiguousarray(x[:, ::-1])
    got = sess.run(["pre_fc1"], {"data": bgr})[0]
    assert _cos(got, want).min() >= 0.99999
    assert np.abs(got - mx).max() <= 2e-5 * np.abs(mx).max()
    singles = np.concatenate([sess.run(None, {"data": bgr[i : i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got, singles, rtol=1e-5, atol=1e-5 * np.abs(got).max())


def test_openvino_bgr_matches_executor(tiny_onnx, reference):
    import openvino as ov
    _, path = tiny_onnx
    x, want, _ = reference
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    bgr = np.ascontiguousarray(x[:, ::-1])
    got = compiled(bgr)[compiled.output(0)]
    assert compiled.output(0).get_any_name() == "pre_fc1"
    assert _cos(got, want).min() >= 0.99999
    singles = np.concatenate([compiled(bgr[i : i + 1])[compiled.output(0)] for i in range(len(x))])
    np.testing.assert_allclose(got, singles, rtol=1e-5, atol=1e-5 * np.abs(got).max())


def test_rgb_conversion_and_output_spelling(reference):
    x, want, _ = reference
    model = convert_mxnet_files(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params",
                                input_shape=(1, 3, 112, 112), output_node="fc1_output")
    assert model.graph.output[0].name == "fc1"
    got = _ort(model).run(None, {"data": x})[0]
    assert _cos(got, want).min() >= 0.99999
    # an internal node as output
    pre = convert_mxnet_files(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params",
                              input_shape=(1, 3, 112, 112), output_node="pre_fc1", output_name="embedding")
    ex = MXNetModel.load(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params")
    np.testing.assert_allclose(_ort(pre).run(None, {"data": x[:1]})[0], ex.run({"data": x[:1]}, ["pre_fc1"])["pre_fc1"],
                               rtol=1e-4, atol=1e-2)


def test_full_size_r34_graph_converts():
    """The real r34 symbol with random weights of the real shapes: conversion equals the executor."""
    g = load_symbol(REF / "model-r34-amf-symbol.json")
    from conftest import r34_random_params

    rng = np.random.default_rng(0)
    params = r34_random_params(rng)
    model = mxnet_to_onnx(g, params, input_shape=(1, 3, 112, 112), output_node="fc1", output_name="pre_fc1",
                          reverse_input_channels=True)
    x = rng.uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    got = _ort(model).run(None, {"data": np.ascontiguousarray(x[:, ::-1])})[0]
    want = MXNetModel(g, {k[4:]: v for k, v in params.items()}).run({"data": x})["fc1_output"]
    assert got.shape == (1, 512) and _cos(got, want).min() >= 0.99999


# ----------------------------------------------------------------------- synthetic graphs ----
def _both(tmp_path, b: SymbolBuilder, params: dict, x: np.ndarray, **kw):
    """Save graph and params in MXNet format, convert, and run ONNX and the executor."""
    save_symbol(tmp_path / "s-symbol.json", b.graph())
    save_params(tmp_path / "s-0000.params", {("aux:" if "moving" in k else "arg:") + k: v for k, v in params.items()})
    model = convert_mxnet_files(tmp_path / "s-symbol.json", tmp_path / "s-0000.params", input_shape=x.shape, **kw)
    ex = MXNetModel.load(tmp_path / "s-symbol.json", tmp_path / "s-0000.params")
    feed = np.ascontiguousarray(x[:, ::-1]) if kw.get("reverse_input_channels") else x
    node = kw.get("output_node")
    want = ex.run({"data": x}, [node] if node else None)
    return model, _ort(model).run(None, {"data": feed})[0], next(iter(want.values()))


def test_explicit_channel_gather_when_no_conv_comes_first(tmp_path):
    rng = np.random.default_rng(1)
    b = SymbolBuilder()
    b.op("_minus_scalar", "sub", ["data"], scalar=127.5)
    b.op("Pooling", "pool", ["sub"], kernel=(2, 2), stride=(2, 2), pool_type="max")
    b.op("Convolution", "conv", ["pool", "conv_weight"], kernel=(3, 3), num_filter=4, pad=(1, 1), no_bias=True)
    p = {"conv_weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)}
    x = rng.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    model, got, want = _both(tmp_path, b, p, x, reverse_input_channels=True, output_name="out")
    assert model.graph.node[0].op_type == "Gather"
    assert {m.key: m.value for m in model.metadata_props}["reverse_input_channels"] == "gather"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_explicit_gather_for_grouped_or_shared_input(tmp_path):
    rng = np.random.default_rng(2)
    b = SymbolBuilder()
    b.op("Convolution", "dw", ["data", "dw_weight"], kernel=(3, 3), num_filter=3, num_group=3, pad=(1, 1),
         no_bias=True)
    b.op("elemwise_add", "res", ["dw", "data"])
    p = {"dw_weight": rng.standard_normal((3, 1, 3, 3)).astype(np.float32)}
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    model, got, want = _both(tmp_path, b, p, x, reverse_input_channels=True)
    assert model.graph.node[0].op_type == "Gather"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_many_ops_agree_with_executor(tmp_path):
    rng = np.random.default_rng(3)
    b = SymbolBuilder()
    b.op("_mul_scalar", "scale", ["data"], scalar=0.5)
    b.op("_plus_scalar", "shift", ["scale"], scalar=1)
    b.op("Convolution", "c1", ["shift", "c1_weight", "c1_bias"], kernel=(3, 3), num_filter=6, stride=(2, 2),
         pad=(1, 1), dilate=(1, 1))
    b.op("BatchNorm", "bn", ["c1", "bn_gamma", "bn_beta", "bn_moving_mean", "bn_moving_var"])  # eps 1e-3, fix_gamma
    b.op("LeakyReLU", "lrelu", ["bn"], act_type="leaky", slope=0.1)
    b.op("LeakyReLU", "elu", ["lrelu"], act_type="elu")
    b.op("Activation", "sig", ["elu"], act_type="sigmoid")
    b.op("broadcast_mul", "gate", ["elu", "sig"])
    b.op("SliceChannel", "split", ["gate"], num_outputs=2)
    b.op("Concat", "cat", [(b._index["split"], 1), (b._index["split"], 0)], dim=1)
    b.op("Pooling", "avg", ["cat"], kernel=(3, 3), stride=(2, 2), pool_type="avg", pooling_convention="full")
    b.op("Reshape", "r", ["avg"], shape=(0, -1))
    b.op("Dropout", "drop", ["r"], p=0.5)
    b.op("FullyConnected", "fc", ["drop", "fc_weight", "fc_bias"], num_hidden=5)
    b.op("Activation", "tanh", ["fc"], act_type="tanh")
    b.op("_minus_scalar", "m", ["tanh"], scalar=0.25)
    b.op("L2Normalization", "l2", ["m"])
    x = rng.standard_normal((3, 3, 14, 14)).astype(np.float32)
    p = {"c1_weight": rng.standard_normal((6, 3, 3, 3)).astype(np.float32),
         "c1_bias": rng.standard_normal(6).astype(np.float32),
         "bn_gamma": rng.uniform(2, 3, 6).astype(np.float32), "bn_beta": rng.standard_normal(6).astype(np.float32),
         "bn_moving_mean": rng.standard_normal(6).astype(np.float32),
         "bn_moving_var": rng.uniform(0, 0.01, 6).astype(np.float32),
         "fc_weight": rng.standard_normal((5, 6 * 3 * 3)).astype(np.float32),
         "fc_bias": rng.standard_normal(5).astype(np.float32)}
    model, got, want = _both(tmp_path, b, p, x, output_name="emb")
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    assert abs(next(a.f for a in bn.attribute if a.name == "epsilon") - 1e-3) < 1e-9
    assert "Dropout" not in [n.op_type for n in model.graph.node]
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # reversed input with the fold through the scalar ops into c1
    model, got, want = _both(tmp_path, b, p, x, output_name="emb", reverse_input_channels=True)
    assert "Gather" not in [n.op_type for n in model.graph.node]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_softmax_head_and_reshape_batch(tmp_path):
    rng = np.random.default_rng(4)
    b = SymbolBuilder()
    b.op("Flatten", "flat", ["data"])
    b.op("FullyConnected", "fc", ["flat", "fc_weight"], num_hidden=4, no_bias=True)
    b.op("Reshape", "r", ["fc"], shape=(-1, 2, 2))
    b.op("Reshape", "back", ["r"], shape=(0, -3))
    b.op("SoftmaxOutput", "softmax", ["back", "softmax_label"])
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    p = {"fc_weight": rng.standard_normal((4, 18)).astype(np.float32)}
    model, got, want = _both(tmp_path, b, p, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # dynamic batch survives the reshapes
    x5 = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    ex = MXNetModel(load_symbol(tmp_path / "s-symbol.json"), {"fc_weight": p["fc_weight"]})
    np.testing.assert_allclose(_ort(model).run(None, {"data": x5})[0], ex.run({"data": x5})["softmax_output"],
                               rtol=1e-5, atol=1e-6)


def test_unsupported_op_fails_with_its_name(tmp_path):
    b = SymbolBuilder()
    b.op("Convolution", "c", ["data", "c_weight"], kernel=(1, 1), num_filter=2, no_bias=True)
    b.op("ROIPooling", "roi_pool5", ["c", "rois"], pooled_size=(7, 7), spatial_scale=0.0625)
    graph = b.graph()
    with pytest.raises(UnsupportedOperatorError) as info:
        mxnet_to_onnx(graph, {"arg:c_weight": np.zeros((2, 3, 1, 1), np.float32), "arg:rois": np.zeros((1, 5))},
                      input_shape=(1, 3, 8, 8))
    assert "ROIPooling" in str(info.value) and "roi_pool5" in str(info.value)


def test_missing_param_is_named(tmp_path):
    b = SymbolBuilder()
    b.op("Convolution", "c", ["data", "c_weight"], kernel=(1, 1), num_filter=2, no_bias=True)
    with pytest.raises(Exception, match="c_weight"):
        mxnet_to_onnx(b.graph(), {}, input_shape=(1, 3, 8, 8))


def _random_params_for(graph, input_shape, rng):
    """Parameters of the right shapes for a conv/bn/prelu/fc graph (the real MobileFaceNet symbol)."""
    shapes = {}
    params = {}
    for i, node in enumerate(graph.nodes):
        if node.is_variable:
            continue
        x = shapes[node.inputs[0][0]] if node.inputs[0][0] in shapes else tuple(input_shape)
        if node.op == "Convolution":
            kh, kw = node.get_tuple("kernel")
            sh, sw = node.get_tuple("stride", (1, 1))
            ph, pw = node.get_tuple("pad", (0, 0))
            nf, g = node.get_int("num_filter"), node.get_int("num_group", 1)
            w = graph.nodes[node.inputs[1][0]].name
            fan_in = x[1] // g * kh * kw
            params[w] = (rng.standard_normal((nf, x[1] // g, kh, kw)) * np.sqrt(2 / fan_in)).astype(np.float32)
            shapes[i] = (x[0], nf, (x[2] + 2 * ph - kh) // sh + 1, (x[3] + 2 * pw - kw) // sw + 1)
        elif node.op in ("BatchNorm", "LeakyReLU"):
            for k, (src, _) in enumerate(node.inputs[1:]):
                name = graph.nodes[src].name
                lo, hi = ((0.5, 1.5) if name.endswith(("_var", "_gamma")) else (-0.1, 0.1))
                params[name] = rng.uniform(lo, hi, x[1]).astype(np.float32)
            shapes[i] = x
        elif node.op == "FullyConnected":
            nh = node.get_int("num_hidden")
            params[graph.nodes[node.inputs[1][0]].name] = (rng.standard_normal((nh, int(np.prod(x[1:]))))
                                                           / np.sqrt(np.prod(x[1:]))).astype(np.float32)
            params[graph.nodes[node.inputs[2][0]].name] = np.zeros(nh, np.float32)
            shapes[i] = (x[0], nh)
        else:
            shapes[i] = x
    return params


def test_real_mobilefacenet_graph_runs_and_converts():
    """The real insightface MobileFaceNet symbol (depthwise convs, BN without eps) with random weights."""
    g = load_symbol(REF / "model-y1-test2-symbol.json")
    rng = np.random.default_rng(5)
    params = _random_params_for(g, (1, 3, 112, 112), rng)
    ex = MXNetModel(g, params)
    x = rng.uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
    want = ex.run({"data": x})["fc1_output"]
    assert want.shape == (2, 128)
    model = mxnet_to_onnx(g, params, input_shape=(1, 3, 112, 112), output_name="fc1", reverse_input_channels=True)
    eps = [next(a.f for a in n.attribute if a.name == "epsilon") for n in model.graph.node
           if n.op_type == "BatchNormalization"]
    assert len(eps) == 50 and sum(abs(e - 1e-3) < 1e-9 for e in eps) == 49
    assert "Gather" not in [n.op_type for n in model.graph.node]
    got = _ort(model).run(None, {"data": np.ascontiguousarray(x[:, ::-1])})[0]
    assert _cos(got, want).min() >= 0.99999
