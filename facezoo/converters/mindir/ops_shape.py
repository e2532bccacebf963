"""Operators that move data around: reshapes, transposes, concatenation, gathers, padding."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx

from facezoo.converters.mindir.common import (
    _attrs,
    _axes_of,
    _fail,
    _lit,
    _norm_axis,
    _out,
    _split_sizes,
    _unsupported,
)


def _reshape_tuple(dims: Sequence, node: onnx.NodeProto) -> tuple:
    """Target for ops.reshape: static dims as they are, the one dynamic dim as -1."""
    dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    if len(dynamic) > 1:
        raise _unsupported(node, f"target shape {list(dims)} has {len(dynamic)} dynamic dimensions")
    return tuple(-1 if not isinstance(d, int) else int(d) for d in dims)


def _symbolic_reshape(in_dims: list, target: Sequence[int], allowzero: int, node: onnx.NodeProto) -> list:
    out: list = []
    unknown = None
    for i, t in enumerate(int(v) for v in target):
        if t == 0 and not allowzero:
            if i >= len(in_dims):
                raise _fail(node, f"target {list(target)} copies dimension {i} of a rank-{len(in_dims)} input")
            out.append(in_dims[i])
        elif t == -1:
            if unknown is not None:
                raise _fail(node, f"target {list(target)} has two -1 entries")
            unknown = i
            out.append(-1)
        elif t < 0:
            raise _fail(node, f"invalid target dimension {t}")
        else:
            out.append(t)
    if unknown is not None:
        num = [d for d in in_dims]
        den = [d for k, d in enumerate(out) if k != unknown]
        for d in list(den):  # cancel matching symbolic dims
            if not isinstance(d, int) and d is not None and d in num:
                num.remove(d)
                den.remove(d)
        if all(isinstance(d, int) for d in num) and all(isinstance(d, int) for d in den):
            n, m = math.prod(num), math.prod(den)
            if m == 0 or n % m:
                raise _fail(node, f"cannot reshape {in_dims} to {list(target)}")
            out[unknown] = n // m
        else:
            out[unknown] = None
    return out


def _h_reshape(b, node):
    a = _attrs(node)
    allowzero = int(a.get("allowzero", 0))
    target = b.const(node.input[1], node, "shape").reshape(-1)
    if allowzero and 0 in target:
        raise _unsupported(node, "allowzero with zero-sized dimensions")
    dims = _symbolic_reshape(b.shape(node.input[0], node), target, allowzero, node)
    x = b.expr(node.input[0])
    if sum(not isinstance(d, int) for d in dims) > 1 and not allowzero:
        # more than one dimension unknown until run time (a net that runs at any size: [N, -1, C]):
        # the dimensions ONNX copies (0) are read from the input then, the rest are constants
        parts = [f"ops.dyn_shape({x})[{i}:{i + 1}]" if int(t) == 0 else
                 f"ms.Tensor([{int(t)}], ms.int64)" for i, t in enumerate(target)]
        if sum(int(t) == -1 for t in target) + sum(int(t) == 0 and not isinstance(dims[i], int)
                                                   for i, t in enumerate(target)) != sum(
                not isinstance(d, int) for d in dims):
            raise _unsupported(node, f"target shape {list(dims)}: dynamic dimensions that are neither copied nor -1")
        _out(b, node, f"ops.reshape({x}, ops.concat(({', '.join(parts)},)))", shape=dims)
        return
    _out(b, node, f"ops.reshape({x}, {_lit(_reshape_tuple(dims, node))})", shape=dims)


def _h_flatten(b, node):
    s = b.shape(node.input[0], node)
    axis = int(_attrs(node).get("axis", 1))
    axis = axis % len(s) if axis != len(s) else axis
    head, tail = s[:axis], s[axis:]

    def prod(ds):
        return math.prod(ds) if all(isinstance(d, int) for d in ds) else None

    dims = [prod(head) if head else 1, prod(tail) if tail else 1]
    _out(b, node, f"ops.reshape({b.expr(node.input[0])}, {_lit(_reshape_tuple(dims, node))})", shape=dims)


def _h_transpose(b, node):
    rank = len(b.shape(node.input[0], node))
    perm = _attrs(node).get("perm") or list(reversed(range(rank)))
    s = b.shape(node.input[0], node)
    _out(b, node, f"ops.transpose({b.expr(node.input[0])}, {_lit(tuple(int(p) for p in perm))})",
         shape=[s[p] for p in perm])


def _h_unsqueeze(b, node):
    axes = _axes_of(b, node)
    if not axes:
        raise _fail(node, "no axes")
    s = b.shape(node.input[0], node)
    out_rank = len(s) + len(axes)
    expr = b.expr(node.input[0])
    dims = list(s)
    for a in sorted(_norm_axis(a, out_rank, node) for a in axes):
        expr = f"ops.expand_dims({expr}, {a})"
        dims.insert(a, 1)
    _out(b, node, expr, shape=dims)


def _h_squeeze(b, node):
    s = b.shape(node.input[0], node)
    axes = _axes_of(b, node)
    if axes is None:
        if any(not isinstance(d, int) for d in s):
            raise _unsupported(node, f"squeeze without axes on a tensor with dynamic dims {s}")
        axes = [i for i, d in enumerate(s) if d == 1]
    axes = sorted(_norm_axis(a, len(s), node) for a in axes)
    for a in axes:
        if isinstance(s[a], int) and s[a] != 1:
            raise _fail(node, f"cannot squeeze axis {a} of size {s[a]}")
    dims = [d for i, d in enumerate(s) if i not in axes]
    if not axes:
        b.vars[node.output[0]] = b.expr(node.input[0])
        return
    _out(b, node, f"ops.squeeze({b.expr(node.input[0])}, {_lit(tuple(axes))})", shape=dims)


def _h_concat(b, node):
    names = [i for i in node.input if i]
    rank = len(b.shape(names[0], node))
    axis = _norm_axis(int(_attrs(node)["axis"]), rank, node)
    parts = ", ".join(b.expr(n) for n in names)
    _out(b, node, f"ops.cat(({parts},), {axis})")


def _h_split(b, node):
    s = b.shape(node.input[0], node)
    axis = _norm_axis(int(_attrs(node).get("axis", 0)), len(s), node)
    dim = b.static(node.input[0], node, [axis])[0]
    sizes = _split_sizes(b, node, dim)
    if len(sizes) != len(node.output):
        raise _fail(node, f"{len(sizes)} split sizes for {len(node.output)} outputs")
    # slices, not ops.split: after some ops (ops.pad) a dynamic-batch MINDIR export of ops.split
    # keeps a shape check that the loaded graph cannot infer
    x = b.expr(node.input[0])
    lead = ":, " * axis
    start = 0
    for k, name in enumerate(node.output):
        stop = start + sizes[k]
        if name:
            dims = list(s)
            dims[axis] = sizes[k]
            _out(b, node, f"{x}[{lead}{start}:{stop}]", index=k, shape=dims)
        start = stop


def _h_gather(b, node):
    data, idx_name = node.input[0], node.input[1]
    if not b.is_const(idx_name):
        raise _unsupported(node, "indices computed at run time (only constant indices are supported)")
    s = b.shape(data, node)
    axis = _norm_axis(int(_attrs(node).get("axis", 0)), len(s), node)
    n = b.static(data, node, [axis])[0]
    idx = b.consts[idx_name].astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise _fail(node, f"indices out of range for dimension {axis} of size {n}")
    idx = np.where(idx < 0, idx + n, idx).astype(np.int32)
    x = b.expr(data)
    if idx.ndim == 0:
        k = b.tensor(f"{node.name}_index", idx.reshape(1))
        _out(b, node, f"ops.squeeze(ops.gather({x}, self.{k}, {axis}), ({axis},))")
    else:
        k = b.tensor(f"{node.name}_indices", idx)
        _out(b, node, f"ops.gather({x}, self.{k}, {axis})")


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def _h_pad(b, node):
    """Pad: attributes up to opset 10, constant inputs (pads, value, axes) from 11."""
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in _PAD_MODES:
        raise _unsupported(node, f"mode {mode!r}")
    rank = len(b.shape(node.input[0], node))
    if b.opset < 11:
        pads, value = [int(p) for p in a.get("pads", a.get("paddings", []))], float(a.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(p) for p in b.const(node.input[1], node, "pads").reshape(-1)]
        fill = b.optional(node, 2)
        value = 0.0 if fill is None else float(b.const(fill, node, "constant_value").reshape(-1)[0])
        axes_name = b.optional(node, 3)
        axes = list(range(rank)) if axes_name is None else [
            _norm_axis(int(v), rank, node) for v in b.const(axes_name, node, "axes").reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise _fail(node, f"pads {pads} do not fit {len(axes)} axes")
    if any(p < 0 for p in pads):
        raise _unsupported(node, f"negative pads {pads} (cropping)")
    begin = dict(zip(axes, pads[: len(axes)]))
    end = dict(zip(axes, pads[len(axes):]))
    padded = [d for d in range(rank) if begin.get(d, 0) or end.get(d, 0)]
    if not padded:
        b.vars[node.output[0]] = b.expr(node.input[0])
        return
    # ops.pad takes (begin, end) pairs from the last dimension backwards
    widths = []
    for d in range(rank - 1, min(padded) - 1, -1):
        widths += [begin.get(d, 0), end.get(d, 0)]
    fill_value = "None" if mode != "constant" else _lit(np.float32(value))
    _out(b, node, f"ops.pad({b.expr(node.input[0])}, {_lit(tuple(widths))}, mode={_PAD_MODES[mode]!r}, value={fill_value})")


def _h_shape(b, node):
    s = b.shape(node.input[0], node)
    if not all(isinstance(d, int) for d in s):
        raise _unsupported(node, f"Shape of a tensor with dynamic dims {s} (only static shapes fold)")
    b.consts[node.output[0]] = np.array(s, np.int64)


