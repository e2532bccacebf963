"""model_zoo.yml: the real registry loads; every malformed entry names file, model and field."""

from __future__ import annotations

import copy

import pytest
import yaml

from facezoo.errors import RegistryError
from facezoo.registry import PACKAGED_ZOO, load_zoo


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(PACKAGED_ZOO.read_text(encoding="utf-8"))


def test_real_registry_loads():
    zoo = load_zoo()
    assert zoo.path == PACKAGED_ZOO
    assert zoo.names() == [
        "arcface", "sphereface", "lightcnn", "mindface-arcface-mobilefacenet", "mindface-arcface-r100",
        "face-recognition-resnet34-arcface", "face-recognition-sface", "yunet", "mtcnn", "scrfd",
    ]
    for spec in zoo.models:
        for model_file in spec.files:
            assert model_file.sources or spec.how_to_obtain, spec.name
            assert model_file.sha256 or not model_file.sources, spec.name
    resnet = zoo.get("face-recognition-resnet34-arcface").files[0]
    assert resnet.unpack == "zip" and resnet.size == 127123169 and len(resnet.members) == 2
    assert zoo.get("LightCNN").name == "lightcnn"  # aliases, case-insensitive
    sface = zoo.get("sface")
    assert sface.framework == "onnx" and sface.conversion.model == sface.files[0].name
    assert sface.files[0].size == 38696353 and sface.verification_threshold == 0.363


def test_select_patterns(document):
    zoo = load_zoo()
    assert [m.name for m in zoo.select("MINDFACE-*")] == ["mindface-arcface-mobilefacenet", "mindface-arcface-r100"]
    assert [m.name for m in zoo.select(["lightcnn,arcface", "arcface"])] == ["lightcnn", "arcface"]


def _broken(tmp_path, document, mutate):
    data = copy.deepcopy(document)
    mutate(data)
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_zoo(path)
    return str(info.value), path


def _arcface(data):
    return data["models"][0]


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda d: _arcface(d).update(colour="red"), "colour", "unknown key"),
        (lambda d: _arcface(d)["files"][0].update(mirror="x"), "files[0].mirror", "unknown key"),
        (lambda d: _arcface(d)["output"].update(dim="512"), "output.dim", "expected an integer"),
        (lambda d: _arcface(d).update(files="a.ckpt"), "files", "expected a list"),
        (lambda d: _arcface(d)["files"][0].update(sha256="abc123"), "files[0].sha256", "expected 64 hex characters"),
        (lambda d: _arcface(d)["files"][0].update(sha256="A" * 64), "files[0].sha256", "expected 64 hex characters"),
        (lambda d: _arcface(d)["files"][0].pop("sha256"), "files[0].sha256", "required for a file with sources"),
        (lambda d: _arcface(d).pop("license"), "license", "required key is missing"),
        (lambda d: _arcface(d)["input"].pop("shape"), "input.shape", "required key is missing"),
        (lambda d: _arcface(d)["input"].update(channel_order="RGBA"), "input.channel_order", "expected one of"),
        (lambda d: _arcface(d)["files"][0].update(unpack="rar"), "files[0].unpack", "expected one of zip, tar, tar.gz"),
        (lambda d: _arcface(d)["conversion"].update(checkpoint="other.ckpt"), "conversion.checkpoint", "must name"),
        (lambda d: _arcface(d).update(check_thresholds={"FP8": 0.9}), "check_thresholds.FP8", "unknown precision"),
        (lambda d: _arcface(d).update(check_thresholds={"FP16": 1.5}), "check_thresholds.FP16", "a cosine threshold must lie in (0, 1]"),
        (lambda d: _arcface(d).update(check_thresholds={"FP16": "high"}), "check_thresholds.FP16", "expected a number"),
        (lambda d: _arcface(d)["input"].update(layout="NHWC"), "input.layout", "mindspore models take NCHW input"),
        (lambda d: _arcface(d)["input"].update(layout="CHWN"), "input.layout", "expected one of NCHW, NHWC"),
        (lambda d: _arcface(d).update(verification_threshold=3.0), "verification_threshold", "a cosine threshold must lie in [-1, 1]"),
    ],
)
def test_malformed_entry_names_file_model_and_field(tmp_path, document, mutate, field, message):
    text, path = _broken(tmp_path, document, mutate)
    assert str(path) in text
    assert "model 'arcface'" in text
    assert f": {field}: {message}" in text


