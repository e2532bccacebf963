"""MXNetSource: the original MXNet model (NumPy executor) and its ONNX / MINDIR exports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mindspore import nn

from facezoo.sources.mxnet.source import MXNetSource
from facezoo.conversion import ConversionRequest, convert_model
from facezoo.errors import ConversionError
from facezoo.faces import probe_images
from facezoo.preprocessing import to_model_input
from facezoo.sources.mxnet import MXNetModel, save_symbol
from facezoo.sources.mxnet.symbol import SymbolBuilder
from facezoo.registry import load_zoo
from facezoo.sources.mxnet.standin import write_model_folder

TINY = Path(__file__).resolve().parent / "data" / "reference" / "mxnet" / "tiny-r34"
MODEL = "face-recognition-resnet34-arcface"


def _cos(a, b):
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _mindir(path):
    ms.set_context(mode=ms.GRAPH_MODE)
    return nn.GraphCell(ms.load(str(path)))


@pytest.fixture(scope="module")
def tiny_spec():
    spec = load_zoo().get(MODEL)
    return dataclasses.replace(spec, output=dataclasses.replace(spec.output, dim=64))


@pytest.fixture(scope="module")
def standin(tmp_path_factory, tiny_spec):
    """The tiny stand-in, unzipped as the downloader leaves it: <dl>/<model>/model-r34-amf/..."""
    root = tmp_path_factory.mktemp("dl")
    folder = root / MODEL / "model-r34-amf"
    write_model_folder(folder, scale="tiny", seed=3)
    return root


@pytest.fixture(scope="module")
def source(standin, tiny_spec):
    folder = standin / MODEL
    return MXNetSource(tiny_spec, folder / tiny_spec.conversion.symbol, folder / tiny_spec.conversion.params)


def test_reference_is_the_executor_on_the_original_contract(source, standin, tiny_spec):
    images = probe_images(3)
    outputs = source.reference(images)
    assert list(outputs) == [tiny_spec.converted.output_name]  # named as the converted contract names it
    got = outputs[tiny_spec.converted.output_name]
    folder = standin / MODEL / "model-r34-amf"
    executor = MXNetModel.load(folder / "model-symbol.json", folder / "model-0000.params")
    rgb = to_model_input(images, "RGB")  # raw 0..255: the graph normalizes itself
    expected = executor.run({"data": rgb}, ["fc1"])["fc1"]
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32 and got.shape == (3, 64)
    assert source.source_files == [folder / "model-symbol.json", folder / "model-0000.params"]
    # the channel order matters: BGR input gives a different embedding
    assert _cos(executor.run({"data": to_model_input(images, "BGR")}, ["fc1"])["fc1"], got).min() < 0.999


def test_exports_match_the_original(source, tmp_path):
    images = probe_images(4)
    (reference,) = source.reference(images).values()
    bgr = to_model_input(images, "BGR")
    onnx_path = tmp_path / "m.onnx"
    source.export_onnx(onnx_path)
    model = onnx.load(str(onnx_path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("data", "pre_fc1")
    assert inp.type.tensor_type.shape.dim[0].dim_param == "N"
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    by_onnx = _ort(onnx_path, bgr)
    assert _cos(by_onnx, reference).min() >= 0.99999
    for precision, threshold in (("FP32", 0.99999), ("FP16", 0.999)):
        path = tmp_path / f"m-{precision}.mindir"
        source.export_mindir(path, precision)
        cell = _mindir(path)
        batch = cell(ms.Tensor(bgr)).asnumpy()
        singles = np.concatenate([cell(ms.Tensor(bgr[i : i + 1])).asnumpy() for i in range(len(bgr))])
        assert batch.dtype == np.float32 and batch.shape == reference.shape
        assert _cos(batch, reference).min() >= threshold, precision
        tolerance = 1e-4 if precision == "FP32" else 2e-3
        assert np.abs(batch - singles).max() <= tolerance * np.abs(singles).max(), precision


def test_tiny_r34_ground_truth_through_the_source(tiny_spec, tmp_path):
    """MXNet 1.9.1's own output, through executor, ONNX and MINDIR (the converted ones fed BGR)."""
    src = MXNetSource(tiny_spec, TINY / "tiny-r34-symbol.json", TINY / "tiny-r34-0000.params")
    io = np.load(TINY / "tiny-r34-io.npz")
    rgb, truth = io["input_rgb"].astype(np.float32), io["output"]
    bgr = np.ascontiguousarray(rgb[:, ::-1])
    src.export_onnx(tmp_path / "t.onnx")
    src.export_mindir(tmp_path / "t.mindir", "FP32")
    outputs = {
        "executor": src.run_original(rgb),
        "onnx": _ort(tmp_path / "t.onnx", bgr),
        "mindir": _mindir(tmp_path / "t.mindir")(ms.Tensor(bgr)).asnumpy(),
    }
    scale = np.abs(truth).max()
    for name, got in outputs.items():
        assert _cos(got, truth).min() >= 0.99999, name
        assert np.abs(got - truth).max() <= 1e-4 * scale, name


