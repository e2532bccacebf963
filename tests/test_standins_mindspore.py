"""facezoo.sources.mindspore.standin (stand-in checkpoints) and facezoo.faces (synthetic crops)."""

from __future__ import annotations

import dataclasses

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import reference_params

from facezoo import faces, preprocessing



# ---------------------------------------------------------------------------------------------
# synthetic faces


@pytest.mark.parametrize("size", [(112, 112), (112, 96), (128, 128)])
def test_synthetic_face_shape_and_determinism(size):
    a = faces.synthetic_face(3, 1, size)
    assert a.shape == (*size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, faces.synthetic_face(3, 1, size))
    assert not np.array_equal(a, faces.synthetic_face(3, 2, size))
    assert 40 < a.mean() < 220 and a.std() > 20


def test_variations_are_closer_than_identities():
    ids = np.repeat(np.arange(12), 3)
    images = faces.face_batch(ids, np.tile(np.arange(3), 12)).astype(np.float32).reshape(len(ids), -1)
    images -= images.mean(axis=0)
    unit = images / np.linalg.norm(images, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = cos[(ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)]
    diff = cos[ids[:, None] != ids[None, :]]
    assert same.mean() > diff.mean() + 0.5


def test_template_and_landmarks():
    np.testing.assert_allclose(preprocessing.template((112, 96)), preprocessing.TEMPLATE_112 - [8, 0])
    np.testing.assert_allclose(preprocessing.template((224, 224)), preprocessing.TEMPLATE_112 * 2)
    # the eyes (drawn at the template points) are the busiest spots of the face, busier than a cheek
    batch = faces.face_batch(range(20), [0] * 20).astype(np.float32).mean(axis=3)

    def local_std(x, y):
        return batch[:, int(y) - 4:int(y) + 5, int(x) - 6:int(x) + 7].std(axis=(1, 2)).mean()

    cheek = local_std(30, 72)
    for x, y in preprocessing.TEMPLATE_112[:2]:
        assert local_std(x, y) > 1.5 * cheek


def test_probe_images_include_a_colour_asymmetric_one():
    probes = faces.probe_images(4, (112, 96))
    assert probes.shape == (4, 112, 96, 3) and probes.dtype == np.uint8
    asym = probes[1].astype(np.int32)
    assert np.abs(asym[..., 2] - asym[..., 0]).mean() > 60
    np.testing.assert_array_equal(probes, faces.probe_images(4, (112, 96)))
    assert faces.probe_images(1).shape == (1, 112, 112, 3)


def test_to_model_input_channel_orders():
    images = faces.face_batch([1, 2], [0, 0])
    bgr = preprocessing.to_model_input(images, "BGR")
    rgb = preprocessing.to_model_input(images, "RGB")
    gray = preprocessing.to_model_input(images, "GRAY")
    assert bgr.shape == rgb.shape == (2, 3, 112, 112) and gray.shape == (2, 1, 112, 112)
    assert bgr.dtype == rgb.dtype == gray.dtype == np.float32
    np.testing.assert_array_equal(bgr[:, 0], images[..., 0])
    np.testing.assert_array_equal(rgb[:, 0], images[..., 2])
    np.testing.assert_array_equal(gray[1, 0], cv2.cvtColor(images[1], cv2.COLOR_BGR2GRAY))
    assert preprocessing.to_model_input(images[0], "RGB").shape == (1, 3, 112, 112)
    with pytest.raises(ValueError):
        preprocessing.to_model_input(images, "YUV")
    with pytest.raises(ValueError):
        preprocessing.to_model_input(images[..., 0], "BGR")


# ---------------------------------------------------------------------------------------------
# stand-in checkpoints

import mindspore as ms
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")

from facezoo.sources.mindspore.checkpoints import load_backbone, scan_checkpoint  # noqa: E402
from facezoo.errors import FacezooError  # noqa: E402
from facezoo.sources.mindspore.networks import build_network, network_output, parameter_table  # noqa: E402
from facezoo.registry import load_zoo  # noqa: E402
from facezoo.sources.mindspore import standin  # noqa: E402

ZOO = load_zoo()

# model -> (reference table, how the layout names its keys, extra keys the layout adds)
EXPECTED = {
    "lightcnn": ("lightcnn9.params.tsv", "{}", set()),
    "sphereface": ("sphereface20a.params.tsv", "network.{}", set()),
    "mindface-arcface-mobilefacenet": ("mindface_mobilefacenet.attrpath.params.tsv", "_backbone.{}", {"fc.weight"}),
    "mindface-arcface-r100": ("mindface_iresnet100.params.tsv", "_backbone.{}", {"fc.weight"}),
    "arcface": ("arcface_iresnet100_ms1mv2.params.tsv", "{}", {"mp_weight", "learning_rate", "momentum",
                                                               "global_step"}),
}


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("standins")


_WRITTEN: dict[str, Path] = {}


def written(model: str, folder: Path) -> Path:
    if model not in _WRITTEN:
        spec = ZOO.get(model)
        paths = standin.write_standin(spec, folder / model, seed=0)
        assert paths == [folder / model / spec.conversion.checkpoint]
        _WRITTEN[model] = paths[0]
    return _WRITTEN[model]


def check_layout(model: str, path: Path):
    table, pattern, extra = EXPECTED[model]
    entries = scan_checkpoint(path)
    keys = {e.name: e.shape for e in entries}
    expected = [(pattern.format(name), shape) for name, shape in reference_params(table)]
    # the network's tensors come first, in upstream order and with upstream shapes
    assert [(e.name, e.shape) for e in entries[:len(expected)]] == expected
    rest = set(keys) - {k for k, _ in expected}
    assert extra <= rest
    moments = {k for k in rest if k.startswith("moments.")}
    assert rest - moments == extra
    if model == "arcface":
        assert keys["mp_weight"] == (85742, 512) and 0 < len(moments) <= 10
        assert all(k[len("moments."):] in dict(expected) for k in moments)
    if model == "sphereface":
        assert ("network.fc6.weight", (512, 10574)) in expected and 0 < len(moments) <= 10
        assert all(k.startswith("moments.network.") for k in moments)
    if model.startswith("mindface"):
        assert keys["fc.weight"] == (1000, 512)
    if model == "mindface-arcface-r100":
        assert keys["_backbone.fc.weight"] == (512, 25088)  # collides with the head after stripping


def embedding_quality(net, spec, weights):
    ids = np.repeat(np.arange(8), 3)
    images = faces.face_batch(ids + 300, np.tile(np.arange(3), 8) + 20, (spec.input.height, spec.input.width))
    x = standin.preprocess(images, spec.input)
    out = network_output(net(ms.Tensor(x)), spec.output.index).asnumpy()
    assert out.shape == (len(ids), spec.output.dim) and np.isfinite(out).all()
    unit = out / np.linalg.norm(out, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = cos[(ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)].mean()
    diff = cos[ids[:, None] != ids[None, :]].mean()
    return float(out.std()), float(same), float(diff), x


def check_standin(model: str, folder: Path):
    spec = ZOO.get(model)
    path = written(model, folder)
    check_layout(model, path)
    net = build_network(spec.architecture)
    report = load_backbone(net, path, architecture=spec.architecture)
    assert report.loaded == len(parameter_table(net)) and report.left_initialised == []
    weights = {p.name: p.asnumpy() for p in net.get_parameters()}
    std, same, diff, x = embedding_quality(net, spec, weights)
    assert 0.1 < std < 100
    assert same > diff + 0.3, (same, diff)
    return report


def test_lightcnn_standin(standin_dir):
    report = check_standin("lightcnn", standin_dir)
    assert report.layout == "bare" and report.ignored == {"optimizer_state": [], "training_head": [], "other": []}


def test_sphereface_standin(standin_dir):
    report = check_standin("sphereface", standin_dir)
    assert report.layout == "network." and report.training_head == ["network.fc6.weight"]
    assert report.optimizer_state and all(k.startswith("moments.network.") for k in report.optimizer_state)


def test_mindface_mobilefacenet_standin(standin_dir):
    report = check_standin("mindface-arcface-mobilefacenet", standin_dir)
    assert report.layout == "_backbone." and report.naming == "attribute"
    assert report.training_head == ["fc.weight"]


@pytest.mark.slow
def test_mindface_r100_standin(standin_dir):
    report = check_standin("mindface-arcface-r100", standin_dir)
    assert report.layout == "_backbone." and report.training_head == ["fc.weight"]
    assert report.key_map["fc.weight"] == "_backbone.fc.weight"


@pytest.mark.slow
def test_arcface_standin(standin_dir):
    report = check_standin("arcface", standin_dir)
    assert report.layout == "bare" and report.training_head == ["mp_weight"]
    assert {"learning_rate", "momentum", "global_step"} <= set(report.optimizer_state)


def test_standin_is_deterministic_per_seed(tmp_path):
    spec = ZOO.get("mindface-arcface-mobilefacenet")

    def digest(seed, folder):
        [path] = standin.write_standin(spec, tmp_path / folder, seed=seed)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest(0, "a") == digest(0, "b")
    assert digest(0, "a") != digest(1, "c")


def test_any_registered_architecture_gets_stand_ins_from_the_network_itself():
    """No numpy copy of a network: the tiny iresnet (not a registry architecture's builder) is
    calibrated by running it, and its BNs then normalize the calibration batch."""
    from facezoo.sources.mindspore.networks import architecture
    from facezoo.sources.mindspore.networks.iresnet import iresnet_tiny

    spec = ZOO.get("arcface")
    policy = architecture("iresnet100").standin
    arch = dataclasses.replace(architecture("iresnet100"), name="iresnet-tiny", build=iresnet_tiny)
    net = iresnet_tiny()
    net.set_train(False)
    weights = standin.standin_weights(net, arch, spec.input, count=8, statistics=None)
    assert policy.branch_gammas(net) and all(0.1 <= weights[name].min() and weights[name].max() <= 0.3
                                             for name in policy.branch_gammas(net))
    fresh = iresnet_tiny()
    fresh.set_train(False)
    standin._load(fresh, weights)
    x = standin.preprocess(standin.calibration_images(spec.input, 8), spec.input)
    out = fresh(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(out.mean(axis=0), weights["features.beta"], atol=2e-3)
    np.testing.assert_allclose(out.std(axis=0), np.abs(weights["features.gamma"]), rtol=2e-2)


def test_calibration_without_trained_statistics_matches_the_batch_exactly():
    """statistics=None: every BN normalizes the calibration batch, so the embedding BN output has
    per-channel mean beta and std gamma over that batch."""
    spec = ZOO.get("mindface-arcface-mobilefacenet")
    net = build_network("mobilefacenet")
    weights = standin.standin_weights(net, "mobilefacenet", spec.input, statistics=None)
    x = standin.preprocess(standin.calibration_images(spec.input), spec.input)
    standin._load(net, weights)
    out = net(ms.Tensor(x)).asnumpy()
    gamma, beta = weights["features.layers.3.gamma"], weights["features.layers.3.beta"]
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma), rtol=1e-2)


def test_default_calibration_gives_trained_network_statistics():
    """Quiet channels with moving variance ~1e-4..1e-3 in BNs that follow a convolution, moving
    statistics off the data, PReLU slopes across [0, 1]; the network still gives embeddings of a
    sane scale (not exploding or vanishing through the depth)."""
    from facezoo.sources.standin_statistics import TRAINED

    spec = ZOO.get("mindface-arcface-mobilefacenet")
    net = build_network("mobilefacenet")
    weights = standin.standin_weights(net, "mobilefacenet", spec.input)
    x = standin.preprocess(standin.calibration_images(spec.input), spec.input)
    # the stem's BN follows its convolution: a few channels are quiet (1e-4..1e-3 of the median)
    variance = weights["0.layers.1.moving_variance"]
    ratio = variance / np.median(variance)
    quiet = ratio < 2e-3
    assert 1 <= quiet.sum() <= max(2, int(2 * TRAINED.quiet_fraction * len(variance)))
    assert (ratio[quiet] > 1e-5).all()
    slopes = np.concatenate([v for k, v in weights.items() if k.endswith(".w") and v.ndim == 1])
    assert slopes.min() < 0.1 and slopes.max() > 0.9
    # the moving statistics are not the batch's: the embedding BN no longer gives exactly (beta, gamma)
    standin._load(net, weights)
    out = net(ms.Tensor(x)).asnumpy()
    beta = weights["features.layers.3.beta"]
    assert np.abs(out.mean(axis=0) - beta).max() > 0.05
    norms = np.linalg.norm(out, axis=1)
    assert 5 < norms.mean() < 200


def test_writer_refuses_other_frameworks(tmp_path):
    spec = ZOO.get("face-recognition-resnet34-arcface")
    with pytest.raises(FacezooError):
        standin.write_standin(spec, tmp_path)


def test_layouts_cover_the_registry():
    for spec in ZOO.models:
        if spec.framework == "mindspore":
            assert standin.layout_for(spec) == {"arcface": "arcface", "sphereface": "sphereface",
                                                "lightcnn": "lightcnn"}.get(spec.name, "mindface")
