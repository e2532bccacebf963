"""facezoo.sources.mindspore.checkpoints: every upstream checkpoint layout loads; bad files give CheckpointError."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_params

import mindspore as ms
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")

from mindspore.train.checkpoint_pb2 import Checkpoint  # noqa: E402

from facezoo.sources.mindspore.checkpoints import (  # noqa: E402
    LoadReport,
    is_optimizer_state,
    load_backbone,
    match_parameters,
    read_checkpoint,
    scan_checkpoint,
)
from facezoo.errors import CheckpointError  # noqa: E402
from facezoo.sources.mindspore.networks import build_network, parameter_table  # noqa: E402
from facezoo.sources.mindspore.networks.iresnet import iresnet_tiny  # noqa: E402



def arrays_for(net, seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for every parameter of ``net`` by Parameter.name (moving variances positive)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, _, shape in parameter_table(net):
        value = rng.normal(0, 0.05, shape).astype(np.float32)
        out[name] = np.abs(value) + 0.5 if name.endswith("moving_variance") else value
    return out


def save(path: Path, entries) -> Path:
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in entries], str(path))
    return path


def net_values(net) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy() for p in net.get_parameters()}


def assert_loaded(net, expected: dict[str, np.ndarray]):
    values = net_values(net)
    for name, value in expected.items():
        np.testing.assert_array_equal(values[name], value, err_msg=name)


OPTIMIZER_SCALARS = [
    ("learning_rate", np.array(0.01, np.float32)),
    ("momentum", np.array(0.9, np.float32)),
    ("global_step", np.array([1234], np.int32)),
]


# ---------------------------------------------------------------------------------------------
# layouts


def test_bare_layout_with_optimizer_state(tmp_path):
    net = build_network("mobilefacenet")
    values = arrays_for(net)
    names = list(values)
    entries = list(values.items()) + [(f"moments.{n}", values[n] * 0) for n in names[:3]] + OPTIMIZER_SCALARS
    entries += [("scale_sense", np.array(1024.0, np.float32)), ("current_iterator_step", np.array(5, np.int32)),
                ("last_overflow_iterator_step", np.array(2, np.int32)), ("epoch_num", np.array([3], np.int32)),
                ("step_num", np.array([10], np.int32))]
    path = save(tmp_path / "bare.ckpt", entries)
    report = load_backbone(net, path, architecture="mobilefacenet")
    assert isinstance(report, LoadReport)
    assert report.loaded == len(names) == 283
    assert report.layout == "bare" and report.naming == "parameter"
    assert sorted(report.optimizer_state) == sorted(k for k, _ in entries[len(names):])
    assert report.training_head == [] and report.other == []
    assert_loaded(net, values)
    assert "283" in report.summary()


def test_mindface_backbone_prefix_with_attribute_paths(tmp_path):
    """`_backbone.layers.N...` keys (attribute paths) load into the `0.layers.N...` network."""
    net = build_network("mobilefacenet")
    values = arrays_for(net, seed=1)
    paths = {pname: path for pname, path, _ in parameter_table(net)}
    attr_rows = reference_params("mindface_mobilefacenet.attrpath.params.tsv")
    entries = [(f"_backbone.{paths[n]}", v) for n, v in values.items()]
    assert [(k[len("_backbone."):], v.shape) for k, v in entries] == attr_rows
    entries.append(("fc.weight", np.zeros((1000, 512), np.float32)))  # the ArcFace head
    path = save(tmp_path / "mindface_mfn.ckpt", entries)
    report = load_backbone(net, path, architecture="mobilefacenet")
    assert report.loaded == 283
    assert report.layout == "_backbone." and report.naming == "attribute"
    assert report.training_head == ["fc.weight"]
    assert_loaded(net, values)
    assert report.key_map["0.layers.0.weight"] == "_backbone.layers.0.layers.0.weight"


def test_both_mobilefacenet_namings_give_the_same_network(tmp_path):
    net_a, net_b = build_network("mobilefacenet"), build_network("mobilefacenet")
    values = arrays_for(net_a, seed=2)
    paths = {pname: path for pname, path, _ in parameter_table(net_a)}
    load_backbone(net_a, save(tmp_path / "a.ckpt", values.items()), architecture="mobilefacenet")
    load_backbone(net_b, save(tmp_path / "b.ckpt", [(f"_backbone.{paths[n]}", v) for n, v in values.items()]),
                  architecture="mobilefacenet")
    a, b = net_values(net_a), net_values(net_b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_sphereface_network_prefix_moments_and_fc6(tmp_path):
    net = build_network("sphere20a")
    values = arrays_for(net, seed=3)
    entries = [(f"network.{n}", v) for n, v in values.items()]
    entries.append(("network.fc6.weight", np.zeros((512, 10574), np.float32)))
    entries += [(f"moments.network.{n}", np.zeros_like(values[n])) for n in ("relu1_1.w", "fc5.bias")]
    entries += OPTIMIZER_SCALARS
    path = save(tmp_path / "sphere.ckpt", entries)
    report = load_backbone(net, path, architecture="sphere20a")
    assert report.loaded == 42 and report.layout == "network."
    assert report.training_head == ["network.fc6.weight"]
    assert sorted(report.optimizer_state) == sorted(
        ["moments.network.relu1_1.w", "moments.network.fc5.bias", "learning_rate", "momentum", "global_step"])
    assert_loaded(net, values)


def test_lightcnn_bare_with_fc2(tmp_path):
    net = build_network("lightcnn9")
    values = arrays_for(net, seed=4)
    report = load_backbone(net, save(tmp_path / "lcnn.ckpt", values.items()), architecture="lightcnn9")
    assert report.loaded == 22 and report.left_initialised == [] and report.training_head == []
    assert_loaded(net, values)


def test_lightcnn_without_or_with_other_fc2_leaves_it_initialised():
    net = build_network("lightcnn9")
    values = arrays_for(net, seed=5)
    without = {k: v for k, v in values.items() if not k.startswith("fc2.")}
    chosen, report = match_parameters(net, without, architecture="lightcnn9")
    assert report.loaded == 20 and report.left_initialised == ["fc2.weight", "fc2.bias"]
    assert "fc2.weight" not in chosen and "left initialised" in report.summary()
    other = dict(without, **{"fc2.weight": np.zeros((10, 256), np.float32), "fc2.bias": np.zeros(10, np.float32)})
    _, report = match_parameters(net, other, architecture="lightcnn9")
    assert report.left_initialised == ["fc2.weight", "fc2.bias"]
    assert sorted(report.training_head) == ["fc2.bias", "fc2.weight"]


def _zeros_for(net):
    return {name: np.zeros(shape, np.float32) for name, _, shape in parameter_table(net)}


def test_r100_head_fc_collision_real_shapes():
    """mindface r100: head `fc.weight` (classes x 512) vs `_backbone.fc.weight` (512 x 25088)."""
    net = build_network("iresnet100")
    rows = reference_params("mindface_iresnet100.params.tsv")
    backbone = {f"_backbone.{name}": np.zeros(shape, np.float32) for name, shape in rows}
    backbone["_backbone.fc.weight"] = np.full((512, 25088), 0.5, np.float32)
    head = np.ones((85742, 512), np.float32)
    # head first, so that a name-only or first-come match would pick the wrong tensor
    arrays = {"fc.weight": head, **backbone}
    chosen, report = match_parameters(net, arrays, architecture="iresnet100", source="r100.ckpt")
    assert report.loaded == 771 and report.layout == "_backbone."
    assert report.key_map["fc.weight"] == "_backbone.fc.weight"
    assert chosen["fc.weight"].shape == (512, 25088) and float(chosen["fc.weight"][0, 0]) == 0.5
    assert report.training_head == ["fc.weight"]
    # without the backbone's own fc.weight, the head's must not be taken: the error names both shapes
    del arrays["_backbone.fc.weight"]
    with pytest.raises(CheckpointError) as info:
        match_parameters(net, arrays, architecture="iresnet100", source="r100.ckpt")
    message = str(info.value)
    assert "r100.ckpt" in message and "'fc.weight'" in message
    assert "(85742, 512)" in message and "(512, 25088)" in message


def test_r100_collision_file_round_trip(tmp_path):
    net = iresnet_tiny()  # same head shapes as iresnet100 (fc 512 x 25088), far fewer blocks
    values = arrays_for(net, seed=6)
    entries = [("fc.weight", np.ones((1000, 512), np.float32))] + [(f"_backbone.{n}", v) for n, v in values.items()]
    report = load_backbone(net, save(tmp_path / "r100.ckpt", entries), architecture="iresnet100")
    assert report.loaded == len(values) and report.training_head == ["fc.weight"]
    assert_loaded(net, values)


def test_arcface_bare_layout_classification_real_shapes():
    net = build_network("iresnet100")
    arrays = _zeros_for(net)
    arrays["mp_weight"] = np.zeros((85742, 512), np.float32)
    arrays.update({"moments.conv1.weight": np.zeros((64, 3, 3, 3), np.float32), "accum.fc.bias": np.zeros(512),
                   "stat.fc.bias": np.zeros(512), "unrelated.tensor": np.zeros(3)})
    arrays.update(dict(OPTIMIZER_SCALARS))
    _, report = match_parameters(net, arrays, architecture="iresnet100")
    assert report.loaded == 771 and report.layout == "bare"
    assert report.training_head == ["mp_weight"]
    assert sorted(report.optimizer_state) == sorted(
        ["moments.conv1.weight", "accum.fc.bias", "stat.fc.bias", "learning_rate", "momentum", "global_step"])
    assert report.other == ["unrelated.tensor"]


@pytest.mark.parametrize("key", ["moments.x.weight", "accum.a", "stat.b", "learning_rate", "global_step", "momentum",
                                 "current_iterator_step", "last_overflow_iterator_step", "scale_sense", "epoch_num",
                                 "step_num", "moments.network.conv1_1.weight"])
def test_optimizer_state_keys(key):
    assert is_optimizer_state(key)


@pytest.mark.parametrize("key", ["conv1.weight", "network.fc5.weight", "_backbone.layers.0.layers.0.weight",
                                 "features.moving_mean", "prelu.w"])
def test_network_keys_are_not_optimizer_state(key):
    assert not is_optimizer_state(key)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    net = build_network("mobilefacenet")
    values = arrays_for(net, seed=7)
    path = save(tmp_path_factory.mktemp("ckpt") / "good.ckpt", values.items())
    return path, values


def test_missing_key_names_key_shape_and_file(tmp_path, good_file):
    _, values = good_file
    entries = [(k, v) for k, v in values.items() if k != "0.layers.3.layers.1.layers.1.layers.0.weight"]
    path = save(tmp_path / "missing.ckpt", entries)
    with pytest.raises(CheckpointError) as info:
        load_backbone(build_network("mobilefacenet"), path, architecture="mobilefacenet")
    message = str(info.value)
    assert str(path) in message and "'0.layers.3.layers.1.layers.1.layers.0.weight'" in message
    assert "(128, 1, 3, 3)" in message


def test_wrong_shape_names_key_and_both_shapes(tmp_path, good_file):
    _, values = good_file
    entries = dict(values)
    entries["conv_sep.layers.0.weight"] = np.zeros((512, 128, 1, 1), np.float32)
    path = save(tmp_path / "shape.ckpt", entries.items())
    with pytest.raises(CheckpointError) as info:
        load_backbone(build_network("mobilefacenet"), path, architecture="mobilefacenet")
    message = str(info.value)
    assert str(path) in message and "'conv_sep.layers.0.weight'" in message
    assert "(512, 128, 1, 1)" in message and "(512, 256, 1, 1)" in message


def test_non_finite_values_are_refused(tmp_path, good_file):
    _, values = good_file
    entries = dict(values)
    entries["features.layers.2.weight"] = np.full((512, 512), np.nan, np.float32)
    path = save(tmp_path / "nan.ckpt", entries.items())
    with pytest.raises(CheckpointError, match="features.layers.2.weight"):
        load_backbone(build_network("mobilefacenet"), path, architecture="mobilefacenet")


def _bad_files(folder: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "truncated_tail": data[:-3],
        "garbage": np.random.default_rng(0).bytes(4096),
        "text": b"this is not a checkpoint\n" * 40,
    }
    out = {}
    for name, content in files.items():
        out[name] = folder / f"{name}.ckpt"
        out[name].write_bytes(content)
    out["zip"] = folder / "archive.ckpt"
    with zipfile.ZipFile(out["zip"], "w") as archive:
        archive.writestr("model/weights.ckpt", data[:1000])
    return out


@pytest.mark.parametrize("kind", ["empty", "truncated", "truncated_tail", "garbage", "text", "zip"])
def test_bad_files_give_checkpoint_error_naming_the_file(kind, tmp_path, good_file):
    path = _bad_files(tmp_path, good_file[0])[kind]
    with pytest.raises(CheckpointError) as info:
        load_backbone(build_network("mobilefacenet"), path, architecture="mobilefacenet")
    assert str(path) in str(info.value)
    if kind == "zip":
        assert "zip" in str(info.value)
    if kind == "empty":
        assert "empty" in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)


def _crafted(tmp_path: Path, name: str, dims, dtype="Float32", content=b"\0" * 8) -> Path:
    checkpoint = Checkpoint()
    value = checkpoint.value.add()
    value.tag = "w"
    value.tensor.dims.extend(dims)
    value.tensor.tensor_type = dtype
    value.tensor.tensor_content = content
    path = tmp_path / f"{name}.ckpt"
    path.write_bytes(checkpoint.SerializeToString())
    return path


@pytest.mark.parametrize("case,dims,dtype,content,words", [
    ("short", [1000, 1000], "Float32", b"\0" * 4, "holds 4 bytes"),
    ("long", [2], "Float32", b"\0" * 400, "holds 400 bytes"),
    ("negative", [-5, 2], "Float32", b"\0" * 40, "negative"),
    ("dtype", [2], "Bogus", b"\0" * 8, "unknown type"),
])
def test_structurally_wrong_tensors_are_caught_before_mindspore(tmp_path, case, dims, dtype, content, words):
    path = _crafted(tmp_path, case, dims, dtype, content)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_negative_dims_do_not_crash_the_process(tmp_path):
    """MindSpore 2.10 corrupts its heap on negative dims; the scan must stop the file first."""
    path = _crafted(tmp_path, "negative", [-5, 2], content=b"\0" * 40)
    code = (
        "import sys; from facezoo.sources.mindspore.checkpoints import read_checkpoint; from facezoo.errors import CheckpointError\n"
        f"try:\n    read_checkpoint({str(path)!r})\nexcept CheckpointError:\n    sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 3


def test_scan_reports_sliced_tensors_and_accepts_the_crc_trailer(tmp_path):
    big = np.arange(300 * 1024, dtype=np.float32).reshape(600, 512)  # 1.2 MB: written as 3 slices
    entries = [{"name": "big", "data": ms.Tensor(big)}, {"name": "lr", "data": ms.Tensor(np.array(0.1, np.float32))}]
    for crc in (False, True):
        path = tmp_path / f"crc{crc}.ckpt"
        ms.save_checkpoint(entries, str(path), crc_check=crc)
        scanned = {e.name: e for e in scan_checkpoint(path)}
        assert scanned["big"].shape == (600, 512) and scanned["big"].dtype == "Float32"
        assert scanned["big"].nbytes == big.nbytes
        np.testing.assert_array_equal(read_checkpoint(path)["big"], big)


def test_facezoo_reads_what_mindspore_writes_without_mindspore(tmp_path):
    """read_checkpoint takes the tensors from the file's bytes: every dtype MindSpore writes, the
    same values as mindspore.load_checkpoint, and MindSpore is never imported for it (its reader
    refuses files larger than the machine's free memory, page cache not counted)."""
    import subprocess
    import sys

    path = tmp_path / "types.ckpt"
    values = {
        "w32": np.random.default_rng(0).standard_normal((7, 5, 3)).astype(np.float32),
        "w16": np.random.default_rng(1).standard_normal((4, 9)).astype(np.float16),
        "w64": np.arange(6, dtype=np.float64).reshape(2, 3),
        "step": np.array([181952], np.int32),
        "count": np.array([3, 1 << 40], np.int64),
        "flag": np.array([True, False]),
        "lr": np.array(0.001, np.float32),
    }
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in values.items()], str(path))
    ours = read_checkpoint(path)
    theirs = ms.load_checkpoint(str(path))
    assert list(ours) == list(theirs) == list(values)
    for key, value in values.items():
        assert ours[key].dtype == value.dtype, key
        np.testing.assert_array_equal(ours[key], theirs[key].asnumpy())
        np.testing.assert_array_equal(ours[key].reshape(value.shape), value)
    script = (f"import sys; from facezoo.sources.mindspore.checkpoints import read_checkpoint; read_checkpoint({str(path)!r}); "
              "sys.exit(3 if 'mindspore' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 0
