"""The MindSpore conversion path on stand-in checkpoints: every format and precision."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from facezoo.atomic import current_umask
from facezoo.sources.mindspore.source import MindSporeSource
from facezoo.conversion import ConversionRequest, convert_model
from facezoo.faces import probe_images
from facezoo.preprocessing import to_model_input
from facezoo.runtime.backends import open_backend

REPO = Path(__file__).resolve().parents[1]


def _request(zoo, root, name, out, formats=("mindir", "onnx", "openvino"), precisions=("FP32", "FP16")):
    return ConversionRequest(zoo.get(name), root, out, list(formats), list(precisions))


def test_every_format_and_precision_is_written_with_a_model_card(converted_mobilefacenet):
    zoo, _, out, result = converted_mobilefacenet
    name = "mindface-arcface-mobilefacenet"
    for precision in ("FP32", "FP16"):
        folder = out / name / precision
        for suffix in (".mindir", ".onnx", ".xml", ".bin"):
            assert (folder / f"{name}{suffix}").is_file()
        card = json.loads((folder / "model_card.json").read_text())
        assert card["precision"] == precision
        assert card["input"]["channel_order"] == "BGR" and card["input"]["shape"] == [-1, 3, 112, 112]
        assert card["output"] == {"name": "embedding", "shape": [-1, 512], "l2_normalized": False}
        assert set(card["files"]) >= {f"{name}.onnx", f"{name}.xml", f"{name}.bin", f"{name}.mindir"}
        assert card["validation"] and all(check["passed"] for check in card["validation"])
        assert card["tools"]["mindspore"].startswith("2.")
    # nothing left behind but the published folders
    assert sorted(p.name for p in out.iterdir()) == [name]
    # readable as any new file is (mkdtemp makes 0700 folders, mindspore.export 0400 files)
    umask = current_umask()
    for path in (out / name).rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o777 if path.is_dir() else 0o666) & ~umask, path
    assert {c.backend for c in result.checks} == {"onnxruntime", "openvino", "mindspore"}
    fp32 = [c for c in result.checks if c.precision == "FP32"]
    assert min(c.metric("min_cosine") for c in fp32) >= 0.99999


def test_onnx_is_checked_opset_pinned_with_contract_names(converted_mobilefacenet):
    zoo, _, out, _ = converted_mobilefacenet
    model = onnx.load(str(out / "mindface-arcface-mobilefacenet/FP32/mindface-arcface-mobilefacenet.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (graph_input,) = model.graph.input
    assert graph_input.name == "data"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "N"
    assert [o.name for o in model.graph.output] == ["embedding"]


@pytest.mark.parametrize("fmt, backend", [("onnx", "onnxruntime"), ("onnx", "openvino"), ("xml", "openvino"), ("mindir", "mindspore")])
def test_channel_swap_is_inside_the_converted_model(converted_mobilefacenet, fmt, backend):
    """Converted(BGR) = original(RGB); feeding the converted model RGB must give something else."""
    zoo, root, out, _ = converted_mobilefacenet
    spec = zoo.get("mindface-arcface-mobilefacenet")
    source = MindSporeSource(spec, root / spec.name / spec.conversion.checkpoint)
    images = probe_images(3, (112, 112))
    reference = source.reference(images)["embedding"]
    backend_ = open_backend(out / spec.name / "FP32" / f"{spec.name}.{fmt}", backend)
    bgr = backend_.infer(to_model_input(images, "BGR"))["embedding"]
    rgb = backend_.infer(to_model_input(images, "RGB"))["embedding"]
    cos_bgr = _cosines(bgr, reference)
    cos_rgb = _cosines(rgb, reference)
    assert cos_bgr.min() > 0.99999
    # the colour-asymmetric probe tells the orders apart
    assert cos_rgb.min() < 0.999


def test_batch_n_equals_n_runs_of_batch_one_on_every_backend(converted_mobilefacenet):
    zoo, _, out, _ = converted_mobilefacenet
    folder = out / "mindface-arcface-mobilefacenet" / "FP32"
    batch = to_model_input(probe_images(5, (112, 112)), "BGR")
    for path, backend in [("m.onnx", "onnxruntime"), ("m.onnx", "openvino"), ("m.xml", "openvino"), ("m.mindir", "mindspore")]:
        file = folder / path.replace("m.", "mindface-arcface-mobilefacenet.")
        runner = open_backend(file, backend)
        together = runner.infer(batch)["embedding"]
        alone = np.concatenate([runner.infer(batch[i : i + 1])["embedding"] for i in range(len(batch))])
        np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4 * np.abs(alone).max(), err_msg=f"{file} {backend}")


def test_fp32_ir_keeps_fp32_weights_and_fp16_ir_compresses_them(converted_mobilefacenet):
    _, _, out, _ = converted_mobilefacenet
    name = "mindface-arcface-mobilefacenet"
    fp32 = (out / name / "FP32" / f"{name}.bin").stat().st_size
    fp16 = (out / name / "FP16" / f"{name}.bin").stat().st_size
    assert fp16 < 0.6 * fp32
    xml16 = (out / name / "FP16" / f"{name}.xml").read_text()
    assert 'element_type="f16"' in xml16
    assert 'element_type="f16"' not in (out / name / "FP32" / f"{name}.xml").read_text()


def test_gray_model_converts_and_keeps_only_the_feature(standin_models, tmp_path):
    zoo, root = standin_models
    result = convert_model(_request(zoo, root, "lightcnn", tmp_path, formats=("onnx",), precisions=("FP32",)))
    assert result.passed, result.error
    model = onnx.load(str(tmp_path / "lightcnn/FP32/lightcnn.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 1
    (output,) = model.graph.output
    assert output.type.tensor_type.shape.dim[1].dim_value == 256


def test_bgr_original_needs_no_swap(standin_models, tmp_path):
    """sphereface is BGR upstream: its converted model is fed exactly what the original is."""
    zoo, root = standin_models
    result = convert_model(_request(zoo, root, "sphereface", tmp_path, formats=("onnx",), precisions=("FP32",)))
    assert result.passed, result.error
    assert json.loads((tmp_path / "sphereface/FP32/model_card.json").read_text())["input"]["shape"] == [-1, 3, 112, 96]


class _PerturbedSource(MindSporeSource):
    """A deliberately broken exporter: one weight of the exported ONNX is changed."""

    def export_onnx(self, path: Path) -> None:
        super().export_onnx(path)
        model = onnx.load(str(path))
        biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        array = onnx.numpy_helper.to_array(biggest).copy()
        array.flat[: array.size // 4] *= -1.0
        biggest.CopyFrom(onnx.numpy_helper.from_array(array, biggest.name))
        onnx.save(model, str(path))


def test_a_broken_artifact_fails_validation_and_leaves_nothing(standin_models, tmp_path, monkeypatch):
    zoo, root = standin_models
    import dataclasses

    from facezoo import sources

    entry = sources.source_for("mindspore")
    monkeypatch.setitem(sources._REGISTERED, "mindspore", dataclasses.replace(entry, source=_PerturbedSource))
    result = convert_model(_request(zoo, root, "lightcnn", tmp_path, formats=("onnx",), precisions=("FP32",)))
    assert not result.passed
    assert "min cosine" in result.error and "onnx FP32" in result.error
    assert list(tmp_path.iterdir()) == []


def test_convert_cli_reports_missing_download_clearly(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO / "converter.py"), "--name", "arcface", "--download_dir", str(tmp_path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert "arcface" in completed.stderr and "does not exist" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out" / "arcface").exists()


def test_convert_cli_rejects_unknown_format(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "facezoo.cli.main", "convert", "lightcnn", "--formats", "tflite", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert "unknown format 'tflite'" in completed.stderr


def test_dry_run_prints_steps_and_writes_nothing(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO / "converter.py"), "--name", "sphere*", "--dry_run", "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert "export onnx FP16" in completed.stdout and "sphereface.xml" in completed.stdout
    assert not (tmp_path / "o").exists()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_convert_onnx_option_imports_any_supported_graph_into_mindir(converted_mobilefacenet, tmp_path):
    _, _, out, _ = converted_mobilefacenet
    source = out / "mindface-arcface-mobilefacenet" / "FP32" / "mindface-arcface-mobilefacenet.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "facezoo.cli.main", "convert", "--onnx", str(source), "--formats", "mindir",
         "--precisions", "FP32", "-o", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    mindir = tmp_path / "mindface-arcface-mobilefacenet" / "FP32" / "mindface-arcface-mobilefacenet.mindir"
    batch = to_model_input(probe_images(2, (112, 112)), "BGR")
    expected = open_backend(source, "onnxruntime").infer(batch)["embedding"]
    np.testing.assert_allclose(open_backend(mindir).infer(batch)["embedding"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_convert_onnx_option_names_the_first_unsupported_op(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["data"], ["r"], name="fine"), helper.make_node("Hardmax", ["r"], ["out"], name="odd_one")],
        "g",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 16, 16])],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    done = subprocess.run(
        [sys.executable, "-m", "facezoo.cli.main", "convert", "--onnx", str(path), "--formats", "mindir", "-o", str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert done.returncode == 1
    assert "unsupported ONNX operator Hardmax (node 'odd_one')" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o" / "odd").exists()


def test_a_failing_precision_leaves_the_passing_one_published(standin_models, tmp_path):
    """FP16 held to an impossible cosine fails; FP32 is still published, an older FP16 folder stays."""
    import dataclasses

    zoo, root = standin_models
    spec = zoo.get("sphereface")
    strict = dataclasses.replace(spec, check_thresholds={"FP16": 0.99999999})
    assert strict.check_thresholds["FP32"] == 0.99999  # the other keys keep the gates' defaults
    old = tmp_path / "sphereface" / "FP16"
    old.mkdir(parents=True)
    (old / "earlier.txt").write_text("an earlier conversion")
    result = convert_model(ConversionRequest(strict, root, tmp_path, ["onnx"], ["FP32", "FP16"]))
    assert not result.passed and result.published == ["FP32"] and result.failed_precisions == ["FP16"]
    assert "onnx FP16 on onnxruntime: min cosine" in result.error and "< 0.99999999" in result.error
    assert "(FP16 not published)" in result.error
    assert (tmp_path / "sphereface" / "FP32" / "sphereface.onnx").is_file()
    assert sorted(p.name for p in old.iterdir()) == ["earlier.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sphereface"]  # no scratch left behind
