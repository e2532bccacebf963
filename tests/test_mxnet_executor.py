"""The NumPy MXNet executor against real MXNet output (tiny-r34) and MXNet operator semantics."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest

from facezoo.sources.mxnet.executor import MXNetModel, conv2d
from facezoo.sources.mxnet.params import MXNetFormatError, save_params
from facezoo.sources.mxnet.symbol import SymbolBuilder, UnsupportedOperatorError, load_symbol, save_symbol

REF = Path(__file__).resolve().parent / "data" / "reference" / "mxnet"
TINY = REF / "tiny-r34"


@pytest.fixture(scope="module")
def tiny():
    return MXNetModel.load(TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params")


@pytest.fixture(scope="module")
def truth():
    z = np.load(TINY / "tiny-r34-io.npz")
    return z["input_rgb"], z["output"]


# ------------------------------------------------------------------------- ground truth ----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_r34_reproduces_mxnet(tiny, truth, dtype):
    x, ref = truth
    assert x.shape == (4, 3, 112, 112) and ref.shape == (4, 64)
    assert tiny.input_names == ["data"] and tiny.output_names == ["fc1_output"]
    out = tiny.run({"data": x}, dtype=dtype)["fc1_output"]
    assert out.dtype == np.float32 and out.shape == ref.shape
    scale = np.abs(ref).max()
    # measured: max |err| 0.031 (float32) / 0.027 (float64) on outputs up to |1.02e4|,
    # i.e. ~3e-6 of the output scale: MXNet's own float32 rounding
    assert np.abs(out - ref).max() <= 2e-5 * scale
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 1 - 1e-6


def test_fix_gamma_is_honoured(tiny, truth):
    x, ref = truth
    g = copy.deepcopy(tiny.graph)
    g.node("fc1").attrs["fix_gamma"] = "False"
    wrong = MXNetModel(g, tiny.params).run({"data": x})["fc1_output"]
    assert np.abs(wrong - ref).max() > 100 * np.abs(tiny.run({"data": x})["fc1_output"] - ref).max()


def test_outputs_by_node_name_and_output_spelling(tiny, truth):
    x, _ = truth
    res = tiny.run({"data": x[:2]}, ["fc1", "fc1_output", "pre_fc1", "relu0_output"])
    assert list(res) == ["fc1", "fc1_output", "pre_fc1", "relu0_output"]
    np.testing.assert_array_equal(res["fc1"], res["fc1_output"])
    assert res["pre_fc1"].shape == (2, 64) and res["relu0_output"].shape == (2, 8, 112, 112)
    with pytest.raises(MXNetFormatError, match="no_such_node"):
        tiny.run({"data": x[:1]}, ["no_such_node"])


def test_batch_equals_single_runs(tiny, truth):
    x, _ = truth
    full = tiny.run({"data": x})["fc1_output"]
    for i in range(len(x)):
        np.testing.assert_allclose(tiny.run({"data": x[i : i + 1]})["fc1_output"][0], full[i], rtol=1e-5, atol=1e-2)


def test_missing_parameter_is_named(tmp_path, tiny):
    params = {("aux:" if k.endswith(("moving_mean", "moving_var")) else "arg:") + k: v for k, v in tiny.params.items()}
    del params["arg:stage2_unit1_conv1_weight"]
    save_params(tmp_path / "m-0000.params", params)
    with pytest.raises(MXNetFormatError, match="stage2_unit1_conv1_weight"):
        MXNetModel.load(TINY / "tiny-r34-symbol.json", tmp_path / "m-0000.params")


def test_unknown_input_and_missing_data(tiny):
    with pytest.raises(MXNetFormatError, match="'image'"):
        tiny.run({"image": np.zeros((1, 3, 112, 112), np.float32)})
    with pytest.raises(MXNetFormatError, match="data"):
        tiny.run({})


def test_full_size_r34_speed():
    """Full-width r34 (8.9 GFLOPs per image) with random weights of the real shapes, batch 4."""
    g = load_symbol(REF / "model-r34-amf-symbol.json")
    from conftest import r34_random_params

    rng = np.random.default_rng(0)
    params = {key[4:]: value for key, value in r34_random_params(rng).items()}
    assert len(params) == 276
    model = MXNetModel(g, params)
    x = rng.uniform(0, 255, (4, 3, 112, 112)).astype(np.float32)
    t0 = time.perf_counter()
    out = model.run({"data": x})["fc1_output"]
    elapsed = time.perf_counter() - t0
    assert out.shape == (4, 512) and np.isfinite(out).all()
    assert elapsed < 60, f"{elapsed:.1f} s"


# ------------------------------------------------------------------------- op semantics ----
def _run(tmp_path, builder: SymbolBuilder, params: dict, inputs: dict, outputs=None, spelling="attrs"):
    """Write the graph and params to disk in MXNet format, load them back, run."""
    save_symbol(tmp_path / "g-symbol.json", builder.graph(), spelling=spelling)
    save_params(tmp_path / "g-0000.params", {("aux:" if "moving" in k else "arg:") + k: v for k, v in params.items()})
    model = MXNetModel.load(tmp_path / "g-symbol.json", tmp_path / "g-0000.params", data_names=tuple(inputs))
    return model.run(inputs, outputs)


def _naive_conv(x, w, b, stride, pad, dilate, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (xp.shape[2] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for f in range(o):
        gi = f // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, gi * cg : (gi + 1) * cg,
                           i * stride[0] : i * stride[0] + dilate[0] * (kh - 1) + 1 : dilate[0],
                           j * stride[1] : j * stride[1] + dilate[1] * (kw - 1) + 1 : dilate[1]]
                out[:, f, i, j] = (patch * w[f]).sum(axis=(1, 2, 3)) + (b[f] if b is not None else 0)
    return out


@pytest.mark.parametrize(
    "stride,pad,dilate,groups",
    [
        ((1, 1), (0, 0), (1, 1), 1),
        ((2, 2), (1, 1), (1, 1), 1),
        ((1, 2), (2, 1), (2, 1), 2),
        ((1, 1), (1, 1), (1, 1), 4),
    ],
)
def test_conv2d_matches_definition(stride, pad, dilate, groups):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    got = conv2d(x, w, b, stride, pad, dilate, groups)
    np.testing.assert_allclose(got, _naive_conv(x, w, b, stride, pad, dilate, groups), rtol=1e-5, atol=1e-5)


def test_convolution_node_defaults_and_bias(tmp_path):
    rng = np.random.default_rng(2)
    b = SymbolBuilder()
    b.op("Convolution", "c", ["data", "c_weight", "c_bias"], kernel=(3, 3), num_filter=2)  # stride 1, pad 0
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    bias = np.array([1.0, -1.0], np.float32)
    out = _run(tmp_path, b, {"c_weight": w, "c_bias": bias}, {"data": x})["c_output"]
    np.testing.assert_allclose(out, _naive_conv(x, w, bias, (1, 1), (0, 0), (1, 1), 1), rtol=1e-5, atol=1e-5)


def test_batchnorm_defaults_eps_1e3_and_fix_gamma(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    p = {"bn_gamma": np.array([2.0, 3.0, 4.0], np.float32), "bn_beta": np.array([0.5, 0, -0.5], np.float32),
         "bn_moving_mean": np.array([0.1, 0.2, 0.3], np.float32),
         "bn_moving_var": np.array([1e-3, 0.5, 2.0], np.float32)}
    shape = (1, 3, 1, 1)
    for attrs, gamma, eps in (({}, 1.0, 1e-3), ({"fix_gamma": False}, p["bn_gamma"].reshape(shape), 1e-3),
                              ({"fix_gamma": False, "eps": 2e-5}, p["bn_gamma"].reshape(shape), 2e-5)):
        b = SymbolBuilder()
        b.op("BatchNorm", "bn", ["data", "bn_gamma", "bn_beta", "bn_moving_mean", "bn_moving_var"],
             momentum=0.9, use_global_stats=False, **attrs)
        out = _run(tmp_path, b, p, {"data": x})["bn_output"]
        want = (x - p["bn_moving_mean"].reshape(shape)) / np.sqrt(p["bn_moving_var"].reshape(shape) + eps) * gamma \
            + p["bn_beta"].reshape(shape)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_leakyrelu_variants(tmp_path):
    x = np.array([[-2.0, -0.5, 0.0, 1.5]], np.float32).reshape(1, 4, 1, 1)
    gamma = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    b = SymbolBuilder()
    b.op("LeakyReLU", "default", ["data"])
    b.op("LeakyReLU", "leaky", ["data"], act_type="leaky", slope=0.1)
    b.op("LeakyReLU", "prelu", ["data", "prelu_gamma"], act_type="prelu")
    b.op("LeakyReLU", "elu", ["data"], act_type="elu", slope=1.0)
    res = _run(tmp_path, b, {"prelu_gamma": gamma}, {"data": x}, ["default", "leaky", "prelu", "elu"])
    v = x.ravel()
    np.testing.assert_allclose(res["default"].ravel(), np.where(v > 0, v, 0.25 * v))
    np.testing.assert_allclose(res["leaky"].ravel(), np.where(v > 0, v, 0.1 * v))
    np.testing.assert_allclose(res["prelu"].ravel(), np.where(v > 0, v, gamma * v))
    np.testing.assert_allclose(res["elu"].ravel(), np.where(v > 0, v, np.expm1(v)), rtol=1e-6)


def test_activation_scalar_and_elementwise_ops(tmp_path):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(1, 3, 2, 2)
    b = SymbolBuilder()
    for act in ("relu", "sigmoid", "tanh", "softrelu"):
        b.op("Activation", act, ["data"], act_type=act)
    b.op("_minus_scalar", "m", ["data"], scalar=1.5)
    b.op("_mul_scalar", "mul", ["m"], scalar=0.5)
    b.op("_plus_scalar", "p", ["mul"], scalar=2)
    b.op("_div_scalar", "d", ["p"], scalar=4)
    b.op("elemwise_add", "add", ["d", "relu"])
    b.op("_Plus", "plus", ["add", "tanh"])
    b.op("broadcast_add", "badd", ["plus", "bias"])
    b.op("_copy", "copy", ["badd"])
    b.op("Dropout", "drop", ["copy"], p=0.4)
    bias = np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 3, 1, 1)
    res = _run(tmp_path, b, {"bias": bias}, {"data": x}, ["relu", "sigmoid", "tanh", "softrelu", "drop"])
    np.testing.assert_allclose(res["sigmoid"], 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(res["softrelu"], np.log1p(np.exp(x)), rtol=1e-6)
    want = ((x - 1.5) * 0.5 + 2) / 4 + np.maximum(x, 0) + np.tanh(x) + bias
    np.testing.assert_allclose(res["drop"], want, rtol=1e-6)


def test_pooling_conventions(tmp_path):
    x = np.arange(2 * 36, dtype=np.float32).reshape(1, 2, 6, 6)
    b = SymbolBuilder()
    b.op("Pooling", "maxv", ["data"], kernel=(2, 2), stride=(2, 2), pool_type="max")
    b.op("Pooling", "avgf", ["data"], kernel=(3, 3), stride=(2, 2), pool_type="avg", pooling_convention="full")
    b.op("Pooling", "avgv", ["data"], kernel=(3, 3), stride=(2, 2), pool_type="avg")
    b.op("Pooling", "avgp", ["data"], kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg",
         count_include_pad=False)
    b.op("Pooling", "gap", ["data"], kernel=(7, 7), global_pool=True, pool_type="avg")
    res = _run(tmp_path, b, {}, {"data": x}, ["maxv", "avgf", "avgv", "avgp", "gap"])
    np.testing.assert_array_equal(res["maxv"], x.reshape(1, 2, 3, 2, 3, 2).max(axis=(3, 5)))
    assert res["avgv"].shape == (1, 2, 2, 2) and res["avgf"].shape == (1, 2, 3, 3)
    np.testing.assert_allclose(res["avgf"][..., :2, :2], res["avgv"])
    # last full-convention window covers rows 4..5 (+1 overhang): MXNet divides by the clipped 2x2 area
    np.testing.assert_allclose(res["avgf"][0, 0, 2, 2], x[0, 0, 4:6, 4:6].mean())
    np.testing.assert_allclose(res["avgp"][0, 0, 0, 0], x[0, 0, :2, :2].mean())
    np.testing.assert_allclose(res["gap"].ravel(), x.mean(axis=(2, 3)).ravel())


def test_reshape_flatten_fc_concat_slice(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3, 2)).astype(np.float32)
    b = SymbolBuilder()
    b.op("Reshape", "r1", ["data"], shape=(0, -1))
    b.op("Reshape", "r2", ["data"], shape=(-3, -2))
    b.op("Reshape", "r3", ["data"], shape=(0, -4, 2, -1, -2))
    b.op("Reshape", "r4", ["data"], shape=(-1, 6))
    b.op("Flatten", "flat", ["data"])
    b.op("FullyConnected", "fc", ["data", "fc_weight", "fc_bias"], num_hidden=5)
    b.op("FullyConnected", "fcl", ["data", "fcl_weight"], num_hidden=3, flatten=False, no_bias=True)
    b.op("Concat", "cat", ["data", "data"], num_args=2)
    b.op("Concat", "cat3", ["data", "data"], dim=3)
    b.op("SliceChannel", "sl", ["data"], num_outputs=2)
    p = {"fc_weight": rng.standard_normal((5, 24)).astype(np.float32), "fc_bias": np.ones(5, np.float32),
         "fcl_weight": rng.standard_normal((3, 2)).astype(np.float32)}
    res = _run(tmp_path, b, p, {"data": x},
               ["r1", "r2", "r3", "r4", "flat", "fc", "fcl", "cat", "cat3", "sl_output0", "sl_output1"])
    assert res["r1"].shape == (2, 24) and res["r2"].shape == (8, 3, 2) and res["r3"].shape == (2, 2, 2, 3, 2)
    assert res["r4"].shape == (8, 6)
    np.testing.assert_array_equal(res["flat"], x.reshape(2, 24))
    np.testing.assert_allclose(res["fc"], x.reshape(2, 24) @ p["fc_weight"].T + 1, rtol=1e-5)
    np.testing.assert_allclose(res["fcl"], x @ p["fcl_weight"].T, rtol=1e-5)
    assert res["cat"].shape == (2, 8, 3, 2) and res["cat3"].shape == (2, 4, 3, 4)
    np.testing.assert_array_equal(res["sl_output1"], x[:, 2:])


def test_softmax_output_ignores_label_and_l2norm(tmp_path):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    b = SymbolBuilder()
    b.op("SoftmaxOutput", "softmax", ["data", "softmax_label"])
    b.op("L2Normalization", "l2", ["data"])
    b.op("L2Normalization", "l2c", ["data"], mode="channel", eps=1e-6)
    res = _run(tmp_path, b, {}, {"data": x}, ["softmax", "l2", "l2c"])
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(res["softmax"], e / e.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(res["l2"][0], x[0] / np.sqrt((x[0] ** 2).sum() + 1e-10), rtol=1e-6)
    np.testing.assert_array_equal(res["l2"][1], 0)
    np.testing.assert_allclose(res["l2c"], res["l2"], rtol=1e-5)


def test_param_spelling_graph_runs_the_same(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    p = {"c_weight": rng.standard_normal((2, 3, 1, 1)).astype(np.float32)}
    outs = []
    for spelling in ("attrs", "attr", "param"):
        b = SymbolBuilder()
        b.op("Convolution", "c", ["data", "c_weight"], kernel=(1, 1), num_filter=2, no_bias=True)
        (tmp_path / spelling).mkdir()
        outs.append(_run(tmp_path / spelling, b, p, {"data": x}, spelling=spelling)["c_output"])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_unsupported_op_names_op_and_node(tmp_path):
    b = SymbolBuilder()
    b.op("Activation", "a", ["data"], act_type="relu")
    b.op("Deconvolution", "upsample7", ["a", "upsample7_weight"], kernel=(2, 2), num_filter=3)
    save_symbol(tmp_path / "u-symbol.json", b.graph())
    save_params(tmp_path / "u-0000.params", {"arg:upsample7_weight": np.zeros((3, 3, 2, 2), np.float32)})
    with pytest.raises(UnsupportedOperatorError) as info:
        MXNetModel.load(tmp_path / "u-symbol.json", tmp_path / "u-0000.params")
    assert "Deconvolution" in str(info.value) and "upsample7" in str(info.value)
    assert info.value.op == "Deconvolution" and info.value.node == "upsample7"
    b2 = SymbolBuilder()
    b2.op("Activation", "act9", ["data"], act_type="gelu_tanh_whatever")
    with pytest.raises(UnsupportedOperatorError, match="act9.*gelu_tanh_whatever"):
        MXNetModel(b2.graph(), {}).run({"data": np.zeros((1, 1), np.float32)})


def test_shape_mismatch_names_the_node(tmp_path):
    b = SymbolBuilder()
    b.op("Convolution", "convX", ["data", "convX_weight"], kernel=(3, 3), num_filter=4, no_bias=True)
    model = MXNetModel(b.graph(), {"convX_weight": np.zeros((4, 2, 3, 3), np.float32)})
    with pytest.raises(MXNetFormatError, match="convX"):
        model.run({"data": np.zeros((1, 3, 8, 8), np.float32)})
