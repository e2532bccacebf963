"""Helpers every part of the ONNX → MindSpore importer shares: errors naming the node, attribute
reading, Python literals for generated code."""

from __future__ import annotations

import keyword
import math
import re
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper

from facezoo.errors import ConversionError

if TYPE_CHECKING:
    from facezoo.converters.mindir.builder import _Builder

#: compute precisions the importer generates cells for
IMPORT_PRECISIONS = ("FP32", "FP16")
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def _fail(node: onnx.NodeProto, message: str) -> ConversionError:
    return ConversionError(f"ONNX node {node.name or '<unnamed>'!r} ({node.op_type}): {message}")


def _unsupported(node: onnx.NodeProto, detail: str = "") -> ConversionError:
    domain = f" in domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
    extra = f": {detail}" if detail else ""
    return ConversionError(
        f"unsupported ONNX operator {node.op_type}{domain} (node {node.name or '<unnamed>'!r}){extra}"
    )


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ident(text: str, prefix: str) -> str:
    s = re.sub(r"\W", "_", text, flags=re.ASCII).strip("_")[:48]
    s = f"{prefix}{s}" if s else prefix.rstrip("_")
    if keyword.iskeyword(s) or not s.isidentifier():
        s = f"{prefix}x{s}"
    return s


def _lit(value) -> str:
    """A Python literal for a float / int / nested tuple (exact round trip)."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    v = float(value)
    if math.isinf(v):
        return "float('inf')" if v > 0 else "float('-inf')"
    if math.isnan(v):
        return "float('nan')"
    return repr(v)


def _norm_axis(axis: int, rank: int, node: onnx.NodeProto) -> int:
    if not -rank <= axis < rank:
        raise _fail(node, f"axis {axis} out of range for rank {rank}")
    return axis % rank


def _out(b: _Builder, node: onnx.NodeProto, code: str, index: int = 0, shape: list | None = None) -> str:
    var = b.var_for(node.output[index])
    b.emit(f"{var} = {code}")
    if shape is not None:
        b.set_shape(node.output[index], shape)
    return var


def _only_first_output(node: onnx.NodeProto, b: _Builder) -> None:
    for extra in node.output[1:]:
        if extra and _consumed(b, extra):
            raise _unsupported(node, f"output {extra!r} (only the first output is supported)")


def _consumed(b: _Builder, name: str) -> bool:
    return any(name in n.input for n in b.graph.node) or any(o.name == name for o in b.graph.output)


def _axes_of(b: _Builder, node: onnx.NodeProto, index: int = 1) -> list[int] | None:
    """The axes of Unsqueeze/Squeeze/Reduce*: the attribute (old opsets) or a constant input."""
    a = _attrs(node)
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    name = b.optional(node, index)
    if name is None:
        return None
    return [int(v) for v in b.const(name, node, "axes").reshape(-1)]


def _split_sizes(b: _Builder, node: onnx.NodeProto, dim: int) -> list[int]:
    a = _attrs(node)
    n = len(node.output)
    if "split" in a:
        sizes = [int(v) for v in a["split"]]
    elif b.optional(node, 1) is not None:
        sizes = [int(v) for v in b.const(node.input[1], node, "split").reshape(-1)]
    else:
        n = int(a.get("num_outputs", n))
        chunk = -(-dim // n)  # opset 18: the last chunk may be smaller
        sizes = [min(chunk, dim - k * chunk) for k in range(n)]
    if sum(sizes) != dim or any(s < 0 for s in sizes):
        raise _fail(node, f"split sizes {sizes} do not add up to {dim}")
    return sizes


def _rank_or_none(b: _Builder, name: str) -> int | None:
    if name in b.consts:
        return b.consts[name].ndim
    s = b.shapes.get(name)
    return None if s is None else len(s)