def test_pipeline_converts_the_tiny_standin(standin, tiny_spec, tmp_path):
    request = ConversionRequest(tiny_spec, standin, tmp_path / "out", ["mindir", "onnx"], ["FP32", "FP16"])
    result = convert_model(request)
    assert result.passed, result.error
    for precision in ("FP32", "FP16"):
        folder = tmp_path / "out" / MODEL / precision
        assert (folder / f"{MODEL}.mindir").is_file() and (folder / f"{MODEL}.onnx").is_file()
    checks = {(c.format, c.precision, c.backend): c for c in result.checks}
    assert checks[("mindir", "FP32", "mindspore")].metric("min_cosine") >= 0.99999
    assert checks[("mindir", "FP16", "mindspore")].metric("min_cosine") >= 0.999


def test_outside_normalization_and_missing_pieces(tmp_path, tiny_spec):
    """A graph without in-graph normalization: the ONNX gets (x - mean) / std prepended."""
    b = SymbolBuilder()
    data = b.var("data")
    w = b.var("conv_weight")
    conv = b.op("Convolution", "conv", [data, w], kernel=(1, 1), num_filter=4, no_bias=True)
    fc_w = b.var("fc_weight")
    fc = b.op("FullyConnected", "fc1", [conv, fc_w], num_hidden=5, no_bias=True)
    graph = b.graph([fc])
    from facezoo.sources.mxnet import save_params

    rng = np.random.default_rng(0)
    save_symbol(tmp_path / "s.json", graph)
    save_params(tmp_path / "p.params", {"arg:conv_weight": rng.normal(size=(4, 3, 1, 1)).astype(np.float32),
                                        "arg:fc_weight": rng.normal(size=(5, 4 * 8 * 8)).astype(np.float32)})
    spec = dataclasses.replace(
        tiny_spec,
        input=dataclasses.replace(tiny_spec.input, shape=[1, 3, 8, 8], normalization="outside",
                                  mean=[120.0, 110.0, 100.0], std=[60.0, 50.0, 40.0]),
        output=dataclasses.replace(tiny_spec.output, dim=5),
    )
    src = MXNetSource(spec, tmp_path / "s.json", tmp_path / "p.params")
    images = (rng.uniform(0, 255, (3, 8, 8, 3))).astype(np.uint8)
    (reference,) = src.reference(images).values()
    src.export_onnx(tmp_path / "o.onnx")
    assert _cos(_ort(tmp_path / "o.onnx", to_model_input(images, "BGR")), reference).min() >= 0.99999
    src.export_mindir(tmp_path / "o.mindir", "FP32")
    got = _mindir(tmp_path / "o.mindir")(ms.Tensor(to_model_input(images, "BGR"))).asnumpy()
    assert _cos(got, reference).min() >= 0.99999

    with pytest.raises(ConversionError, match="output.dim"):
        MXNetSource(tiny_spec, tmp_path / "s.json", tmp_path / "p.params").reference(images)
    bad = dataclasses.replace(spec, conversion=dataclasses.replace(spec.conversion, output_node="nope"))
    with pytest.raises(ConversionError, match="nope"):
        MXNetSource(bad, tmp_path / "s.json", tmp_path / "p.params")
    doc = json.loads((tmp_path / "s.json").read_text())
    next(n for n in doc["nodes"] if n["op"] == "Convolution")["op"] = "Crop"
    (tmp_path / "crop.json").write_text(json.dumps(doc))
    with pytest.raises(ConversionError, match="Crop"):
        MXNetSource(spec, tmp_path / "crop.json", tmp_path / "p.params")


@pytest.mark.slow
def test_full_size_standin_converts_and_publishes_everything(tmp_path):
    """The full-size stand-in zip (trained-network statistics), unpacked as downloaded, through the
    pipeline: every format and precision passes and is published."""
    import zipfile

    from facezoo.sources.mxnet.standin import write_standin

    spec = load_zoo().get(MODEL)
    (archive,) = write_standin(spec, tmp_path / "zip")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "dl" / MODEL)
    request = ConversionRequest(spec, tmp_path / "dl", tmp_path / "out", ["onnx", "openvino", "mindir"], ["FP32", "FP16"])
    result = convert_model(request)
    assert result.passed, result.error
    assert result.published == ["FP32", "FP16"]
    for check in result.checks:
        assert check.metric("min_cosine") >= {"FP32": 0.99999, "FP16": 0.999}[check.precision], check


@pytest.mark.slow
def test_weights_as_mxnet_initialises_them_are_not_refused(tmp_path):
    """He-normal weights with BN moving statistics left at MXNet's initial 0 / 1 (not matched to
    the data, activations grow through the depth) and fix_gamma gamma != 1, as a model written by
    real MXNet straight after initialisation: a correct conversion, which the FP16 batch check once
    refused (batch vs single runs 2.27e-3 > 2e-3 on the MINDIR)."""
    from facezoo.sources.mxnet.params import dump_params
    from facezoo.sources.mxnet.standin import initial_weights, symbol_bytes

    spec = load_zoo().get(MODEL)
    folder = tmp_path / "dl" / MODEL / "model-r34-amf"
    folder.mkdir(parents=True)
    (folder / "model-symbol.json").write_bytes(symbol_bytes("full"))
    weights = initial_weights("full", seed=5)
    assert float(weights["arg:fc1_gamma"].std()) > 0.1  # fix_gamma: ignored at inference, not 1 in the file
    (folder / "model-0000.params").write_bytes(dump_params(weights))
    result = convert_model(ConversionRequest(spec, tmp_path / "dl", tmp_path / "out", ["onnx", "openvino", "mindir"],
                                             ["FP32", "FP16"]))
    assert result.passed, result.error
    assert result.published == ["FP32", "FP16"]