def test_duplicate_name(tmp_path, document):
    text, path = _broken(tmp_path, document, lambda d: d["models"].append(copy.deepcopy(d["models"][2])))
    assert str(path) in text and "model 'lightcnn'" in text and "name 'lightcnn' is already used" in text


def test_alias_clashing_with_a_name(tmp_path, document):
    text, _ = _broken(tmp_path, document, lambda d: d["models"][1].update(aliases=["ARCFACE"]))
    assert "model 'sphereface'" in text and "already used by model 'arcface'" in text


def test_entry_that_is_not_a_mapping(tmp_path, document):
    text, path = _broken(tmp_path, document, lambda d: d["models"].append("just a string"))
    assert str(path) in text and f"models[{len(document['models'])}]" in text and "expected a mapping" in text


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("models: [unclosed", encoding="utf-8")
    with pytest.raises(RegistryError, match=f"{bad}: not valid YAML"):
        load_zoo(bad)
    with pytest.raises(RegistryError, match="cannot read registry"):
        load_zoo(tmp_path / "absent.yml")


def test_unknown_model_in_select():
    zoo = load_zoo()
    with pytest.raises(RegistryError) as info:
        zoo.select("arcface,nosuch*")
    assert "model_zoo.yml" in str(info.value) and "no model matches 'nosuch*'" in str(info.value)
    assert "known models: arcface, sphereface" in str(info.value)
    with pytest.raises(RegistryError, match="no model named 'nosuch'"):
        zoo.get("nosuch")


def test_environment_selects_another_registry(tmp_path, document, monkeypatch):
    data = copy.deepcopy(document)
    data["models"] = data["models"][2:3]
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("FACEZOO_ZOO", str(other))
    zoo = load_zoo()
    assert zoo.path == other and zoo.names() == ["lightcnn"]
    assert load_zoo(PACKAGED_ZOO).names()[0] == "arcface"  # an explicit path wins


def _sface(data):
    return next(m for m in data["models"] if m["name"] == "face-recognition-sface")


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda d: _sface(d)["conversion"].pop("model"), "conversion.model", "required for ONNX models"),
        (lambda d: _sface(d)["conversion"].update(model="other.onnx"), "conversion.model", "must name one of"),
        (lambda d: _sface(d)["input"].update(shape=[1, 112, 112]), "input.shape", "expected 4 positive dimensions"),
        (lambda d: _sface(d)["input"].update(layout="NHWC"), "input.shape", "RGB input must have 3 channels"),
    ],
)
def test_malformed_onnx_entry_names_the_field(tmp_path, document, mutate, field, message):
    text, path = _broken(tmp_path, document, mutate)
    assert "model 'face-recognition-sface'" in text and f": {field}: {message}" in text


def test_check_thresholds_missing_keys_take_the_gates_defaults(tmp_path, document):
    from facezoo.gates import GATES

    data = copy.deepcopy(document)
    _arcface(data)["check_thresholds"] = {"FP16": 0.9995}
    path = tmp_path / "zoo.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    thresholds = load_zoo(path).get("arcface").check_thresholds
    assert thresholds["FP16"] == 0.9995
    assert thresholds["FP32"] == GATES["FP32"].min_cosine and thresholds["INT8"] == GATES["INT8"].min_cosine


def test_nhwc_onnx_entry_reads_height_width_and_channels_in_its_layout(tmp_path, document):
    data = copy.deepcopy(document)
    entry = _sface(data)
    entry["input"].update(shape=[2, 112, 96, 3], layout="NHWC")
    path = tmp_path / "zoo.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    contract = load_zoo(path).get("sface").input
    assert (contract.batch, contract.height, contract.width, contract.channels) == (2, 112, 96, 3)
