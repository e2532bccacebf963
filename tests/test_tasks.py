"""The task axis: task_type picks the task, models give every named output, and the registry's
framework rules and the task table refuse what they do not know."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from facezoo.errors import FacezooError, RegistryError
from facezoo.registry import FRAMEWORKS, PACKAGED_ZOO, load_zoo
from facezoo.runtime import load
from facezoo.sources import frameworks, register_source
from facezoo.tasks import DEFAULT_TASK, TASKS, Task, task_for

MFN = "mindface-arcface-mobilefacenet"


def _zoo_with(tmp_path: Path, **changes) -> Path:
    document = yaml.safe_load(PACKAGED_ZOO.read_text(encoding="utf-8"))
    entry = next(e for e in document["models"] if e["name"] == MFN)
    entry.update(changes)
    path = tmp_path / "zoo.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_every_entry_has_a_task_and_the_task_declares_its_outputs():
    zoo = load_zoo()
    for spec in zoo.models:
        task = task_for(spec)
        assert isinstance(task, Task) and task.name == spec.task_type
        outputs = task.outputs(spec)
        if spec.task_type == "face_recognition":
            (output,) = outputs
            assert output.name == spec.converted.output_name and output.shape == (-1, spec.output.dim)
            assert task.parts(spec) == ("",)
        else:  # a detector: every raw head of every net, by the original's names
            assert [o.name for o in outputs] == [head for part in spec.parts for head in part.outputs]
            assert task.parts(spec) == tuple(p.name for p in spec.parts)
    assert DEFAULT_TASK in TASKS


def test_an_unknown_task_type_is_refused_naming_the_field(tmp_path):
    with pytest.raises(RegistryError) as error:
        load_zoo(_zoo_with(tmp_path, task_type="face_parsing"))
    assert f"model '{MFN}'" in str(error.value) and "task_type" in str(error.value)
    assert "face_recognition" in str(error.value)


def test_frameworks_are_the_registry_rules_and_a_source_for_another_is_refused():
    assert set(frameworks()) == set(FRAMEWORKS)
    with pytest.raises(FacezooError, match="FRAMEWORKS"):
        register_source("caffe", files=lambda spec, folder, override: [])


def test_every_task_fills_its_tables():
    for task in TASKS.values():
        assert task.convert_columns and task.check_columns
        record = {"min_cosine": float("nan")}
        assert all(isinstance(column.render(record), str) for column in task.check_columns)


def _two_outputs(path: Path) -> Path:
    """A model with two named outputs: the mean of each channel, and the input doubled, flattened."""
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 8, 8])
    pooled = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 3])
    doubled = helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["N", 192])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["pooled"]),
        helper.make_node("Mul", ["data", "two"], ["times"]),
        helper.make_node("Flatten", ["times"], ["doubled"]),
    ]
    graph = helper.make_graph(nodes, "two-outputs", [data], [pooled, doubled], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_return_every_named_output(tmp_path, backend):
    path = _two_outputs(tmp_path / "two.onnx")
    batch = np.random.default_rng(0).uniform(0, 255, (3, 3, 8, 8)).astype(np.float32)
    with load(path, backend=backend) as model:
        assert [o.name for o in model.output_specs] == ["pooled", "doubled"]
        outputs = model.infer(batch)
        many = model.infer_many([batch[:1], batch[1:]])
    assert list(outputs) == ["pooled", "doubled"]
    np.testing.assert_allclose(outputs["pooled"], batch.mean(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(outputs["doubled"], 2 * batch.reshape(3, -1), rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([m["pooled"] for m in many]), outputs["pooled"], rtol=1e-6)


def test_facezoo_infer_writes_every_output_of_a_model_with_several(tmp_path):
    path = _two_outputs(tmp_path / "two.onnx")
    batch = np.ones((2, 3, 8, 8), np.float32)
    np.save(tmp_path / "in.npy", batch)

    def infer(output: Path):
        return subprocess.run([sys.executable, "-m", "facezoo.cli.main", "infer", str(path), "--input",
                               str(tmp_path / "in.npy"), "-o", str(output)], capture_output=True, text=True, timeout=120)

    done = infer(tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as saved:
        assert sorted(saved.files) == ["doubled", "pooled"] and saved["doubled"].shape == (2, 192)
    refused = infer(tmp_path / "out.npy")
    assert refused.returncode == 1 and "-o" in refused.stderr and "2 outputs" in refused.stderr
    assert not (tmp_path / "out.npy").exists()
