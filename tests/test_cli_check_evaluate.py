"""`facezoo check` and `facezoo evaluate` end to end on a converted stand-in and generated face sets."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
from typer.testing import CliRunner

from facezoo.accuracy.synthetic import write_synthetic_bin, write_synthetic_lfw
from facezoo.cli.evaluate import default_protocol, provenance_label
from facezoo.registry import load_zoo
from facezoo.cli.main import app

NAME = "mindface-arcface-mobilefacenet"
runner = CliRunner()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("verification-sets")
    return {
        "bin": write_synthetic_bin(root / "synthetic_lfw.bin", folds=10, per_fold=3),
        "lfw": write_synthetic_lfw(root / "lfw", folds=10, per_fold=3, seed=1),
    }


def _common(converted_standin):
    return ["--zoo", str(converted_standin.zoo_path)]


# ----------------------------------------------------------------------------- check


def test_check_passes_and_writes_a_json_report(converted_standin, tmp_path):
    report = tmp_path / "out" / "agreement.json"
    result = runner.invoke(app, [
        "check", NAME, *_common(converted_standin), "-d", str(converted_standin.download_dir), "-c", str(converted_standin.converted_dir),
        "--samples", "6", "--json", str(report), "--formats", "onnx", "--precisions", "FP32",
    ])
    assert result.exit_code == 0, result.output
    assert "all 2 artifact/backend checks passed" in result.output
    document = json.loads(report.read_text())
    assert document["kind"] == "facezoo-agreement" and document["passed"] is True and document["failed"] == []
    (model,) = document["models"]
    assert model["model"] == NAME and model["samples"] == 6 and model["pairs"] == 15
    assert model["check_thresholds"]["FP32"] == 0.99999
    for entry in model["results"]:
        assert set(entry) >= {"min_cosine", "mean_cosine", "max_abs_error", "max_relative_error", "agreement",
                              "flipped", "flipped_pairs", "cosine_threshold", "passed"}
    assert sorted(p.name for p in report.parent.iterdir()) == ["agreement.json"]  # no temporary left


def test_check_without_converted_artifacts_exits_1(converted_standin, tmp_path):
    result = runner.invoke(app, [
        "check", NAME, *_common(converted_standin), "-d", str(converted_standin.download_dir), "-c", str(tmp_path / "nothing"),
    ])
    assert result.exit_code == 1
    assert "no converted artifacts of mindface-arcface-mobilefacenet" in result.output
    assert "facezoo convert" in result.output
    # only FP16 asked for: an FP32 artifact does not count
    only_fp32 = tmp_path / "only-fp32"
    shutil.copytree(converted_standin.converted_dir / NAME / "FP32", only_fp32 / NAME / "FP32")
    result = runner.invoke(app, [
        "check", NAME, *_common(converted_standin), "-d", str(converted_standin.download_dir), "-c", str(only_fp32),
        "--precisions", "FP16", "--formats", "onnx,openvino",
    ])
    assert result.exit_code == 1 and "<FP16>" in result.output
    result = runner.invoke(app, ["check", NAME, *_common(converted_standin), "--formats", "tflite"])
    assert result.exit_code == 1 and "--formats: unknown value tflite" in result.output


def test_check_without_the_original_exits_1(converted_standin, tmp_path):
    result = runner.invoke(app, [
        "check", NAME, *_common(converted_standin), "-d", str(tmp_path / "no-downloads"), "-c", str(converted_standin.converted_dir),
    ])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "facezoo download" in result.output


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_bin_with_flip_json_and_plot(converted_standin, datasets, tmp_path):
    out, plot = tmp_path / "eval.json", tmp_path / "roc.png"
    result = runner.invoke(app, [
        "evaluate", NAME, "--dataset", str(datasets["bin"]), "-c", str(converted_standin.converted_dir), *_common(converted_standin),
        "--flip", "--json", str(out), "--plot", str(plot), "--batch-size", "16",
    ])
    assert result.exit_code == 0, result.output
    assert "Accuracy-Flip" in result.output and "n/a" in result.output
    assert "NOT the model's accuracy" in result.output and "published" in result.output
    document = json.loads(out.read_text())
    assert document["kind"] == "facezoo-evaluation" and document["model"] == NAME
    assert document["protocol"] == "insightface" and document["flip"] is True  # the registry's protocol
    assert document["dataset"]["synthetic"] is True and document["dataset"]["pairs"] == 60
    assert document["weights"] == "stand-in" and document["is_model_accuracy"] is False
    assert "SYNTHETIC" in document["label"] and "STAND-IN" in document["label"]
    measured = document["measured"]
    for key in ("accuracy", "accuracy_flip", "1-EER", "EER", "AUC"):
        assert 0.0 <= measured[key] <= 1.0
    assert measured["TAR@FAR=1e-1"] is not None and measured["TAR@FAR=1e-2"] is None  # 30 different pairs
    accuracy = document["metrics"]["accuracy_flip"]
    assert len(accuracy["fold_accuracies"]) == 10 and accuracy["protocol"] == "insightface"
    assert document["published"] == [{
        "dataset": "lfw", "metric": "accuracy", "value": 0.987, "source": "mindface recognition README",
        "protocol": "", "label": "published by the model's authors, not measured here"}]
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert document["plot"] == str(plot)


def test_evaluate_lfw_folder_by_path_with_another_backend(converted_standin, datasets, tmp_path):
    onnx_path = converted_standin.converted_dir / NAME / "FP32" / f"{NAME}.onnx"
    out = tmp_path / "eval.json"
    result = runner.invoke(app, [
        "evaluate", str(onnx_path), "--dataset", str(datasets["lfw"]), "--protocol", "lfw-cosine",
        "--backend", "openvino", "--json", str(out), *_common(converted_standin),
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["protocol"] == "lfw-cosine" and document["artifact"]["backend"] == "openvino"
    assert document["dataset"]["kind"] == "lfw-folder" and document["dataset"]["synthetic"] is True
    assert document["metrics"]["accuracy"]["protocol"] == "lfw-cosine" and document["metrics"]["accuracy_flip"] is None
    roc = document["metrics"]["roc"]
    assert roc["positives"] == 30 and roc["negatives"] == 30


def test_evaluate_roc_protocol_and_errors(converted_standin, datasets, tmp_path):
    common = ["-c", str(converted_standin.converted_dir), *_common(converted_standin)]
    result = runner.invoke(app, ["evaluate", NAME, "--dataset", str(datasets["bin"]), "--protocol", "roc", *common])
    assert result.exit_code == 0, result.output
    assert "Accuracy (" not in result.output and "1 − EER" in result.output
    result = runner.invoke(app, ["evaluate", NAME, "--dataset", str(datasets["bin"]), "--protocol", "nope", *common])
    assert result.exit_code == 1 and "unknown protocol 'nope'" in result.output
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps((os.system, ["true"]), protocol=2))
    result = runner.invoke(app, ["evaluate", NAME, "--dataset", str(evil), *common])
    assert result.exit_code == 1 and "refusing to load" in result.output
    result = runner.invoke(app, ["evaluate", "lightcnn", "--dataset", str(datasets["bin"]), *common])
    assert result.exit_code == 1 and "no converted" in result.output


def test_default_protocols_follow_the_registry():
    zoo = load_zoo()
    assert {spec.name: default_protocol(spec) for spec in zoo.models} == {
        "arcface": "insightface",
        "sphereface": "lfw-cosine",
        "lightcnn": "roc",
        "mindface-arcface-mobilefacenet": "insightface",
        "mindface-arcface-r100": "insightface",
        "face-recognition-resnet34-arcface": "insightface",
        "face-recognition-sface": "insightface",
        "yunet": "widerface",
        "mtcnn": "widerface",
        "scrfd": "widerface",
    }
    assert default_protocol(None) == "insightface"


def test_provenance_labels():
    assert provenance_label("published", False) == (True, "measured on this artifact with the published weights")
    is_model, label = provenance_label("unverified", False)
    assert is_model and "without a published checksum" in label
    for weights, synthetic in (("stand-in", False), ("not-published", False), ("published", True)):
        is_model, label = provenance_label(weights, synthetic)
        assert not is_model and "NOT the model's accuracy" in label
