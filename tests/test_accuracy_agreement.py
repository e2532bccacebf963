"""`facezoo check`: converted artifacts against the original model; broken artifacts must fail.

One stand-in (mindface-arcface-mobilefacenet, the smallest network) converted to ONNX FP32; the
original network runs in MindSpore, memoized per process, so the many checks cost one forward.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from facezoo.accuracy.agreement import THRESHOLD_FROM_REGISTRY, THRESHOLD_FROM_SEPARATION, check_models
from facezoo.numerics import pair_indices
from facezoo.preprocessing import ImageError
from facezoo.tasks.recognition import sample_faces
from facezoo.cli.main import app
from facezoo.registry import load_zoo

NAME = "mindface-arcface-mobilefacenet"
runner = CliRunner()


@pytest.fixture(scope="module")
def spec(converted_standin):
    return load_zoo(converted_standin.zoo_path).get(NAME)


# ----------------------------------------------------------------------------- broken artifacts


def _initializer(model, name):
    return next(i for i in model.graph.initializer if i.name == name)


def _edit(model, name, change):
    init = _initializer(model, name)
    init.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(init).copy()).astype(np.float32), name))


def _first(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def _unswap_channels(model):
    """The RGB->BGR swap folded into conv 1 undone: the model now wants RGB but says BGR."""
    _edit(model, _first(model, "Conv").input[1], lambda w: w[:, ::-1])


def _normalization_0_255(model):
    """x/255 instead of (x - 127.5)/127.5."""
    _edit(model, _first(model, "Sub").input[1], lambda m: m * 0)
    _edit(model, _first(model, "Mul").input[1], lambda s: s * 0 + 1 / 255)


def _normalization_std_128(model):
    """A subtle one: (x - 127.5)/128 instead of /127.5."""
    _edit(model, _first(model, "Mul").input[1], lambda s: s * 0 + 1 / 128)


def _perturb_one_weight(model):
    """One scalar of the second convolution moved by one standard deviation of its tensor."""
    def change(w):
        flat = w.reshape(-1)
        flat[17] += w.std()
        return w

    _edit(model, [n for n in model.graph.node if n.op_type == "Conv"][1].input[1], change)


BROKEN = {
    "channels-not-swapped": _unswap_channels,
    "normalization-0-255": _normalization_0_255,
    "normalization-std-128": _normalization_std_128,
    "one-weight-perturbed": _perturb_one_weight,
}


def _copy_onnx(converted_standin, converted_dir):
    """converted_dir/<NAME>/FP32/ holding only the good FP32 ONNX and its model card."""
    good = converted_standin.converted_dir / NAME / "FP32"
    folder = converted_dir / NAME / "FP32"
    folder.mkdir(parents=True)
    for name in (f"{NAME}.onnx", "model_card.json"):
        shutil.copy(good / name, folder / name)
    return folder / f"{NAME}.onnx"


def _write_broken(converted_standin, tmp_path, kind):
    """A converted folder whose FP32 ONNX is the good one with `kind` of damage."""
    target = _copy_onnx(converted_standin, tmp_path / kind)
    model = onnx.load(str(target))
    BROKEN[kind](model)
    onnx.save(model, str(target))
    return tmp_path / kind, target


# ----------------------------------------------------------------------------- tests


def test_converted_artifacts_agree_with_the_original(converted_standin, spec):
    """Every format, precision and backend: ONNX (ORT, OpenVINO), IR (OpenVINO), MINDIR (MindSpore)."""
    (report,) = check_models([spec], converted_standin.download_dir, converted_standin.converted_dir)
    assert report.passed, report
    combos = {(r.format, r.precision, r.backend) for r in report.results}
    assert combos == {(f, p, b) for p in ("FP32", "FP16") for f, b in (
        ("onnx", "onnxruntime"), ("onnx", "openvino"), ("openvino", "openvino"), ("mindir", "mindspore"))}
    assert report.samples == 8 and report.pairs == 28 and report.real_images == 0
    assert report.sample_sources[0] == "synthetic:colour-asymmetric"
    assert report.same_pairs == 3  # identities 3000..3002 appear twice
    assert report.threshold_source == THRESHOLD_FROM_SEPARATION
    assert -1.0 < report.decision_threshold < 1.0
    assert report.weights == "stand-in"
    for result in report.results:
        assert result.metrics["min_cosine"] >= {"FP32": 0.99999, "FP16": 0.999}[result.precision]
        if result.precision == "FP32":
            assert result.metrics["max_relative_error"] <= 1e-3
        assert result.metrics["agreement"] == 1.0 and result.metrics["flipped"] == 0 and result.bounds["allowed_flips"] == 0
    json.dumps(report.as_dict(), allow_nan=False)


def test_registry_threshold_is_used_when_set(converted_standin, spec):
    with_threshold = dataclasses.replace(spec, verification_threshold=0.3)
    (report,) = check_models([with_threshold], converted_standin.download_dir, converted_standin.converted_dir,
                             formats=["onnx"], precisions=["FP32"])
    assert report.passed
    assert report.decision_threshold == 0.3 and report.threshold_source == THRESHOLD_FROM_REGISTRY


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_artifact_fails_the_check(converted_standin, tmp_path, kind):
    converted, broken = _write_broken(converted_standin, tmp_path, kind)
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, [
        "check", NAME, "--zoo", str(converted_standin.zoo_path), "-d", str(converted_standin.download_dir), "-c", str(converted),
        "--json", str(report_path),
    ])
    assert result.exit_code == 1, result.output
    assert f"FAILED: {broken} (onnxruntime), {broken} (openvino)" in result.output
    document = json.loads(report_path.read_text())
    assert document["passed"] is False
    results = document["models"][0]["results"]
    assert {r["backend"] for r in results} == {"onnxruntime", "openvino"}
    for entry in results:
        assert entry["passed"] is False and entry["file"] == str(broken)
        assert "min cosine" in entry["reason"] and "max relative error" in entry["reason"]
    if kind == "channels-not-swapped":
        # the colour-asymmetric probe moves the most, and same/different decisions flip
        assert all(entry["flipped"] > 0 and "decisions flipped" in entry["reason"] for entry in results)


def test_unloadable_artifact_fails_with_the_reason(converted_standin, spec, tmp_path):
    _copy_onnx(converted_standin, tmp_path).write_bytes(b"not an onnx file")
    (report,) = check_models([spec], converted_standin.download_dir, tmp_path)
    assert not report.passed
    assert all("cannot load" in r.reason for r in report.results)
    json.dumps(report.as_dict(), allow_nan=False)  # NaN metrics become null


def test_threshold_overrides_apply(converted_standin, spec):
    (report,) = check_models([spec], converted_standin.download_dir, converted_standin.converted_dir, thresholds={"FP32": 1.5},
                             formats=["onnx"], precisions=["FP32"])
    assert not report.passed and report.check_thresholds["FP32"] == 1.5
    assert all("min cosine" in r.reason for r in report.results)


def test_nothing_converted_is_an_error(converted_standin, spec, tmp_path):
    (report,) = check_models([spec], converted_standin.download_dir, tmp_path / "empty")
    assert not report.passed and "no converted artifacts" in report.error


def test_sample_faces_from_a_folder_fit_the_model_input(tmp_path):
    from facezoo.faces import synthetic_face

    (tmp_path / "Ann").mkdir()
    crop = synthetic_face(21, 0)
    cv2.imwrite(str(tmp_path / "Ann" / "Ann_0001.png"), crop)
    cv2.imwrite(str(tmp_path / "Ann" / "Ann_0002.png"), cv2.resize(synthetic_face(21, 1), (250, 250)))
    cv2.imwrite(str(tmp_path / "Bob_0001.jpg"), synthetic_face(22, 0))
    faces = sample_faces((112, 96), tmp_path, samples=6)
    assert faces.images.shape == (6, 112, 96, 3) and faces.real == 3 and faces.synthetic == 3
    np.testing.assert_array_equal(faces.images[0], crop[:, 8:104])  # 112-wide aligned crop: 8 px off each side
    assert faces.identities[:3] == ["real:Ann", "real:Ann", "real:Bob"]
    assert faces.sources[3] == "synthetic:colour-asymmetric"
    # real images never crowd out the colour-asymmetric probe
    assert sample_faces((112, 112), tmp_path, samples=2).sources == [str(tmp_path / "Ann" / "Ann_0001.png"),
                                                                      "synthetic:colour-asymmetric"]
    with pytest.raises(ImageError, match="at least 2"):
        sample_faces((112, 112), None, samples=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no .jpg"):
        sample_faces((112, 112), tmp_path / "empty")


def test_pairs():
    assert pair_indices(4).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_check_runs_the_batch_gate_and_counts_every_flip(converted_standin, spec, tmp_path):
    """The check compares the faces as one batch with the same faces one at a time (it used to
    report 0.0 without running it), and by default one flipped decision fails; --max-flips allows some."""
    (good,) = check_models([spec], converted_standin.download_dir, converted_standin.converted_dir,
                           formats=["onnx"], precisions=["FP32"])
    for result in good.results:
        assert result.metrics["batch_min_cosine"] > 0.99999 and result.metrics["batch_relative_diff"] < 1e-4
        assert result.bounds["allowed_flips"] == 0
    converted, _ = _write_broken(converted_standin, tmp_path, "channels-not-swapped")
    (strict,) = check_models([spec], converted_standin.download_dir, converted)
    (lenient,) = check_models([spec], converted_standin.download_dir, converted, max_flips=1000)
    for result in strict.results:
        assert result.metrics["flipped"] > 0 and "decisions flipped" in result.reason
    for result in lenient.results:
        assert result.bounds["allowed_flips"] == 1000 and "decisions flipped" not in result.reason
        assert not result.passed  # its cosine still fails it
    done = runner.invoke(app, ["check", NAME, "--zoo", str(converted_standin.zoo_path), "-d",
                               str(converted_standin.download_dir), "-c", str(converted), "--max-flips", "-1"])
    assert done.exit_code != 0 and "--max-flips" in done.output
