"""Element-wise operators, activations and reductions."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from facezoo.converters.mindir.common import (
    _FLOAT_TYPES,
    _attrs,
    _axes_of,
    _fail,
    _lit,
    _norm_axis,
    _only_first_output,
    _out,
    _rank_or_none,
    _unsupported,
)
from facezoo.converters.mindir.ops_shape import _reshape_tuple


def _h_alias(b, node):
    _only_first_output(node, b)
    if node.op_type == "Dropout":
        a = _attrs(node)
        training = b.optional(node, 2)
        if training is not None and (not b.is_const(training) or bool(b.consts[training].reshape(-1)[0])):
            raise _unsupported(node, "training_mode must be a constant False")
        if a.get("is_test", 1) == 0 and b.opset < 7:
            raise _unsupported(node, "is_test=0")
    b.vars[node.output[0]] = b.expr(node.input[0])


def _h_cast(b, node):
    to = int(_attrs(node)["to"])
    if to not in _FLOAT_TYPES:
        raise _unsupported(node, f"cast to {TensorProto.DataType.Name(to)} (only casts to float types are supported)")
    _out(b, node, f"ops.cast({b.expr(node.input[0])}, {b.dt})")


def _unary(fn: str):
    def handler(b, node):
        _out(b, node, f"{fn}({b.expr(node.input[0])})")

    return handler


def _h_tanh(b, node):
    # MindSpore's CPU tanh is off by up to 1e-4 in the tails; 2 sigmoid(2x) - 1 stays within 2e-6
    _out(b, node, f"2.0 * ops.sigmoid(2.0 * {b.expr(node.input[0])}) - 1.0")


def _h_leaky(b, node):
    alpha = float(_attrs(node).get("alpha", 0.01))
    x = b.expr(node.input[0])
    _out(b, node, f"ops.where({x} >= 0, {x}, {x} * {_lit(np.float32(alpha))})")


def _h_prelu(b, node):
    x = b.expr(node.input[0])
    rank = len(b.shape(node.input[0], node))
    slope = b.operand(node.input[1], rank)
    _out(b, node, f"ops.where({x} >= 0, {x}, {x} * {slope})")


_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


def _h_binary(b, node):
    x, y = node.input[0], node.input[1]
    if b.is_const(x) and b.consts[x].dtype.kind in "iu" or b.is_const(y) and b.consts[y].dtype.kind in "iu":
        raise _unsupported(node, "integer arithmetic on runtime tensors")
    ex = b.operand(x, _rank_or_none(b, y))
    ey = b.operand(y, _rank_or_none(b, x))
    _out(b, node, f"{ex} {_BINARY[node.op_type]} {ey}")


def _h_variadic(fn: str | None):
    def handler(b, node):
        names = [i for i in node.input if i]
        rank = max((_rank_or_none(b, n) or 0) for n in names)
        terms = [b.operand(n, rank) for n in names]
        if not any(n in b.vars for n in names):
            raise _fail(node, "no runtime input")
        if len(terms) == 1:
            b.vars[node.output[0]] = b.expr(names[0])
            return
        acc = terms[0]
        for t in terms[1:]:
            acc = f"({acc} + {t})" if fn is None else f"{fn}({acc}, {t})"
        _out(b, node, acc)

    return handler


def _h_clip(b, node):
    a = _attrs(node)
    lo, hi = a.get("min"), a.get("max")
    if b.opset >= 11:
        mn, mx = b.optional(node, 1), b.optional(node, 2)
        lo = None if mn is None else float(b.const(mn, node, "min").reshape(-1)[0])
        hi = None if mx is None else float(b.const(mx, node, "max").reshape(-1)[0])
    x = b.expr(node.input[0])
    if lo is None and hi is None:
        b.vars[node.output[0]] = x
        return
    lo_s = "None" if lo is None else _lit(np.float32(lo))
    hi_s = "None" if hi is None else _lit(np.float32(hi))
    _out(b, node, f"ops.clamp({x}, {lo_s}, {hi_s})")


def _h_softmax(b, node):
    s = b.shape(node.input[0], node)
    rank = len(s)
    default = -1 if b.opset >= 13 else 1
    axis = _norm_axis(int(_attrs(node).get("axis", default)), rank, node)
    x = b.expr(node.input[0])
    if b.fp16:  # FP32 inside, as onnx_graph.FP16_KEEP_FP32 does for ONNX (why: there)
        x = f"ops.cast({x}, ms.float32)"
    if b.opset >= 13 or axis == rank - 1:
        _out(b, node, _back_to_fp16(b, node, f"ops.softmax({x}, {axis})"))
        return
    # opset < 13: softmax over the flattened dims from `axis` on
    tail = b.static(node.input[0], node, range(axis, rank))
    flat = f"ops.reshape({x}, (-1, {math.prod(tail)}))"
    _out(b, node, _back_to_fp16(b, node, f"ops.reshape(ops.softmax({flat}, -1), {_lit(_reshape_tuple(s, node))})"))


def _back_to_fp16(b, node, expr: str) -> str:
    """An FP32 result of an FP16 cell: FP16 again for the nodes after it, FP32 where it is a graph
    output (the output is FP32 anyway, and keeps the resolution the FP32 step bought)."""
    if not b.fp16 or node.output[0] in {value.name for value in b.graph.output}:
        return expr
    return f"ops.cast({expr}, ms.float16)"


def _h_reduce(kind: str):
    def handler(b, node):
        a = _attrs(node)
        s = b.shape(node.input[0], node)
        rank = len(s)
        if "axes" in a or (b.opset < 18 and kind != "ReduceSum") or (kind == "ReduceSum" and b.opset < 13):
            axes = a.get("axes")
        else:
            axes = _axes_of(b, node)
        if not axes:
            if int(a.get("noop_with_empty_axes", 0)):
                b.vars[node.output[0]] = b.expr(node.input[0])
                return
            axes = list(range(rank))
        axes_t = _lit(tuple(sorted(_norm_axis(int(v), rank, node) for v in axes)))
        keep = bool(a.get("keepdims", 1))
        x = b.expr(node.input[0])
        code = {
            "ReduceMean": f"ops.mean({x}, {axes_t}, {keep})",
            "ReduceSum": f"ops.sum({x}, {axes_t}, {keep})",
            "ReduceSumSquare": f"ops.sum({x} * {x}, {axes_t}, {keep})",
            "ReduceMax": f"ops.amax({x}, {axes_t}, {keep})",
            "ReduceMin": f"ops.amin({x}, {axes_t}, {keep})",
        }[kind]
        _out(b, node, code)

    return handler


