"""ONNX face models as a source: the SFace stand-in from the registry, a user's messy export, the
importer on every opset, the quick `convert --onnx FILE` path and its model card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import helper, numpy_helper

from facezoo.conversion import ConversionRequest, convert_model
from conftest import check_artifact
from facezoo.downloader.verify import sha256_file
from facezoo.errors import ConversionError
from facezoo.faces import probe_images
from facezoo.preprocessing import to_model_input
from facezoo.registry import load_zoo
from facezoo.runtime import load
from facezoo.sources.onnx import OnnxSource
from facezoo.standins import build_standins
from facezoo.sources.onnx.standin import exported_nhwc

REPO = Path(__file__).resolve().parents[1]
SFACE = "face-recognition-sface"
ALL_FORMATS = ["onnx", "openvino", "mindir"]


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "facezoo.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def sface(tmp_path_factory):
    """The SFace stand-in, laid out as `facezoo download` leaves it, converted to everything."""
    root = tmp_path_factory.mktemp("sface")
    standins = build_standins(load_zoo(), root / "models", [SFACE])
    spec = standins.zoo().get(SFACE)
    result = convert_model(ConversionRequest(spec, root / "models", root / "converted", ALL_FORMATS, ["FP32", "FP16"]))
    return spec, root, result, standins.zoo_path


def test_sface_standin_has_the_traps_of_a_real_export(sface):
    spec, root, _, _ = sface
    model = onnx.load(str(root / "models" / SFACE / spec.conversion.model))
    ops = {node.op_type for node in model.graph.node}
    assert {"BatchNormalization", "PRelu", "Abs", "Relu", "Sub", "Mul", "Gemm", "Reshape"} <= ops
    assert any(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute) for n in model.graph.node)
    (value,) = model.graph.input
    assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 3, 112, 112]  # a fixed batch of 1
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    target = next(i for i in model.graph.initializer if i.name == reshape.input[1])
    assert numpy_helper.to_array(target).tolist()[0] == 1  # ... baked into a Reshape constant
    # trained-network statistics: some BN channels carry almost no variance
    variances = np.concatenate([numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("bn_var")])
    assert (variances < 1e-2 * np.median(variances)).sum() >= 5


def test_sface_converts_to_every_format_and_precision(sface):
    spec, root, result, _ = sface
    assert result.passed, result.error
    assert result.published == ["FP32", "FP16"]
    assert {(c.format, c.precision) for c in result.checks} == {(f, p) for f in ALL_FORMATS for p in ("FP32", "FP16")}
    converted = onnx.load(str(root / "converted" / SFACE / "FP32" / f"{SFACE}.onnx"))
    (value,) = converted.graph.input
    assert value.name == "data"
    dims = value.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 112, 112]
    assert [o.name for o in converted.graph.output] == ["embedding"]
    card = json.loads((root / "converted" / SFACE / "FP16" / "model_card.json").read_text())
    assert card["source"]["framework"] == "onnx" and card["input"]["channel_order"] == "BGR"
    assert "RGB channel swap" in card["input"]["preprocessing_inside"] or "BGR → RGB" in card["input"]["preprocessing_inside"]
    assert card["entry"]["name"] == SFACE


def test_sface_batch_equals_singles_and_matches_the_original_on_bgr(sface):
    spec, root, _, _ = sface
    source = OnnxSource(spec, root / "models" / SFACE / spec.conversion.model)
    images = probe_images(5, (112, 112))
    reference = source.reference(images)["embedding"]
    with load(root / "converted" / SFACE / "FP32" / f"{SFACE}.onnx") as model:
        batch = model.infer(images)["embedding"]
        singles = np.concatenate([model.infer(images[i : i + 1])["embedding"] for i in range(5)])
        rgb = model.infer(to_model_input(images, "RGB"))["embedding"]
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch, reference, rtol=1e-4, atol=1e-4)
    cos = np.sum(rgb * reference, 1) / np.linalg.norm(rgb, axis=1) / np.linalg.norm(reference, axis=1)
    assert cos.min() < 0.999  # the swap is inside: RGB input is wrong, the colour-asymmetric probe shows it


def test_sface_check_passes_through_the_cli(sface):
    spec, root, _, zoo_path = sface
    done = _cli("check", SFACE, "--zoo", zoo_path, "-d", root / "models", "-c", root / "converted")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "artifact/backend checks passed" in done.stdout


def test_a_baked_batch_fails_the_batch_gate(sface, tmp_path):
    """The converter's rebatching is what makes batches right: without it, the gate refuses."""
    spec, root, _, _ = sface
    source = OnnxSource(spec, root / "models" / SFACE / spec.conversion.model)
    model = source.converted_model()
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    reshape = next(n for n in broken.graph.node if n.op_type == "Reshape")
    broken.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "baked"))
    reshape.input[1] = "baked"
    path = tmp_path / "baked.onnx"
    onnx.save(broken, str(path))
    images = probe_images(4, (112, 112))
    inputs = to_model_input(images, "BGR")
    check = check_artifact(path, fmt="onnx", precision="FP32", backend_name="openvino", inputs=inputs,
                           reference=source.reference(images))
    assert not check.passed
    assert "output shape" in check.reason or "batch of 4" in check.reason


