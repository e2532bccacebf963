"""Fuzzing the MXNet readers: corrupt input may only ever raise MXNetFormatError, and the
.params reader never allocates more than the file could hold."""

from __future__ import annotations

import json
import os
import struct
import tempfile
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facezoo.sources.mxnet.params import MXNetFormatError, dump_params, load_params, parse_params
from facezoo.sources.mxnet.symbol import parse_symbol

DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.int32, np.int8, np.int64]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# allocation headroom besides the file-sized copies: Python objects, struct/unpack temporaries
SLACK = 64 * 1024


@st.composite
def valid_params(draw) -> bytes:
    version = draw(st.sampled_from([0, 1, 2, 3]))
    n = draw(st.integers(1, 3))
    arrays = {}
    for i in range(n):
        dtype = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        arrays[f"arg:p{i}"] = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return dump_params(arrays, version)


# values that make size fields interesting: huge, negative, boundary
EVIL_INTS = st.sampled_from([0, 1, 2, 3, 31, 32, 33, 255, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**62, 2**63 - 1,
                             2**63, 2**64 - 1, 0x112, 0xF993FAC8, 0xF993FAC9, 0xF993FACA]) | st.integers(0, 2**64 - 1)


@st.composite
def mutated_params(draw) -> bytes:
    data = bytearray(draw(valid_params()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "u32", "u64", "truncate", "insert", "delete", "append"]))
        # mostly behind the 24-byte list header, so the records and names get exercised
        low = 0 if draw(st.integers(0, 4)) == 0 else min(24, max(len(data) - 1, 0))
        pos = draw(st.integers(low, max(len(data) - 1, low)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "u32":
            data[pos : pos + 4] = struct.pack("<I", draw(EVIL_INTS) & 0xFFFFFFFF)
        elif kind == "u64":
            # size fields sit on 4-byte boundaries in this format
            pos -= pos % 4
            data[pos : pos + 8] = struct.pack("<Q", draw(EVIL_INTS))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _parse_bounded(data: bytes) -> None:
    """Parse, allowing only MXNetFormatError, and check the allocation peak."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result = parse_params(data, "fuzz.params")
        except MXNetFormatError as exc:
            assert "fuzz.params" in str(exc)
            result = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the arrays (copies) and names together never exceed the file; everything else is small
    assert peak <= len(data) + SLACK, f"peak {peak} bytes for a {len(data)}-byte file"
    if result is not None:
        assert sum(a.nbytes for a in result.values()) <= len(data)


@FUZZ
@given(mutated_params())
def test_mutated_params_only_raise_format_errors(data):
    _parse_bounded(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_format_errors(data):
    _parse_bounded(data)


@FUZZ
@given(st.binary(max_size=256), st.integers(0, 2**64 - 1))
def test_random_records_behind_a_valid_header(body, count):
    _parse_bounded(struct.pack("<QQQ", 0x112, 0, count % 8 if count % 3 else count) + body)


@settings(max_examples=40, deadline=None)
@given(mutated_params())
def test_mutated_files_via_mmap(data):
    fd, path = tempfile.mkstemp(suffix=".params")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            load_params(path)
        except MXNetFormatError as exc:
            assert path in str(exc)
    finally:
        os.unlink(path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["nodes", "op", "name", "inputs", "attrs", "attr", "param", "heads", "arg_nodes", "node_row_ptr", "x"]
    ), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def node_lists(draw):
    nodes = []
    for i in range(draw(st.integers(1, 5))):
        node = {"op": draw(st.sampled_from(["null", "relu", "Convolution", 3])), "name": f"n{i}",
                "inputs": draw(st.lists(st.lists(st.integers(-1, 6), max_size=4), max_size=3))}
        if draw(st.booleans()):
            node[draw(st.sampled_from(["attrs", "attr", "param"]))] = draw(JSON)
        nodes.append(node)
    doc = {"nodes": nodes}
    for key in ("heads", "arg_nodes", "node_row_ptr"):
        if draw(st.booleans()):
            doc[key] = draw(JSON)
    return doc


@FUZZ
@given(st.one_of(JSON, node_lists()))
def test_symbol_parser_only_raises_format_errors(doc):
    try:
        g = parse_symbol(json.loads(json.dumps(doc)), "fuzz-symbol.json")
    except MXNetFormatError:
        return
    for node in g.nodes:
        for src, out in node.inputs:
            assert 0 <= src < len(g.nodes) and out >= 0
