"""Stand-in MXNet zips: the real r34 symbol and key layout, calibrated seeded weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facezoo import faces, preprocessing
from facezoo.errors import FacezooError
from facezoo.sources.mxnet import MXNetModel, load_params, load_symbol, split_arg_aux
from facezoo.sources.mxnet.params import parse_params
from facezoo.sources.mxnet.symbol import parse_symbol
from facezoo.registry import load_zoo
from facezoo.standins import build_standins
from facezoo.sources.mxnet import standin as sm

REF = Path(__file__).resolve().parent / "data" / "reference" / "mxnet"
MODEL = "face-recognition-resnet34-arcface"
SYMBOL_MEMBER = "model-r34-amf/model-symbol.json"
PARAMS_MEMBER = "model-r34-amf/model-0000.params"
REAL_PARAMS_SIZE = 136_680_367


@pytest.fixture(scope="module")
def spec():
    return load_zoo().get(MODEL)


def _tsv(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return [(key, tuple(int(d) for d in shape.split("x"))) for key, shape, _ in rows]


def _graph_facts(graph) -> list:
    return [(n.op, n.name, dict(n.attrs), [tuple(e[:2]) for e in n.inputs]) for n in graph.nodes]


def _separation(model: MXNetModel, identities: int = 6, variations: int = 3):
    ids = np.repeat(np.arange(identities) + 300, variations)
    var = np.tile(np.arange(variations), identities)
    x = preprocessing.to_model_input(faces.face_batch(ids, var), "RGB")
    emb = model.run({"data": x}, ["fc1"])["fc1"].astype(np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    upper = np.triu(np.ones_like(cos, bool), 1)
    same = cos[upper & (ids[:, None] == ids[None, :])]
    diff = cos[upper & (ids[:, None] != ids[None, :])]
    return emb, same, diff


def test_package_data_is_the_reference():
    data = sm.SYMBOL_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sm.SYMBOL_SHA256
    assert sm.symbol_bytes("full") == data
    table = sm.param_table("full")
    assert len(table) == 276 and len({k for k, _ in table}) == 276
    if REF.is_dir():
        assert data == (REF / "model-r34-amf-symbol.json").read_bytes()
        assert table == _tsv(REF / "model-r34-amf.params.tsv")
    # every parameter variable of the real graph is a key, and nothing else is
    graph = parse_symbol(json.loads(data))
    variables = {n.name for n in graph.variables} - {"data"}
    assert variables == {k.split(":", 1)[1] for k, _ in table}
    assert sum(int(np.prod(s)) for k, s in table if k.startswith("arg:")) > 34_000_000


def test_tiny_layout_is_the_reference_tiny_r34():
    derived = parse_symbol(json.loads(sm.symbol_bytes("tiny")))
    real = load_symbol(REF / "tiny-r34" / "tiny-r34-symbol.json")
    assert _graph_facts(derived) == _graph_facts(real)
    assert derived.heads == real.heads
    params = load_params(REF / "tiny-r34" / "tiny-r34-0000.params")
    assert [(k, v.shape) for k, v in params.items()] == sm.param_table("tiny")


def test_tiny_standin_zip(spec, tmp_path):
    (path,) = sm.write_standin(spec, tmp_path / "a", seed=0, scale="tiny")
    assert path.name == spec.files[0].name == "model-r34-arcface-ms1m-refine-v1.zip"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert set(spec.files[0].members) <= set(names)
        assert set(names) == {"model-r34-amf/", SYMBOL_MEMBER, PARAMS_MEMBER}
        symbol, blob = zf.read(SYMBOL_MEMBER), zf.read(PARAMS_MEMBER)
    assert symbol == sm.symbol_bytes("tiny")
    params = parse_params(blob)
    assert [(k, v.shape) for k, v in params.items()] == sm.param_table("tiny")
    assert all(v.dtype == np.float32 and np.all(np.isfinite(v)) for v in params.values())
    assert blob[:8] == (0x112).to_bytes(8, "little")
    assert int.from_bytes(blob[24:28], "little") == 0xF993FAC9  # V2 records
    assert not np.allclose(params["arg:fc1_gamma"], 1.0)  # fix_gamma: must be ignored by readers
    assert np.all(params["aux:bn0_moving_var"] > 0)
    # deterministic per seed
    (again,) = sm.write_standin(spec, tmp_path / "b", seed=0, scale="tiny")
    assert again.read_bytes() == path.read_bytes()
    (other,) = sm.write_standin(spec, tmp_path / "c", seed=1, scale="tiny")
    assert other.read_bytes() != path.read_bytes()


def test_tiny_standin_embeddings_are_sane(tmp_path):
    symbol_path, params_path = sm.write_model_folder(tmp_path, scale="tiny", seed=0)
    model = MXNetModel.load(symbol_path, params_path)
    x = preprocessing.to_model_input(faces.face_batch(np.arange(6) + 40, np.zeros(6)), "RGB")
    outs = model.run({"data": x}, ["stage1_unit1_bn1", "stage3_unit6_bn1", "_plus15", "bn1", "fc1"])
    for name, value in outs.items():
        assert np.all(np.isfinite(value)), name
        assert 0.3 < value.std() < 3.0, (name, value.std())  # BN keeps unit scale through the depth
    emb, same, diff = _separation(model)
    assert 0.3 < emb.std() < 3.0 and np.abs(emb).max() < 50
    assert same.mean() > diff.mean() + 0.2, (same.mean(), diff.mean())


def test_other_mxnet_entries_are_refused(spec, tmp_path):
    with pytest.raises(FacezooError, match="architecture"):
        sm.write_standin(dataclasses.replace(spec, architecture="mobilefacenet"), tmp_path)
    with pytest.raises(FacezooError, match="scale"):
        sm.write_standin(spec, tmp_path, scale="huge")


@pytest.mark.slow
def test_full_size_standin_through_build_standins(tmp_path):
    started = time.perf_counter()
    built = build_standins(load_zoo(), tmp_path, [MODEL])
    seconds = time.perf_counter() - started
    assert built.built == [MODEL] and seconds < 120, seconds
    (record,) = built.for_model(MODEL)
    with zipfile.ZipFile(record.path) as zf:
        info = {i.filename: i for i in zf.infolist()}
        assert info[PARAMS_MEMBER].file_size == REAL_PARAMS_SIZE  # same keys, shapes and format
        assert hashlib.sha256(zf.read(SYMBOL_MEMBER)).hexdigest() == sm.SYMBOL_SHA256
        zf.extractall(tmp_path / "x")
    params = load_params(tmp_path / "x" / PARAMS_MEMBER)
    assert [(k, v.shape) for k, v in params.items()] == sm.param_table("full")
    graph = load_symbol(tmp_path / "x" / SYMBOL_MEMBER)
    args, auxs = split_arg_aux(params)
    emb, same, diff = _separation(MXNetModel(graph, args, auxs))
    assert emb.shape[1] == 512 and 0.3 < emb.std() < 3.0
    assert same.mean() > diff.mean() + 0.3 and np.median(same) > np.quantile(diff, 0.95), (same, diff)
