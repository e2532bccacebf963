"""`facezoo export`: Triton and OVMS repositories, parsed back as the servers would, and run again."""

from __future__ import annotations

import importlib.util
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import tritonclient
from google.protobuf import text_format
from typer.testing import CliRunner

from facezoo.atomic import current_umask
from facezoo.cli.main import app
from facezoo.faces import probe_images
from facezoo.preprocessing import to_model_input
from facezoo.runtime import load

NAME = "mindface-arcface-mobilefacenet"
runner = CliRunner()


def model_config_pb2():
    """Triton's ModelConfig protobuf as tritonclient ships it (grpc/model_config_pb2.py).

    Loaded from its file: importing tritonclient.grpc needs the grpc extra, whose protobuf pin
    conflicts with mindspore's.
    """
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(tmp_path, converted_standin, *args: str):
    result = runner.invoke(app, ["export", NAME, "-c", str(converted_standin.converted_dir), "-o", str(tmp_path / "repo"),
                                 *args])
    return result


def _same_rows(exported: Path, original: Path) -> None:
    batch = to_model_input(probe_images(3, (112, 112)), "BGR")
    with load(exported) as model:
        assert model.artifact.card is None  # names and shapes below come from the exported file itself
        assert model.input_spec.name == "data" and [o.name for o in model.output_specs] == ["embedding"]
        got = model.infer(batch)
    with load(original) as model:
        expected = model.infer(batch)
    assert got.keys() == expected.keys() == {"embedding"}
    np.testing.assert_array_equal(got["embedding"], expected["embedding"])


@pytest.mark.parametrize("fmt, backend, files", [
    (None, "onnxruntime", ["model.onnx"]),
    ("openvino", "openvino", ["model.bin", "model.xml"]),
])
def test_triton_repository_parses_as_model_config_and_runs(tmp_path, converted_standin, fmt, backend, files):
    args = ["--to", "triton", "--max-batch", "16", "--max-delay-ms", "2", "--instances", "2"]
    result = _export(tmp_path, converted_standin, *args, *(["--format", fmt] if fmt else []))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "repo" / NAME
    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2().ModelConfig())
    assert config.name == NAME and config.backend == backend and config.max_batch_size == 16
    assert [(i.name, list(i.dims)) for i in config.input] == [("data", [3, 112, 112])]
    assert config.input[0].data_type == model_config_pb2().TYPE_FP32
    assert [(o.name, list(o.dims)) for o in config.output] == [("embedding", [512])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(config.dynamic_batching.preferred_batch_size) == [16]
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2().ModelInstanceGroup.KIND_CPU)]
    assert sorted(p.name for p in (folder / "1").iterdir()) == files
    assert (folder / "model_card.json").is_file()
    umask = current_umask()  # a server in a container runs as another user: not mkdtemp's 0700
    for path in [folder, *folder.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o777 if path.is_dir() else 0o666) & ~umask, path
    suffix = ".onnx" if backend == "onnxruntime" else ".xml"
    _same_rows(folder / "1" / f"model{suffix}", converted_standin.converted_dir / NAME / "FP32" / f"{NAME}{suffix}")


def test_ovms_repository_config_and_files(tmp_path, converted_standin):
    repo = tmp_path / "repo"
    repo.mkdir()
    other = {"config": {"name": "someone-else", "base_path": "/models/other"}}
    (repo / "config.json").write_text(json.dumps({"model_config_list": [other]}))
    for _ in range(2):  # exporting again replaces the entry and the folder
        result = _export(tmp_path, converted_standin, "--to", "ovms", "--precision", "FP16")
        assert result.exit_code == 0, result.output
    document = json.loads((repo / "config.json").read_text())
    entries = [item["config"] for item in document["model_config_list"]]
    assert [e["name"] for e in entries] == ["someone-else", NAME]
    ours = entries[1]
    assert ours["base_path"] == NAME and ours["shape"] == {"data": "(-1,3,112,112)"}
    assert ours["plugin_config"]["PERFORMANCE_HINT"] == "THROUGHPUT" and ours["target_device"] == "CPU"
    assert sorted(p.name for p in (repo / NAME / "1").iterdir()) == ["model.bin", "model.xml"]
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")]  # no staging folder left
    _same_rows(repo / NAME / "1" / "model.xml", converted_standin.converted_dir / NAME / "FP16" / f"{NAME}.xml")


@pytest.mark.parametrize("args, message", [
    (["--to", "kserve"], "--to: expected one of triton, ovms"),
    (["--to", "triton", "--format", "mindir"], "--format: expected one of onnx, openvino"),
    (["--to", "ovms", "--precision", "INT8"], "no converted"),
    (["--to", "triton", "--precision", "FP8"], "--precision: expected one of"),
    (["--to", "triton", "--max-batch", "0"], "--max-batch"),
])
def test_export_errors_name_the_option(tmp_path, converted_standin, args, message):
    result = _export(tmp_path, converted_standin, *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "repo" / NAME).exists()


def test_a_malformed_ovms_config_is_an_error_naming_it(tmp_path, converted_standin):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{not json")
    result = _export(tmp_path, converted_standin, "--to", "ovms")
    assert result.exit_code == 1 and "config.json: cannot read it as JSON" in " ".join(result.output.split())
