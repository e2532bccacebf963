"""The gates prove something: each mistake that happens in the field fails them, in every format
and precision, and the correct artifacts pass.

The stand-in has trained-network statistics (quiet BN channels, moving statistics off the data,
PReLU slopes over [0, 1]); the mutations are applied to its converted FP32 ONNX, from which the
FP16 ONNX, the IR and the MINDIR are made the way the converter makes them.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from facezoo.sources.mindspore.source import MindSporeSource
from facezoo.converters.onnx_graph import check_and_save, to_fp16
from facezoo.converters.mindir import export_mindir, onnx_to_mindspore
from facezoo.converters.openvino_ir import export_ir
from conftest import check_artifact
from facezoo.faces import probe_images
from facezoo.gates import GATES
from facezoo.preprocessing import to_model_input

NAME = "mindface-arcface-mobilefacenet"
FORMATS = {"onnx": "onnxruntime", "openvino": "openvino", "mindir": "mindspore"}


def _edit(model, name, change):
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(init).copy()).astype(np.float32), name))


def _first(model, op):
    return next(n for n in model.graph.node if n.op_type == op)


def _bn_eps(model):
    """Every BatchNorm's eps 1e-5 → 1e-3 (MXNet's default: the classic slip)."""
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            for attribute in node.attribute:
                if attribute.name == "epsilon":
                    attribute.f = 1e-3


def _channel_order(model):
    """The RGB→BGR swap folded into the first convolution undone."""
    _edit(model, _first(model, "Conv").input[1], lambda w: w[:, ::-1])


def _scale(model):
    """x / 255 where the model wants x / 127.5 (the [0, 1] vs [-1, 1] confusion)."""
    _edit(model, _first(model, "Mul").input[1], lambda s: s * 0.5)


def _subtle_scale(model):
    """x / 128 where the model wants x / 127.5 (sphereface's constant on an arcface model)."""
    _edit(model, _first(model, "Mul").input[1], lambda s: s * (127.5 / 128.0))


def _mean(model):
    """The mean subtraction forgotten."""
    _edit(model, _first(model, "Sub").input[1], lambda m: m * 0)


def _one_weight(model):
    """One scalar of the second convolution moved by one standard deviation of its tensor."""
    def change(w):
        w.reshape(-1)[17] += w.std()
        return w

    _edit(model, [n for n in model.graph.node if n.op_type == "Conv"][1].input[1], change)


MUTATIONS = {"bn-eps": _bn_eps, "channel-order": _channel_order, "scale": _scale, "mean": _mean,
             "one-weight": _one_weight}


@pytest.fixture(scope="module")
def original(converted_mobilefacenet):
    zoo, root, out, _ = converted_mobilefacenet
    spec = zoo.get(NAME)
    images = probe_images(4, (112, 112))
    reference = MindSporeSource(spec, root / NAME / spec.conversion.checkpoint).reference(images)["embedding"]
    good = onnx.load(str(out / NAME / "FP32" / f"{NAME}.onnx"))
    return to_model_input(images, "BGR"), reference, good


def _artifacts(model, precision: str, folder) -> dict[str, object]:
    """The three formats made from ``model`` (FP32 ONNX) at ``precision``, as the converter makes them."""
    fp32 = folder / f"fp32-{precision}.onnx"
    onnx.save(model, str(fp32))
    paths = {}
    if precision == "FP32":
        paths["onnx"] = fp32
    else:
        paths["onnx"] = folder / "model-fp16.onnx"
        check_and_save(to_fp16(copy.deepcopy(model)), paths["onnx"])
    paths["openvino"] = folder / f"model-{precision}.xml"
    export_ir(fp32, paths["openvino"], precision)
    paths["mindir"] = folder / f"model-{precision}.mindir"
    export_mindir(onnx_to_mindspore(model, precision=precision), paths["mindir"])
    return paths


def _checks(original, mutate, precision, tmp_path):
    inputs, reference, good = original
    model = copy.deepcopy(good)
    if mutate is not None:
        mutate(model)
    paths = _artifacts(model, precision, tmp_path)
    return {fmt: check_artifact(path, fmt=fmt, precision=precision, backend_name=FORMATS[fmt], inputs=inputs,
                                reference=reference) for fmt, path in paths.items()}


@pytest.mark.parametrize("precision", ["FP32", "FP16"])
def test_correct_artifacts_pass_with_room_to_spare(original, precision, tmp_path):
    gate = GATES[precision]
    for fmt, check in _checks(original, None, precision, tmp_path).items():
        assert check.passed, (fmt, check)
        # not just inside the gate: well inside it, so realistic weights do not fall out of it
        assert 1 - check.metric("min_cosine") < (1 - gate.min_cosine) / 5, (fmt, check)
        assert check.metric("max_relative_error") < gate.max_relative_error / 2, (fmt, check)


@pytest.mark.parametrize("precision", ["FP32", "FP16"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_mistake_fails_every_format(original, mutation, precision, tmp_path):
    for fmt, check in _checks(original, MUTATIONS[mutation], precision, tmp_path).items():
        assert not check.passed, (mutation, fmt, check)


def test_a_subtle_scale_slip_fails_fp32_and_stands_out_of_fp16_noise(original, tmp_path):
    """x/128 for x/127.5 moves the output by about 1 % of its range. FP32's bounds catch it in every
    format; at FP16 it is as large as the FP16 bound itself, so only the FP32 artifacts — which the
    converter always validates beside FP16 ones by default — are guaranteed to expose it."""
    checks = _checks(original, _subtle_scale, "FP32", tmp_path)
    assert not any(check.passed for check in checks.values()), checks
    (tmp_path / "fp16").mkdir()
    fp16 = _checks(original, None, "FP16", tmp_path / "fp16")
    slipped = min(check.metric("max_relative_error") for check in checks.values())
    noise = max(check.metric("max_relative_error") for check in fp16.values())
    assert slipped > 1.5 * noise
