"""What the importer evaluates itself: constant subgraphs (NumPy) and the shapes ONNX inference
could not give."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from facezoo.converters.mindir.common import (
    _attrs,
    _axes_of,
    _split_sizes,
    _unsupported,
)


def _np_unsqueeze(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    out_rank = x.ndim + len(axes)
    for a in sorted(a % out_rank for a in axes):
        x = np.expand_dims(x, a)
    return x


def _np_reshape(x: np.ndarray, shape: Sequence[int], allowzero: int) -> np.ndarray:
    target = [int(d) for d in shape]
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


def _cast_np(x: np.ndarray, to: int) -> np.ndarray:
    return x.astype(helper.tensor_dtype_to_np_dtype(to))


_SAME_SHAPE = {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "LeakyRelu", "PRelu", "Clip",
               "BatchNormalization", "Identity", "Dropout", "Cast", "Softmax"}
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}


def _broadcast(shapes: list[list]) -> list | None:
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        if any(d is None for d in dims):
            return None
        wider = [d for d in dims if d != 1]
        out.append(wider[0] if wider else 1)
    return out


def _propagate_shape(b, node: onnx.NodeProto) -> None:
    """Shapes ONNX inference could not give (old opsets, initializers listed as inputs): carried
    through the ops whose output shape follows from their inputs'."""
    out = node.output[0] if node.output else ""
    if not out or out in b.consts or b.shapes.get(out) is not None:
        return
    shapes = [list(b.consts[i].shape) if i in b.consts else b.shapes.get(i) for i in node.input if i]
    if not shapes or shapes[0] is None:
        return
    shape = None
    if node.op_type in _SAME_SHAPE:
        shape = list(shapes[0])
    elif node.op_type in _BROADCAST and all(s is not None for s in shapes):
        shape = _broadcast(shapes)
    elif node.op_type == "MatMul" and len(shapes) == 2 and shapes[1] is not None and min(map(len, shapes)) >= 2:
        shape = list(shapes[0][:-1]) + [shapes[1][-1]]
    elif node.op_type == "Gemm" and shapes[1] is not None:
        a = _attrs(node)
        rows = shapes[0][1] if a.get("transA", 0) else shapes[0][0]
        cols = shapes[1][0] if a.get("transB", 0) else shapes[1][1]
        shape = [rows, cols]
    if shape is not None:
        b.shapes[out] = shape


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    a = _attrs(node)
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], np.int64)
    raise _unsupported(node, f"attribute {', '.join(a) or '(none)'} (only dense value* constants)")


def _fold_split(b, node):
    x = b.consts[node.input[0]]
    axis = int(_attrs(node).get("axis", 0)) % x.ndim
    sizes = _split_sizes(b, node, x.shape[axis])
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _fold_gather(b, node):
    x, idx = b.consts[node.input[0]], b.consts[node.input[1]]
    return [np.take(x, idx.astype(np.int64), axis=int(_attrs(node).get("axis", 0)))]


def _fold_flatten(b, node):
    x = b.consts[node.input[0]]
    axis = int(_attrs(node).get("axis", 1)) % max(x.ndim, 1) if x.ndim else 0
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def _fold_squeeze(b, node):
    x = b.consts[node.input[0]]
    axes = _axes_of(b, node)
    return [np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))]


_FOLD: dict[str, Callable] = {
    "Identity": lambda b, n: [b.consts[n.input[0]]],
    "Cast": lambda b, n: [_cast_np(b.consts[n.input[0]], int(_attrs(n)["to"]))],
    "Reshape": lambda b, n: [_np_reshape(b.consts[n.input[0]], b.consts[n.input[1]], _attrs(n).get("allowzero", 0))],
    "Unsqueeze": lambda b, n: [_np_unsqueeze(b.consts[n.input[0]], _axes_of(b, n))],
    "Squeeze": _fold_squeeze,
    "Transpose": lambda b, n: [np.transpose(b.consts[n.input[0]], _attrs(n).get("perm"))],
    "Flatten": _fold_flatten,
    "Concat": lambda b, n: [np.concatenate([b.consts[i] for i in n.input if i], axis=int(_attrs(n)["axis"]))],
    "Gather": _fold_gather,
    "Split": _fold_split,
    "Shape": lambda b, n: [np.array(b.consts[n.input[0]].shape, np.int64)],
    "Add": lambda b, n: [b.consts[n.input[0]] + b.consts[n.input[1]]],
    "Sub": lambda b, n: [b.consts[n.input[0]] - b.consts[n.input[1]]],
    "Mul": lambda b, n: [b.consts[n.input[0]] * b.consts[n.input[1]]],
    "Div": lambda b, n: [
        b.consts[n.input[0]] // b.consts[n.input[1]] if b.consts[n.input[0]].dtype.kind in "iu"
        else b.consts[n.input[0]] / b.consts[n.input[1]]
    ],
    "Neg": lambda b, n: [-b.consts[n.input[0]]],
    "Sqrt": lambda b, n: [np.sqrt(b.consts[n.input[0]])],
}
#: folded ops whose output is input 0 rearranged: the result keeps input 0's parameter name
_SHAPE_ONLY = {"Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Flatten"}