# ----------------------------------------------------------------------------- a user's own file


def _user_registry(tmp_path: Path, model_path: Path, **input_overrides) -> Path:
    entry = {
        "name": "my-nhwc-model",
        "description": "a user's export: NHWC, fixed batch 2",
        "task_type": "face_recognition",
        "framework": "onnx",
        "architecture": "custom",
        "license": "proprietary",
        "files": [{"name": model_path.name, "sha256": sha256_file(model_path), "size": model_path.stat().st_size}],
        "how_to_obtain": "our own training run; `facezoo download my-nhwc-model --import FILE`",
        "input": {"shape": [2, 112, 112, 3], "layout": "NHWC", "channel_order": "BGR", "mean": [127.5],
                  "std": [128.0], **input_overrides},
        "output": {"dim": 256},
        "conversion": {"model": model_path.name, "input": "input_1"},
    }
    path = tmp_path / "my_zoo.yml"
    path.write_text(yaml.safe_dump({"version": 1, "models": [entry]}, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def nhwc_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nhwc") / "models" / "my-nhwc-model"
    folder.mkdir(parents=True)
    path = folder / "exported.onnx"
    onnx.save(exported_nhwc(opset=11, batch=2), str(path))
    return path


def test_a_users_nhwc_fixed_batch_export_converts_everywhere(nhwc_file, tmp_path):
    spec = load_zoo(_user_registry(tmp_path, nhwc_file)).get("my-nhwc-model")
    request = ConversionRequest(spec, nhwc_file.parents[1], tmp_path / "converted", ALL_FORMATS, ["FP32", "FP16"])
    result = convert_model(request)
    assert result.passed, result.error
    converted = onnx.load(str(tmp_path / "converted" / spec.name / "FP32" / f"{spec.name}.onnx"))
    # the NCHW → NHWC transpose in front met the file's NHWC → NCHW one: both went
    assert not any(n.op_type == "Transpose" for n in converted.graph.node)
    assert not {i.name for i in converted.graph.initializer} & {i.name for i in converted.graph.input}
    # a batch of 5 (odd, against the file's fixed 2) is its rows run one by one
    with load(tmp_path / "converted" / spec.name / "FP32" / f"{spec.name}.xml") as model:
        images = probe_images(5, (112, 112))
        batch = model.infer(images)["embedding"]
        singles = np.concatenate([model.infer(images[i : i + 1])["embedding"] for i in range(5)])
    np.testing.assert_allclose(batch, singles, rtol=1e-4, atol=1e-4)


def test_wrong_input_shape_or_names_are_errors_naming_the_field(nhwc_file, tmp_path):
    spec = load_zoo(_user_registry(tmp_path, nhwc_file, layout="NCHW", shape=[2, 3, 112, 112])).get("my-nhwc-model")
    with pytest.raises(ConversionError, match=r"input.shape \[2, 3, 112, 112\] \(NCHW\) does not match input 'input_1'"):
        OnnxSource(spec, nhwc_file)
    import dataclasses

    wrong = dataclasses.replace(spec, conversion=dataclasses.replace(spec.conversion, input="image"))
    with pytest.raises(ConversionError, match=r"conversion.input 'image' is not a graph input; the graph has \['input_1'\]"):
        OnnxSource(wrong, nhwc_file)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_every_opset_converts_through_the_converter_and_the_importer(opset, tmp_path):
    """Opsets 9-17 encode Pad, Clip, Unsqueeze differently; both paths must read them."""
    from facezoo.converters.mindir import onnx_to_mindspore

    folder = tmp_path / "models" / "my-nhwc-model"
    folder.mkdir(parents=True)
    path = folder / "exported.onnx"
    onnx.save(exported_nhwc(opset=opset, batch=1), str(path))
    registry = _user_registry(tmp_path, path, shape=[1, 112, 112, 3])
    spec = load_zoo(registry).get("my-nhwc-model")
    result = convert_model(ConversionRequest(spec, tmp_path / "models", tmp_path / "converted", ALL_FORMATS, ["FP32"]))
    assert result.passed, result.error
    # the importer alone, on the raw file (NHWC, fixed batch, initializers as inputs), against ONNX Runtime
    import mindspore as ms
    import onnxruntime as ort

    raw = onnx.load(str(path))
    x = (to_model_input(probe_images(1, (112, 112)), "BGR").transpose(0, 2, 3, 1) - 127.5) / 128.0
    x = np.ascontiguousarray(x, np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    expected = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"input_1": x})[0]
    got = onnx_to_mindspore(raw)(ms.Tensor(x)).asnumpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_unsupported_operator_is_named_with_its_node(nhwc_file, tmp_path):
    model = onnx.load(str(nhwc_file))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Softplus"
    relu.name = "odd_activation"
    folder = tmp_path / "models" / "my-nhwc-model"
    folder.mkdir(parents=True)
    path = folder / "exported.onnx"
    onnx.save(model, str(path))
    spec = load_zoo(_user_registry(tmp_path, path)).get("my-nhwc-model")
    result = convert_model(ConversionRequest(spec, tmp_path / "models", tmp_path / "converted", ["mindir"], ["FP32"]))
    assert not result.passed
    assert "unsupported ONNX operator Softplus (node 'odd_activation')" in result.error


# ----------------------------------------------------------------------------- convert --onnx FILE


@pytest.fixture(scope="module")
def quick(tmp_path_factory, sface):
    """`facezoo convert --onnx FILE` on a file that takes BGR 0..255 as it is (the converted SFace)."""
    spec, root, _, _ = sface
    work = tmp_path_factory.mktemp("quick")
    source = work / "incoming" / "my face model.onnx"
    source.parent.mkdir()
    source.write_bytes((root / "converted" / SFACE / "FP32" / f"{SFACE}.onnx").read_bytes())
    done = _cli("convert", "--onnx", source, "-o", work / "converted", cwd=work)
    return work, source, done


def test_quick_path_writes_model_cards_and_runs_through_infer_benchmark_and_check(quick):
    work, source, done = quick
    assert done.returncode == 0, done.stdout + done.stderr
    name = "my-face-model"
    for precision in ("FP32", "FP16"):
        card = json.loads((work / "converted" / name / precision / "model_card.json").read_text())
        assert card["source"]["original"]["path"] == str(source.resolve())
        assert card["entry"]["framework"] == "onnx" and card["input"]["name"] == "data"
        assert {Path(f).suffix for f in card["files"]} >= {".onnx", ".xml", ".mindir"}
    np.save(work / "in.npy", to_model_input(probe_images(3, (112, 112)), "BGR"))
    mindir = work / "converted" / name / "FP32" / f"{name}.mindir"
    inferred = _cli("infer", mindir, "--input", work / "in.npy", "-o", work / "out.npy", cwd=work)
    assert inferred.returncode == 0, inferred.stderr
    assert np.load(work / "out.npy").shape == (3, 128)
    benchmark = _cli("benchmark", mindir, "--iterations", "2", "--warmup", "1", "--batch", "1", "--mode", "latency",
                     cwd=work)
    assert benchmark.returncode == 0, benchmark.stdout + benchmark.stderr
    check = _cli("check", name, "-c", work / "converted", cwd=work)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "artifact/backend checks passed" in check.stdout


def test_quick_path_refuses_names_beside_the_file(quick, tmp_path):
    work, source, _ = quick
    done = _cli("convert", "arcface", "--onnx", source, "-o", tmp_path)
    assert done.returncode == 1 and "give no model names" in done.stderr


def test_an_input_that_is_not_an_image_batch_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])],
    )
    path = tmp_path / "vector.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    done = _cli("convert", "--onnx", path, "-o", tmp_path / "out")
    assert done.returncode == 1 and "has rank 2; facezoo converts 4-D image models" in done.stderr
    assert not (tmp_path / "out" / "vector").exists()
