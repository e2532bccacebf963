"""facezoo.sources.mindspore.networks: upstream parameter names/shapes/order, forward shapes, ONNX export."""

from __future__ import annotations


import numpy as np
import pytest
from conftest import reference_params

import mindspore as ms
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")

from facezoo.errors import RegistryError  # noqa: E402
from facezoo.sources.mindspore.networks import (  # noqa: E402
    EmbeddingNet,
    build_network,
    known_architectures,
    network_output,
    parameter_table,
)
from facezoo.sources.mindspore.networks.iresnet import iresnet_tiny  # noqa: E402
from facezoo.registry import load_zoo  # noqa: E402

TSV = {
    "iresnet100": "arcface_iresnet100_ms1mv2.params.tsv",
    "sphere20a": "sphereface20a.params.tsv",
    "lightcnn9": "lightcnn9.params.tsv",
    "mobilefacenet": "mindface_mobilefacenet.params.tsv",
}
#: tsv rows that are a training head and not part of the network
NOT_IN_NETWORK = {"sphere20a": {"fc6.weight"}}

INPUTS = {
    "iresnet100": (1, 3, 112, 112),
    "sphere20a": (1, 3, 112, 96),
    "lightcnn9": (1, 1, 128, 128),
    "mobilefacenet": (1, 3, 112, 112),
}



@pytest.mark.parametrize("architecture", sorted(TSV))
def test_parameter_names_shapes_and_order_match_upstream(architecture):
    net = build_network(architecture)
    got = [(p.name, tuple(p.shape)) for p in net.get_parameters()]
    skip = NOT_IN_NETWORK.get(architecture, set())
    expected = [row for row in reference_params(TSV[architecture]) if row[0] not in skip]
    assert got == expected
    # the traversal API agrees with get_parameters on values and order
    assert [p.name for _, p in net.parameters_and_names()] == [name for name, _ in got]


def test_mindface_iresnet100_table_is_the_arcface_one():
    assert reference_params("mindface_iresnet100.params.tsv") == reference_params(TSV["iresnet100"])


def test_sphereface_training_head_is_the_only_tsv_row_left_out():
    rows = reference_params(TSV["sphere20a"])
    net_names = {p.name for p in build_network("sphere20a").get_parameters()}
    assert [name for name, _ in rows if name not in net_names] == ["fc6.weight"]
    assert dict(rows)["fc6.weight"] == (512, 10574)


def test_mobilefacenet_attribute_paths_are_the_attrpath_table():
    net = build_network("mobilefacenet")
    table = parameter_table(net)
    assert [(path, shape) for _, path, shape in table] == reference_params(
        "mindface_mobilefacenet.attrpath.params.tsv"
    )
    assert table[0][:2] == ("0.layers.0.weight", "layers.0.layers.0.weight")


def test_registry_architectures_are_all_known():
    zoo = load_zoo()
    for spec in zoo.models:
        if spec.framework == "mindspore":
            assert spec.architecture in known_architectures(), spec.name


def test_unknown_architecture_names_it_and_lists_known_ones():
    with pytest.raises(RegistryError) as info:
        build_network("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in known_architectures():
        assert name in message


def test_network_output_rule():
    assert network_output("tensor", 0) == "tensor"
    assert network_output(("logits", "feature"), 1) == "feature"
    with pytest.raises(IndexError):
        network_output("tensor", 1)
    with pytest.raises(IndexError):
        network_output(("a", "b"), 2)


def _run(net, shape, seed=0):
    x = np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)
    return x, net(ms.Tensor(x))


def _export_and_compare(net, shape, tmp_path, name):
    """Forward once, export to ONNX, run onnxruntime: same outputs. Returns (input, outputs)."""
    import onnxruntime as ort
    x, out = _run(net, shape, seed=1)
    outs = [o.asnumpy() for o in (out if isinstance(out, tuple) else (out,))]
    ms.export(net, ms.Tensor(x), file_name=str(tmp_path / name), file_format="ONNX")
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    results = session.run(None, {session.get_inputs()[0].name: x})
    assert len(results) == len(outs)
    for expected, got in zip(outs, results):
        assert got.shape == expected.shape
        scale = max(float(np.abs(expected).max()), 1e-6)
        assert float(np.abs(got - expected).max()) <= 1e-4 * scale + 1e-6
    return x, out


@pytest.mark.parametrize("architecture", ["sphere20a", "mobilefacenet"])
def test_single_output_networks_forward_and_export(architecture, tmp_path):
    _, out = _export_and_compare(build_network(architecture), INPUTS[architecture], tmp_path, architecture)
    assert not isinstance(out, tuple)
    assert tuple(out.shape) == (1, 512)


def test_lightcnn_returns_logits_and_feature_and_exports(tmp_path):
    net = build_network("lightcnn9")
    x, out = _export_and_compare(net, INPUTS["lightcnn9"], tmp_path, "lightcnn9")
    assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == [(1, 79077), (1, 256)]
    # EmbeddingNet keeps the parameter names and returns output 1 alone
    wrapped = EmbeddingNet(net, 1)
    assert [p.name for p in wrapped.get_parameters()] == [p.name for p in net.get_parameters()]
    np.testing.assert_array_equal(wrapped(ms.Tensor(x)).asnumpy(), network_output(out, 1).asnumpy())


def test_iresnet_structure_forward_and_export(tmp_path):
    net = iresnet_tiny()  # one block per stage: same block and head code as iresnet100
    net.set_train(False)
    names = [p.name for p in net.get_parameters()]
    # the stride-2 first block of every stage carries the downsample; head is bn2 -> fc -> features
    assert "layer1.0.downsample.0.weight" in names and "layer4.0.downsample.1.beta" in names
    assert names[-10:-4] == ["bn2.moving_mean", "bn2.moving_variance", "bn2.gamma", "bn2.beta", "fc.weight",
                             "fc.bias"]
    assert {p.name: tuple(p.shape) for p in net.get_parameters()}["fc.weight"] == (512, 512 * 7 * 7)
    _, out = _export_and_compare(net, (1, 3, 112, 112), tmp_path, "iresnet_tiny")
    assert tuple(out.shape) == (1, 512)


@pytest.mark.slow
def test_onnx_export_iresnet100(tmp_path):
    _export_and_compare(build_network("iresnet100"), INPUTS["iresnet100"], tmp_path, "iresnet100")
