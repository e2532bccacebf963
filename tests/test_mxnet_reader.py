"""MXNet .params and -symbol.json reading (real reference files, crafted malformed files)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from facezoo.errors import FacezooError
from facezoo.sources.mxnet.params import (
    V1_MAGIC,
    V2_MAGIC,
    V3_MAGIC,
    MXNetFormatError,
    dump_params,
    load_params,
    save_params,
    split_arg_aux,
)
from facezoo.sources.mxnet.symbol import (
    Graph,
    Node,
    SymbolBuilder,
    graph_to_json,
    load_symbol,
    parse_int_tuple,
    save_symbol,
)

REF = Path(__file__).resolve().parent / "data" / "reference" / "mxnet"
TINY = REF / "tiny-r34"
DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.int32, np.int8, np.int64]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# ----------------------------------------------------------------------------------- params ----
@pytest.mark.parametrize("version", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_params_round_trip(tmp_path, version, dtype):
    rng = np.random.default_rng(version)
    arrays = {
        "arg:w": (rng.standard_normal((4, 3, 2, 2)) * 50).astype(dtype),
        "arg:b": (rng.standard_normal(7) * 50).astype(dtype),
        "aux:empty": np.zeros((0, 5), dtype),
        "arg:ümlaut": np.arange(6).reshape(1, 2, 3).astype(dtype),
    }
    if version == 3:
        arrays["arg:scalar"] = np.array(5, dtype)
    path = tmp_path / f"v{version}.params"
    save_params(path, arrays, version=version)
    back = load_params(path)
    assert list(back) == list(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable and back[k].flags.owndata


def test_record_versions_have_their_layout(tmp_path):
    a = {"arg:x": np.ones((2, 3), np.float32)}
    v0, v1, v2, v3 = (dump_params(a, v) for v in range(4))
    off = 24  # list magic, reserved, count
    assert struct.unpack_from("<I", v2, off)[0] == V2_MAGIC
    assert struct.unpack_from("<Ii", v2, off) == (V2_MAGIC, 0)
    assert struct.unpack_from("<I", v3, off)[0] == V3_MAGIC
    assert struct.unpack_from("<Iiqq", v1, off) == (V1_MAGIC, 2, 2, 3)  # no storage type
    assert struct.unpack_from("<III", v0, off) == (2, 2, 3)  # ndim and u32 dims
    assert len(v2) - len(v1) == 4 and len(v1) - len(v0) == 4 + 8


def test_tiny_r34_params_real_file():
    params = load_params(TINY / "tiny-r34-0000.params")
    keys = [r["key"] for r in _rows(REF / "model-r34-amf.params.tsv")]
    assert list(params) == keys  # same names, same order as the real r34 checkpoint
    assert all(v.dtype == np.float32 for v in params.values())
    assert params["arg:conv0_weight"].shape == (8, 3, 3, 3)
    args, auxs = split_arg_aux(params)
    assert len(args) + len(auxs) == 276
    assert "fc1_moving_var" in auxs and "fc1_gamma" in args
    assert not np.allclose(args["fc1_gamma"], 1)  # the fix_gamma trap is armed
    # writing it back as V2 reproduces MXNet's bytes exactly
    assert dump_params(params, 2) == (TINY / "tiny-r34-0000.params").read_bytes()


def test_split_arg_aux_unprefixed_keys_are_args():
    args, auxs = split_arg_aux({"arg:a": 1, "aux:b": 2, "c": 3})
    assert args == {"a": 1, "c": 3} and auxs == {"b": 2}


# ---------------------------------------------------------------- crafted malformed files ----
def _header(count: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, count)


def _v2(shape, flag=0, data=None, stype=0, magic=V2_MAGIC) -> bytes:
    head = struct.pack("<Iii", magic, stype, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
    if data is None:
        data = b"\0" * (4 * int(np.prod(shape)))
    return head + struct.pack("<iii", 1, 0, flag) + data


def _names(*names: str) -> bytes:
    out = struct.pack("<Q", len(names))
    for n in names:
        raw = n.encode()
        out += struct.pack("<Q", len(raw)) + raw
    return out


GOOD = _header(1) + _v2((2, 2)) + _names("arg:x")

MALFORMED = {
    "empty": (b"", "empty file"),
    "short-header": (GOOD[:5], "truncated"),
    "bad-list-magic": (struct.pack("<Q", 0x113) + GOOD[8:], "unknown magic 0x113"),
    "count-too-large": (_header(10**12) + _v2((2, 2)) + _names("arg:x"), "array count"),
    "unknown-record-magic": (_header(1) + struct.pack("<I", 0xDEADBEEF) + b"\0" * 40 + _names("arg:x"),
                             "unknown NDArray magic 0xDEADBEEF"),
    "sparse-storage": (_header(1) + _v2((2, 2), stype=2) + _names("arg:x"), "storage type 2 (csr) is not dense"),
    "negative-ndim": (_header(1) + struct.pack("<Iii", V2_MAGIC, 0, -7) + b"\0" * 64 + _names("arg:x"),
                      "invalid ndim -7"),
    "absurd-ndim": (_header(1) + struct.pack("<Iii", V2_MAGIC, 0, 1000) + b"\0" * 64 + _names("arg:x"),
                    "invalid ndim 1000"),
    "ndim-past-eof": (_header(1) + struct.pack("<Iii", V2_MAGIC, 0, 30) + b"\0" * 40, "30 i64 dims"),
    "negative-dim": (_header(1) + _v2((2, -2)) + _names("arg:x"), "negative dimension -2"),
    "size-larger-than-file": (_header(1) + _v2((1 << 30, 1 << 30), data=b"") + _names("arg:x"),
                              "declares 4611686018427387904 bytes"),
    "unknown-type-flag": (_header(1) + _v2((2, 2), flag=9) + _names("arg:x"), "unknown type flag 9"),
    "truncated-data": ((_header(1) + _v2((2, 2)))[:-3], "bytes of data"),
    "name-count-mismatch": (_header(1) + _v2((2, 2)) + _names("arg:x", "arg:y"), "name count 2 does not match"),
    "unnamed-list": (_header(1) + _v2((2, 2)) + struct.pack("<Q", 0), "unnamed"),
    "truncated-names": (_header(1) + _v2((2, 2)) + struct.pack("<QQ", 1, 500) + b"arg:x", "truncated names"),
    "missing-names": (_header(1) + _v2((2, 2)), "name count"),
    "trailing-garbage": (GOOD + b"junk", "4 bytes of trailing garbage"),
    "non-utf8-name": (_header(1) + _v2((2, 2)) + struct.pack("<QQ", 1, 2) + b"\xff\xfe", "not valid UTF-8"),
    "duplicate-name": (_header(2) + _v2((1,)) + _v2((1,)) + _names("arg:x", "arg:x"), "duplicate array name"),
    "v2-shapeless": (_header(1) + struct.pack("<Iii", V2_MAGIC, 0, 0) + _names("arg:x"), "shapeless"),
    "v3-unknown-shape": (_header(1) + struct.pack("<Iii", V3_MAGIC, 0, -1) + _names("arg:x"), "unknown shape"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_params_are_reported(tmp_path, case):
    data, fragment = MALFORMED[case]
    path = tmp_path / f"{case}.params"
    path.write_bytes(data)
    with pytest.raises(MXNetFormatError) as info:
        load_params(path)
    msg = str(info.value)
    assert fragment in msg
    assert str(path) in msg
    assert "byte offset" in msg and info.value.offset is not None and 0 <= info.value.offset <= len(data)
    assert isinstance(info.value, FacezooError)


def test_good_crafted_file_loads(tmp_path):
    path = tmp_path / "good.params"
    path.write_bytes(GOOD)
    assert load_params(path)["arg:x"].shape == (2, 2)


def test_offset_points_at_the_fault(tmp_path):
    data = _header(2) + _v2((3,), data=b"\0" * 12) + _v2((2,), flag=42, data=b"\0" * 8) + _names("a", "b")
    path = tmp_path / "x.params"
    path.write_bytes(data)
    with pytest.raises(MXNetFormatError) as info:
        load_params(path)
    rec2 = 24 + len(_v2((3,), data=b"\0" * 12))
    assert info.value.offset == rec2 + 4 + 4 + 4 + 8 + 8  # magic, stype, ndim, dim, ctx -> type flag
    assert "record 1" in str(info.value)


# ----------------------------------------------------------------------------------- symbol ----
def test_real_r34_symbol_matches_ops_table():
    g = load_symbol(REF / "model-r34-amf-symbol.json")
    rows = _rows(REF / "model-r34-amf.ops.tsv")
    ops = [(i, n) for i, n in enumerate(g.nodes) if not n.is_variable]
    assert len(ops) == len(rows) == 130
    for (i, node), row in zip(ops, rows):
        assert i == int(row["node_index"])
        assert node.op == row["op"] and node.name == row["name"]
        assert node.attrs == json.loads(row["attrs"])
        assert ",".join(g.nodes[src].name for src, _ in node.inputs) == row["inputs"]
    assert g.mxnet_version == 1201
    assert [g.nodes[h].name for h, _ in g.heads] == ["fc1"]
    fc1 = g.node("fc1")
    assert fc1.op == "BatchNorm" and fc1.get_bool("fix_gamma") is True and fc1.get_float("eps") == 2e-5
    assert g.node("pre_fc1").get_int("num_hidden") == 512
    assert g.node("conv0").get_tuple("kernel") == (3, 3) and g.node("conv0").get_bool("no_bias")
    assert g.resolve_output("fc1_output") == g.resolve_output("fc1") == (g.index("fc1"), 0)
    assert g.output_name(g.heads[0]) == "fc1_output"
    assert len(g.arg_nodes) == 277 and all(g.nodes[a].is_variable for a in g.arg_nodes)


def test_tiny_r34_symbol_has_the_real_structure():
    real = load_symbol(REF / "model-r34-amf-symbol.json")
    tiny = load_symbol(TINY / "tiny-r34-symbol.json")
    assert [(n.op, n.name, n.inputs) for n in tiny.nodes] == [(n.op, n.name, n.inputs) for n in real.nodes]
    assert tiny.mxnet_version == 10901


def test_real_mobilefacenet_symbol():
    g = load_symbol(REF / "model-y1-test2-symbol.json")
    bns = [n for n in g.operators if n.op == "BatchNorm"]
    assert len(bns) == 50
    assert sum(not n.has("eps") for n in bns) == 49  # MXNet default 1e-3 applies
    assert g.nodes[g.heads[0][0]].name == "fc1"
    dw = [n for n in g.operators if n.op == "Convolution" and n.get_int("num_group", 1) > 1]
    assert dw and all(n.get_int("num_group") == n.get_int("num_filter") for n in dw)
    assert g.mxnet_version == 10000


def _small_graph() -> Graph:
    b = SymbolBuilder()
    b.op("_minus_scalar", "sub0", ["data"], scalar=127.5)
    b.op("Convolution", "conv0", ["sub0", "conv0_weight"], kernel=(3, 3), num_filter=4, pad=(1, 1), no_bias=True)
    b.op("BatchNorm", "bn0", ["conv0", "bn0_gamma", "bn0_beta", "bn0_moving_mean", "bn0_moving_var"],
         fix_gamma=False, eps=2e-5)
    b.op("LeakyReLU", "relu0", ["bn0", "relu0_gamma"], act_type="prelu")
    return b.graph()


@pytest.mark.parametrize("spelling", ["attrs", "attr", "param"])
@pytest.mark.parametrize("triples", [True, False], ids=["triples", "pairs"])
def test_symbol_spellings(tmp_path, spelling, triples):
    g = _small_graph()
    path = tmp_path / "x-symbol.json"
    save_symbol(path, g, spelling=spelling, triples=triples)
    raw = json.loads(path.read_text())
    conv = next(n for n in raw["nodes"] if n["name"] == "conv0")
    assert spelling in conv
    assert len(conv["inputs"][0]) == (3 if triples else 2)
    back = load_symbol(path)
    assert [(n.op, n.name, n.attrs, n.inputs) for n in back.nodes] == [
        (n.op, n.name, n.attrs, n.inputs) for n in g.nodes
    ]
    assert back.node("conv0").get_tuple("pad") == (1, 1)
    assert back.node("bn0").get_float("eps") == 2e-5


def test_old_symbol_without_optional_keys_and_merged_param_attr(tmp_path):
    doc = {
        "nodes": [
            {"op": "null", "param": {}, "name": "data", "inputs": [], "backward_source_id": -1},
            {"op": "null", "param": {}, "name": "fc_weight", "inputs": [], "attr": {"lr_mult": "1.0"}},
            {
                "op": "FullyConnected",
                "param": {"no_bias": "True", "num_hidden": "10"},
                "attr": {"ctx_group": "dev1"},
                "name": "fc",
                "inputs": [[0, 0], [1, 0]],
                "backward_source_id": -1,
            },
        ]
    }
    path = tmp_path / "old-symbol.json"
    path.write_text(json.dumps(doc))
    g = load_symbol(path)
    assert g.heads == [(2, 0)] and g.arg_nodes == [0, 1] and g.node_row_ptr is None
    assert g.node("fc").attrs == {"no_bias": "True", "num_hidden": "10", "ctx_group": "dev1"}
    assert g.node("fc").inputs == [(0, 0), (1, 0)]
    assert g.mxnet_version is None


def test_real_symbol_rewritten_in_every_spelling(tmp_path):
    g = load_symbol(REF / "model-r34-amf-symbol.json")
    for spelling in ("attr", "param"):
        path = tmp_path / f"{spelling}-symbol.json"
        path.write_text(json.dumps(graph_to_json(g, spelling, triples=False)))
        back = load_symbol(path)
        assert [(n.op, n.name, n.attrs, n.inputs) for n in back.nodes] == [
            (n.op, n.name, n.attrs, n.inputs) for n in g.nodes
        ]


BAD_SYMBOLS = {
    "not-json": ("{nodes: ", "invalid JSON"),
    "no-nodes": ({"heads": []}, "no 'nodes' list"),
    "forward-reference": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                                     {"op": "relu", "name": "r", "inputs": [[5, 0, 0]]}]}, "not an earlier node"),
    "self-reference": ({"nodes": [{"op": "relu", "name": "r", "inputs": [[0, 0]]}]}, "not an earlier node"),
    "variable-output-1": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                                     {"op": "relu", "name": "r", "inputs": [[0, 1]]}]}, "output 1"),
    "bad-entry": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                             {"op": "relu", "name": "r", "inputs": [[0]]}]}, "[node, output]"),
    "head-out-of-range": ({"nodes": [{"op": "null", "name": "a", "inputs": []}], "heads": [[3, 0, 0]]},
                          "out of range"),
    "arg-node-not-variable": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                                         {"op": "relu", "name": "r", "inputs": [[0, 0]]}], "arg_nodes": [1]},
                              "is not a variable"),
    "row-ptr-output-count": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                                        {"op": "relu", "name": "r", "inputs": [[0, 0]]},
                                        {"op": "relu", "name": "s", "inputs": [[1, 2]]}],
                              "node_row_ptr": [0, 1, 2, 3]}, "which has 1 outputs"),
    "variable-with-inputs": ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                                        {"op": "null", "name": "b", "inputs": [[0, 0]]}]}, "cannot have inputs"),
    "attrs-not-object": ({"nodes": [{"op": "null", "name": "a", "attrs": [1], "inputs": []}]}, "must be an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_SYMBOLS))
def test_malformed_symbols_are_reported(tmp_path, case):
    doc, fragment = BAD_SYMBOLS[case]
    path = tmp_path / f"{case}-symbol.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(MXNetFormatError) as info:
        load_symbol(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_attribute_helpers():
    n = Node("Convolution", "conv7", {"kernel": "(3, 3)", "one": "(5,)", "lst": "[1,2]", "bare": "4",
                                      "empty": "()", "t": "True", "f": "false", "eps": "1e-05", "n": "64",
                                      "bad": "(3, x)"})
    assert n.get_tuple("kernel") == (3, 3) and n.get_tuple("one") == (5,) and n.get_tuple("lst") == (1, 2)
    assert n.get_tuple("bare") == (4,) and n.get_tuple("empty") == ()
    assert n.get_bool("t") is True and n.get_bool("f") is False and n.get_bool("absent", True) is True
    assert n.get_float("eps") == 1e-5 and n.get_int("n") == 64 and n.get_int("absent", 1) == 1
    for call in (lambda: n.get_tuple("bad"), lambda: n.get_bool("n"), lambda: n.get_int("eps"),
                 lambda: n.get_float("kernel"), lambda: n.get_int("absent")):
        with pytest.raises(MXNetFormatError, match="conv7"):
            call()
    assert parse_int_tuple("(-1, 0, 512)") == (-1, 0, 512)


def test_resolve_output_errors_name_the_request():
    g = _small_graph()
    with pytest.raises(MXNetFormatError, match="nope"):
        g.resolve_output("nope")
