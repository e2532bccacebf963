"""Import an ONNX model as a MindSpore ``nn.Cell`` (GRAPH mode), and export it as MINDIR.

``onnx_to_mindspore(model)`` generates the Python source of a ``nn.Cell`` subclass whose
``construct`` is the ONNX graph written out as straight-line MindSpore code, one statement per
ONNX node, and instantiates it with the model's weights as ``ms.Parameter``\\ s named after the
ONNX initializers (``cell.source`` holds the generated code). The source lives in a real module
file (in a per-process temporary folder) because MindSpore's GRAPH-mode parser reads a
``construct``'s source and its module's globals.

What the import does with the graph:

* Nodes whose inputs are all constants (initializers, ``Constant`` nodes, or results of such
  nodes) are evaluated at import time with NumPy (``Unsqueeze`` of a PReLU slope, shape
  arithmetic). A constant derived from one initializer through shape-only ops keeps that
  initializer's name as its ``Parameter`` name.
* Every dimension the ONNX shape inference cannot fix (a symbolic batch ``N``) stays dynamic;
  ``Reshape`` targets are resolved symbolically so that ``[0, -1]`` on ``N x 512 x 7 x 7``
  becomes ``(-1, 25088)``; a reshape with two dynamic output dimensions is refused.
* ``precision="FP16"``: the input is cast to float16 after entry, weights are stored as
  float16 Parameters, BatchNorm statistics stay float32 (the affine is computed in float32 and
  then cast), and float outputs are cast back to float32: FP32 in, FP32 out, FP16 compute.
* ``Cast`` to any float type becomes a cast to the compute type, so an ONNX file converted to
  FP16 with FP32 I/O imports too (its weights keep their FP16 rounding).

The first node with an operator outside :data:`SUPPORTED_OPS` (or an unsupported attribute
value) raises :class:`facezoo.errors.ConversionError` naming the operator and the node.

:func:`convert_onnx_file` is the ``facezoo convert --onnx FILE --formats mindir`` back end: it
writes ``<output_dir>/<stem>/<PRECISION>/<stem>.mindir`` for each precision, validated against
ONNX Runtime (cosine and batch-N-equals-N-singles), and moves the folders into place only when
every precision passed.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import keyword
import math
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facezoo.errors import ConversionError

__all__ = [
    "SUPPORTED_OPS",
    "onnx_to_mindspore",
    "export_mindir",
    "convert_onnx_file",
    "validate_mindir",
    "MindirCheck",
]

PRECISIONS = ("FP32", "FP16")
#: cosine a converted MINDIR must reach against ONNX Runtime, per precision
COSINE_THRESHOLDS = {"FP32": 0.99999, "FP16": 0.999}
#: largest |batch - singles| / max|singles| accepted, per precision
BATCH_TOLERANCE = {"FP32": 1e-4, "FP16": 2e-3}

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


# ------------------------------------------------------------------------------ utilities ----
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


# ------------------------------------------------------------------- constant folding (numpy) ----
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


# ---------------------------------------------------------------------------- the builder ----
@dataclass
class _Param:
    attr: str
    name: str
    array: np.ndarray
    keep_fp32: bool


class _Builder:
    """Walks the ONNX graph once, emitting construct statements and collecting weights."""

    def __init__(self, model: onnx.ModelProto, precision: str):
        if precision not in PRECISIONS:
            raise ConversionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.model = model
        self.graph = model.graph
        self.fp16 = precision == "FP16"
        self.dt = "ms.float16" if self.fp16 else "ms.float32"
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise ConversionError("the ONNX model imports no default-domain opset")
        self.consts: dict[str, np.ndarray] = {}
        self.origin: dict[str, str] = {}  # constant -> initializer it derives from (for names)
        self.vars: dict[str, str] = {}  # runtime ONNX value -> python variable
        self.shapes: dict[str, list | None] = {}
        self.lines: list[str] = []  # construct body
        self.init_lines: list[str] = []  # __init__ body (primitives)
        self.params: list[_Param] = []
        self.param_attr: dict[tuple[str, bool], str] = {}
        self.tensors: dict[str, np.ndarray] = {}
        self.used_idents: set[str] = set()
        self.counter = 0

    # names ------------------------------------------------------------------------------------
    def fresh(self, hint: str, prefix: str) -> str:
        base = _ident(hint, prefix)
        name = base
        k = 1
        while name in self.used_idents:
            name = f"{base}_{k}"
            k += 1
        self.used_idents.add(name)
        return name

    def var_for(self, onnx_name: str) -> str:
        self.counter += 1
        name = self.fresh(f"{self.counter}", "v")
        self.vars[onnx_name] = name
        return name

    # shapes -----------------------------------------------------------------------------------
    def _collect_shapes(self) -> None:
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=False, data_prop=True)
        except Exception:  # inference is a help, not a requirement
            inferred = self.model
        g = inferred.graph
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                continue
            dims = []
            for d in t.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.HasField("dim_param") and d.dim_param:
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
            self.shapes[vi.name] = dims

    def shape(self, name: str, node: onnx.NodeProto | None = None) -> list:
        if name in self.consts:
            return list(self.consts[name].shape)
        dims = self.shapes.get(name)
        if dims is None:
            if node is None:
                raise ConversionError(f"the shape of ONNX value {name!r} is unknown")
            raise _fail(node, f"the shape of input {name!r} is unknown (ONNX shape inference failed)")
        return list(dims)

    def static(self, name: str, node: onnx.NodeProto, dims: Sequence[int] | None = None) -> list[int]:
        s = self.shape(name, node)
        pick = range(len(s)) if dims is None else dims
        out = []
        for i in pick:
            if not isinstance(s[i], int):
                raise _fail(node, f"dimension {i} of {name!r} must be static, it is {s[i]!r}")
            out.append(s[i])
        return out

    def set_shape(self, name: str, dims: list) -> None:
        known = self.shapes.get(name)
        if known is not None and len(known) == len(dims):
            dims = [a if isinstance(a, int) else (b if isinstance(b, int) else (a if a is not None else b))
                    for a, b in zip(dims, known)]
        self.shapes[name] = list(dims)

    # values -----------------------------------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, name: str, node: onnx.NodeProto, what: str = "input") -> np.ndarray:
        if name not in self.consts:
            raise _fail(node, f"{what} {name!r} must be a constant (initializer or Constant)")
        return self.consts[name]

    def optional(self, node: onnx.NodeProto, index: int) -> str | None:
        if index < len(node.input) and node.input[index]:
            return node.input[index]
        return None

    def expr(self, name: str, *, keep_fp32: bool = False) -> str:
        """A python expression for ONNX value ``name`` inside construct."""
        if name in self.vars:
            return self.vars[name]
        if name in self.consts:
            arr = self.consts[name]
            if arr.dtype.kind == "f":
                return "self." + self.param(name, keep_fp32=keep_fp32)
            return "self." + self.tensor(name, arr)
        raise ConversionError(f"ONNX value {name!r} is used before it is computed (is the graph sorted?)")

    def operand(self, name: str, other_rank: int | None) -> str:
        """Like expr, but a float scalar constant becomes a literal when broadcasting allows."""
        if name in self.consts:
            arr = self.consts[name]
            if arr.size == 1 and arr.dtype.kind == "f" and (other_rank is None or arr.ndim <= other_rank):
                return _lit(arr.reshape(-1)[0].item())
        return self.expr(name)

    def param(self, name: str, *, keep_fp32: bool = False) -> str:
        keep = keep_fp32 or not self.fp16
        key = (name, keep)
        if key not in self.param_attr:
            origin = self.origin.get(name, name)
            taken = {p.name for p in self.params}
            pname = origin
            k = 1
            while pname in taken:
                pname = f"{origin}_{k}"
                k += 1
            attr = self.fresh(origin, "p_")
            arr = self.consts[name]
            self.params.append(_Param(attr, pname, arr, keep))
            self.param_attr[key] = attr
        return self.param_attr[key]

    def tensor(self, hint: str, arr: np.ndarray) -> str:
        attr = self.fresh(hint, "k_")
        self.tensors[attr] = np.ascontiguousarray(arr)
        return attr

    def float_tensor(self, hint: str, arr: np.ndarray) -> str:
        """A constant float tensor in the compute dtype (not a weight: no Parameter)."""
        return self.tensor(hint, np.asarray(arr, np.float16 if self.fp16 else np.float32))

    def primitive(self, hint: str, code: str) -> str:
        attr = self.fresh(hint, "op_")
        self.init_lines.append(f"self.{attr} = {code}")
        return attr

    def emit(self, code: str) -> None:
        self.lines.append(code)

    # the walk ---------------------------------------------------------------------------------
    def build(self) -> tuple[str, list[tuple[str, list]], list[str]]:
        g = self.graph
        for node in g.node:  # fail fast on the first unsupported operator
            if node.domain not in ("", "ai.onnx") or node.op_type not in _HANDLERS:
                raise _unsupported(node)
        for init in g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
            self.origin[init.name] = init.name
        if any(s.name for s in g.sparse_initializer):
            raise ConversionError("sparse initializers are not supported")
        self._collect_shapes()
        inputs = [i for i in g.input if i.name not in self.consts]
        if not inputs:
            raise ConversionError("the ONNX graph has no runtime input")
        signature = []
        args = []
        for vi in inputs:
            t = vi.type.tensor_type
            if t.elem_type not in _FLOAT_TYPES:
                raise ConversionError(
                    f"graph input {vi.name!r} has element type {TensorProto.DataType.Name(t.elem_type)}; "
                    "only float inputs are supported"
                )
            arg = self.fresh(vi.name, "in_")
            args.append(arg)
            dims = self.shapes.get(vi.name)
            if dims is None:
                raise ConversionError(f"graph input {vi.name!r} has no shape")
            signature.append((vi.name, [d if isinstance(d, int) else None for d in dims]))
            if self.fp16:
                var = self.var_for(vi.name)
                self.emit(f"{var} = ops.cast({arg}, ms.float16)")
            else:
                self.vars[vi.name] = arg
        for node in g.node:
            self.emit(f"# {node.op_type} {node.name!r}".replace("\n", " "))
            if node.op_type == "Constant":
                self.consts[node.output[0]] = _constant_value(node)
                continue
            data = [i for i in node.input if i]
            if data and all(self.is_const(i) for i in data) and node.op_type in _FOLD:
                try:
                    outs = _FOLD[node.op_type](self, node)
                except ConversionError:
                    raise
                except Exception as exc:
                    raise _fail(node, f"cannot evaluate on constants: {exc}") from None
                for name, value in zip(node.output, outs):
                    if name:
                        self.consts[name] = np.asarray(value)
                if node.op_type in _SHAPE_ONLY and node.input[0] in self.origin:
                    self.origin[node.output[0]] = self.origin[node.input[0]]
                continue
            _HANDLERS[node.op_type](self, node)
            _propagate_shape(self, node)
        outputs = []
        for vi in g.output:
            if vi.name not in self.vars and vi.name not in self.consts:
                raise ConversionError(f"graph output {vi.name!r} is never computed")
            expr = self.expr(vi.name)
            elem = vi.type.tensor_type.elem_type
            if self.fp16 and (elem in _FLOAT_TYPES or vi.name in self.consts):
                expr = f"ops.cast({expr}, ms.float32)"
            outputs.append(expr)
        ret = outputs[0] if len(outputs) == 1 else "(" + ", ".join(outputs) + ",)"
        self.emit(f"return {ret}")
        source = self._source(args)
        return source, signature, [o.name for o in g.output]

    def _source(self, args: list[str]) -> str:
        head = [
            '"""Generated by facezoo.converters.onnx_to_mindspore; do not edit."""',
            "import mindspore as ms",
            "from mindspore import nn, ops",
            "",
            "",
            "class OnnxCell(nn.Cell):",
            "    def __init__(self, params, tensors):",
            "        super().__init__(auto_prefix=False)",
        ]
        for p in self.params:
            head.append(f"        self.{p.attr} = params[{p.attr!r}]")
        for attr in self.tensors:
            head.append(f"        self.{attr} = tensors[{attr!r}]")
        head += [f"        {line}" for line in self.init_lines]
        head.append("")
        head.append(f"    def construct(self, {', '.join(args)}):")
        head += [f"        {line}" for line in self.lines]
        return "\n".join(head) + "\n"


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


def _propagate_shape(b: _Builder, node: onnx.NodeProto) -> None:
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


# ------------------------------------------------------------------------ folding handlers ----
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


_FOLD: dict[str, Callable[[_Builder, onnx.NodeProto], list[np.ndarray]]] = {
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


# ------------------------------------------------------------------------- op handlers ----
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


def _rank_or_none(b: _Builder, name: str) -> int | None:
    if name in b.consts:
        return b.consts[name].ndim
    s = b.shapes.get(name)
    return None if s is None else len(s)


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
    _out(b, node, f"ops.reshape({b.expr(node.input[0])}, {_lit(_reshape_tuple(dims, node))})", shape=dims)


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


def _h_softmax(b, node):
    s = b.shape(node.input[0], node)
    rank = len(s)
    default = -1 if b.opset >= 13 else 1
    axis = _norm_axis(int(_attrs(node).get("axis", default)), rank, node)
    x = b.expr(node.input[0])
    if b.opset >= 13 or axis == rank - 1:
        _out(b, node, f"ops.softmax({x}, {axis})")
        return
    # opset < 13: softmax over the flattened dims from `axis` on
    tail = b.static(node.input[0], node, range(axis, rank))
    flat = f"ops.reshape({x}, (-1, {math.prod(tail)}))"
    _out(b, node, f"ops.reshape(ops.softmax({flat}, -1), {_lit(_reshape_tuple(s, node))})")


def _h_gemm(b, node):
    a = _attrs(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    ta, tb = bool(a.get("transA", 0)), bool(a.get("transB", 0))
    op = b.primitive(f"{node.name}_matmul", f"ops.MatMul(transpose_a={ta}, transpose_b={tb})")
    expr = f"self.{op}({b.expr(node.input[0])}, {b.expr(node.input[1])})"
    if alpha != 1.0:
        expr = f"({expr} * {_lit(np.float32(alpha))})"
    c = b.optional(node, 2)
    if c is not None and beta != 0.0:
        if b.is_const(c):
            arr = b.consts[c]
            if beta != 1.0:
                scaled = f"{c}__beta"
                b.consts[scaled] = (arr * np.asarray(beta, arr.dtype)).astype(arr.dtype)
                b.origin[scaled] = b.origin.get(c, c)
                c = scaled
            expr = f"{expr} + {b.operand(c, 2)}"
        else:
            cterm = b.expr(c) if beta == 1.0 else f"({b.expr(c)} * {_lit(np.float32(beta))})"
            expr = f"{expr} + {cterm}"
    _out(b, node, expr)


def _h_matmul(b, node):
    _out(b, node, f"ops.matmul({b.expr(node.input[0])}, {b.expr(node.input[1])})")


def _conv_pads(b: _Builder, node: onnx.NodeProto, spatial_in: list, kernel, strides, dilations) -> list[int]:
    """ONNX pads [top, left, bottom, right] from pads / auto_pad."""
    a = _attrs(node)
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    n = len(kernel)
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in a.get("pads", [0] * (2 * n))]
        if len(pads) != 2 * n:
            raise _fail(node, f"pads {pads} do not fit a {n}-D kernel")
        return pads
    if auto == "VALID":
        return [0] * (2 * n)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(spatial_in, kernel, strides, dilations):
            if not isinstance(size, int):
                raise _fail(node, f"auto_pad {auto} needs static spatial dims, got {spatial_in}")
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin + end
    raise _unsupported(node, f"auto_pad {auto!r}")


def _h_conv(b, node):
    a = _attrs(node)
    s = b.shape(node.input[0], node)
    wshape = b.static(node.input[1], node)
    if len(s) != 4 or len(wshape) != 4:
        raise _unsupported(node, f"only 2-D convolution is supported (input rank {len(s)})")
    kernel = [int(k) for k in a.get("kernel_shape", wshape[2:])]
    if kernel != wshape[2:]:
        raise _fail(node, f"kernel_shape {kernel} does not match weight {wshape}")
    strides = [int(v) for v in a.get("strides", [1, 1])]
    dilations = [int(v) for v in a.get("dilations", [1, 1])]
    group = int(a.get("group", 1))
    if isinstance(s[1], int) and s[1] != wshape[1] * group:
        raise _fail(node, f"input has {s[1]} channels, weight {wshape} with group {group} expects {wshape[1] * group}")
    pads = _conv_pads(b, node, s[2:], kernel, strides, dilations)
    top, left, bottom, right = pads
    op = b.primitive(
        f"{node.name}_conv",
        f"ops.Conv2D({wshape[0]}, {_lit(tuple(kernel))}, mode=1, pad_mode='pad', "
        f"pad={_lit((top, bottom, left, right))}, stride={_lit(tuple(strides))}, "
        f"dilation={_lit(tuple(dilations))}, group={group})",
    )
    expr = f"self.{op}({b.expr(node.input[0])}, {b.expr(node.input[1])})"
    bias = b.optional(node, 2)
    if bias is not None:
        expr = f"ops.bias_add({expr}, {b.expr(bias)})"
    _out(b, node, expr)


def _h_batchnorm(b, node):
    a = _attrs(node)
    _only_first_output(node, b)
    if int(a.get("training_mode", 0)):
        raise _unsupported(node, "training_mode=1")
    if b.opset < 9 and int(a.get("spatial", 1)) != 1:
        raise _unsupported(node, "spatial=0")
    eps = float(a.get("epsilon", 1e-5))
    rank = len(b.shape(node.input[0], node))
    if rank < 2:
        raise _fail(node, f"input rank {rank} < 2")
    x = b.expr(node.input[0])
    gamma, beta, mean, var = (b.expr(n, keep_fp32=True) for n in node.input[1:5])
    shape = _lit((-1,) + (1,) * (rank - 2))
    scale = b.fresh(f"{node.name}_scale", "v")
    shift = b.fresh(f"{node.name}_shift", "v")
    # the affine in float32, as ONNX Runtime computes it, then applied in the compute dtype
    b.emit(f"{scale} = {gamma} / ops.sqrt({var} + {_lit(np.float32(eps))})")
    b.emit(f"{shift} = {beta} - {mean} * {scale}")
    if b.fp16:
        b.emit(f"{scale} = ops.cast({scale}, ms.float16)")
        b.emit(f"{shift} = ops.cast({shift}, ms.float16)")
    _out(b, node, f"{x} * ops.reshape({scale}, {shape}) + ops.reshape({shift}, {shape})")


def _pool_geometry(b: _Builder, node: onnx.NodeProto):
    """(kernel, strides, pads [t, l, b, r], output size, extra end padding) of a 2-D pool."""
    a = _attrs(node)
    s = b.shape(node.input[0], node)
    if len(s) != 4:
        raise _unsupported(node, f"only 2-D pooling is supported (input rank {len(s)})")
    kernel = [int(k) for k in a["kernel_shape"]]
    strides = [int(v) for v in a.get("strides", [1, 1])]
    dilations = [int(v) for v in a.get("dilations", [1, 1])]
    if dilations != [1, 1]:
        raise _unsupported(node, f"dilations {dilations}")
    if int(a.get("storage_order", 0)):
        raise _unsupported(node, "storage_order=1")
    ceil = bool(a.get("ceil_mode", 0))
    size = b.static(node.input[0], node, [2, 3])
    pads = _conv_pads(b, node, size, kernel, strides, dilations)
    outs, extra = [], []
    for i in range(2):
        span = size[i] + pads[i] + pads[i + 2] - kernel[i]
        if span < 0:
            raise _fail(node, f"kernel {kernel} larger than the padded input {size}")
        o = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
        if ceil and (o - 1) * strides[i] >= size[i] + pads[i]:
            o -= 1  # the last window must start inside the input or its begin padding
        outs.append(o)
        extra.append(max((o - 1) * strides[i] + kernel[i] - (size[i] + pads[i] + pads[i + 2]), 0))
    return kernel, strides, pads, size, outs, extra


def _padded(b: _Builder, x: str, pads, extra, value: str) -> str:
    top, left, bottom, right = pads
    widths = (left, right + extra[1], top, bottom + extra[0])
    if not any(widths):
        return x
    return f"ops.pad({x}, {_lit(widths)}, mode='constant', value={value})"


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


def _h_maxpool(b, node):
    _only_first_output(node, b)
    kernel, strides, pads, size, outs, extra = _pool_geometry(b, node)
    x = _padded(b, b.expr(node.input[0]), pads, extra, "float('-inf')")
    op = b.primitive(f"{node.name}_pool", f"ops.MaxPool({_lit(tuple(kernel))}, {_lit(tuple(strides))}, 'VALID')")
    _out(b, node, f"self.{op}({x})")


def _h_avgpool(b, node):
    a = _attrs(node)
    kernel, strides, pads, size, outs, extra = _pool_geometry(b, node)
    include_pad = bool(a.get("count_include_pad", 0))
    x = _padded(b, b.expr(node.input[0]), pads, extra, "0.0")
    op = b.primitive(f"{node.name}_pool", f"ops.AvgPool({_lit(tuple(kernel))}, {_lit(tuple(strides))}, 'VALID')")
    expr = f"self.{op}({x})"
    # AvgPool divides by the window area; ONNX divides by the window part inside the input
    # (or inside input + explicit pads with count_include_pad), never by the ceil_mode overhang
    counts = []
    for i in range(2):
        lo, hi = (-pads[i], size[i] + pads[i + 2]) if include_pad else (0, size[i])
        c = []
        for o in range(outs[i]):
            start = o * strides[i] - pads[i]
            c.append(min(start + kernel[i], hi) - max(start, lo))
        counts.append(np.array(c, np.float64))
    area = kernel[0] * kernel[1]
    factor = area / np.outer(counts[0], counts[1])
    if np.any(factor != 1.0):
        k = b.float_tensor(f"{node.name}_count_factor", factor.reshape(1, 1, *factor.shape))
        expr = f"{expr} * self.{k}"
    _out(b, node, expr)


def _h_global_pool(fn: str):
    def handler(b, node):
        rank = len(b.shape(node.input[0], node))
        axes = _lit(tuple(range(2, rank)))
        _out(b, node, f"{fn}({b.expr(node.input[0])}, {axes}, True)")

    return handler


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


def _h_shape(b, node):
    s = b.shape(node.input[0], node)
    if not all(isinstance(d, int) for d in s):
        raise _unsupported(node, f"Shape of a tensor with dynamic dims {s} (only static shapes fold)")
    b.consts[node.output[0]] = np.array(s, np.int64)


_HANDLERS: dict[str, Callable[[_Builder, onnx.NodeProto], None]] = {
    "Identity": _h_alias,
    "Dropout": _h_alias,
    "Cast": _h_cast,
    "Constant": lambda b, n: None,  # handled in the walk
    "Relu": _unary("ops.relu"),
    "Sigmoid": _unary("ops.sigmoid"),
    "Tanh": _h_tanh,
    "Exp": _unary("ops.exp"),
    "Log": _unary("ops.log"),
    "Sqrt": _unary("ops.sqrt"),
    "Abs": _unary("ops.abs"),
    "Neg": _unary("ops.neg"),
    "LeakyRelu": _h_leaky,
    "PRelu": _h_prelu,
    "Add": _h_binary,
    "Sub": _h_binary,
    "Mul": _h_binary,
    "Div": _h_binary,
    "Sum": _h_variadic(None),
    "Max": _h_variadic("ops.maximum"),
    "Min": _h_variadic("ops.minimum"),
    "Clip": _h_clip,
    "Flatten": _h_flatten,
    "Reshape": _h_reshape,
    "Transpose": _h_transpose,
    "Unsqueeze": _h_unsqueeze,
    "Squeeze": _h_squeeze,
    "Concat": _h_concat,
    "Split": _h_split,
    "Gather": _h_gather,
    "Shape": _h_shape,
    "Softmax": _h_softmax,
    "Gemm": _h_gemm,
    "MatMul": _h_matmul,
    "Conv": _h_conv,
    "BatchNormalization": _h_batchnorm,
    "MaxPool": _h_maxpool,
    "Pad": _h_pad,
    "AveragePool": _h_avgpool,
    "GlobalAveragePool": _h_global_pool("ops.mean"),
    "GlobalMaxPool": _h_global_pool("ops.amax"),
    "ReduceMean": _h_reduce("ReduceMean"),
    "ReduceSum": _h_reduce("ReduceSum"),
    "ReduceSumSquare": _h_reduce("ReduceSumSquare"),
    "ReduceMax": _h_reduce("ReduceMax"),
    "ReduceMin": _h_reduce("ReduceMin"),
}

#: ONNX operators (default domain) the importer translates
SUPPORTED_OPS: frozenset[str] = frozenset(_HANDLERS)


# ------------------------------------------------------------------ generated module files ----
_MODULE_LOCK = threading.Lock()
_MODULE_DIR: Path | None = None


def _module_dir() -> Path:
    global _MODULE_DIR
    if _MODULE_DIR is None or not _MODULE_DIR.is_dir():
        _MODULE_DIR = Path(tempfile.mkdtemp(prefix="facezoo-onnx-cells-"))
        atexit.register(shutil.rmtree, _MODULE_DIR, True)
    return _MODULE_DIR


def _load_cell_class(source: str):
    """Write ``source`` to a module file and import it (MindSpore parses the file)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    module_name = f"facezoo_onnx_cell_{digest}"
    with _MODULE_LOCK:
        module = sys.modules.get(module_name)
        if module is None or not Path(module.__file__).is_file():
            path = _module_dir() / f"{module_name}.py"
            path.write_text(source, encoding="utf-8")
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    return module.OnnxCell


def _use_graph_mode() -> None:
    import mindspore as ms

    if ms.get_context("mode") != ms.GRAPH_MODE:
        ms.set_context(mode=ms.GRAPH_MODE)


# ------------------------------------------------------------------------------- public API ----
def onnx_to_mindspore(model: onnx.ModelProto, *, precision: str = "FP32"):
    """Build a MindSpore ``nn.Cell`` computing ``model`` (see the module docstring).

    The cell has ``source`` (generated code), ``input_signature`` (``[(name, dims)]``, ``None``
    for dynamic dims), ``onnx_output_names`` and ``precision`` attributes and is in inference
    mode. Raises :class:`ConversionError` on the first unsupported operator.
    """
    import mindspore as ms

    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    builder = _Builder(model, precision)
    source, signature, output_names = builder.build()
    cls = _load_cell_class(source)
    params = {}
    for p in builder.params:
        arr = p.array.astype(np.float32 if p.keep_fp32 else (np.float16 if builder.fp16 else np.float32))
        params[p.attr] = ms.Parameter(ms.Tensor(np.ascontiguousarray(arr)), name=p.name, requires_grad=False)
    tensors = {k: ms.Tensor(v) for k, v in builder.tensors.items()}
    _use_graph_mode()
    cell = cls(params, tensors)
    cell.set_train(False)
    cell.source = source
    cell.input_signature = signature
    cell.onnx_output_names = output_names
    cell.precision = precision
    return cell


def export_mindir(cell, path: str | Path) -> Path:
    """Export a cell made by :func:`onnx_to_mindspore` as MINDIR; dynamic dims stay dynamic."""
    import mindspore as ms

    path = Path(path)
    if path.suffix != ".mindir":
        raise ConversionError(f"{path}: a MINDIR file name must end in .mindir")
    _use_graph_mode()
    examples = []
    for name, dims in cell.input_signature:
        if any(d is None for d in dims):
            examples.append(ms.Tensor(shape=list(dims), dtype=ms.float32))
        else:
            examples.append(ms.Tensor(np.zeros(dims, np.float32)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ms.export(cell, *examples, file_name=str(path.with_suffix("")), file_format="MINDIR")
    if not path.is_file():
        raise ConversionError(f"MindSpore wrote no {path}")
    return path


@dataclass(frozen=True)
class MindirCheck:
    """How closely a MINDIR reproduces ONNX Runtime on random inputs."""

    precision: str
    samples: int
    min_cosine: float
    max_relative_error: float
    batch_relative_diff: float
    passed: bool
    reason: str = ""


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64).reshape(len(a), -1)
    b = b.astype(np.float64).reshape(len(b), -1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(den, 1e-30)


def _random_inputs(signature, batch: int, seed: int, input_range: tuple[float, float]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = input_range
    out = []
    for k, (name, dims) in enumerate(signature):
        shape = [d if d is not None else (batch if i == 0 else 1) for i, d in enumerate(dims)]
        out.append(rng.uniform(lo, hi, shape).astype(np.float32))
    return out


def validate_mindir(
    mindir_path: str | Path,
    onnx_path: str | Path,
    precision: str,
    *,
    samples: int = 4,
    seed: int = 0,
    input_range: tuple[float, float] = (0.0, 255.0),
) -> MindirCheck:
    """Run the MINDIR (``nn.GraphCell(ms.load(...))``) and ONNX Runtime on the same random inputs.

    Checks every output's per-sample cosine against :data:`COSINE_THRESHOLDS`, FP32 relative
    error <= 1e-3 and, when the batch is dynamic, that a batch equals the samples run one by one.
    """
    import mindspore as ms
    import onnxruntime as ort
    from mindspore import nn

    model = onnx.load(str(onnx_path), load_external_data=False)
    graph_inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    signature = []
    for vi in graph_inputs:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        signature.append((vi.name, dims))
    dynamic_batch = all(dims and dims[0] is None for _, dims in signature)
    batch = samples if dynamic_batch else None
    inputs = _random_inputs(signature, batch or 1, seed, input_range)
    if not dynamic_batch:  # a static batch: run `samples` separate inputs
        runs = [_random_inputs(signature, 1, seed + k, input_range) for k in range(samples)]
    else:
        runs = [inputs]

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    _use_graph_mode()
    cell = nn.GraphCell(ms.load(str(mindir_path)))

    def run_ms(arrays):
        out = cell(*[ms.Tensor(a) for a in arrays])
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.asnumpy().astype(np.float32) for o in outs]

    ref_all, got_all = [], []
    for arrays in runs:
        ref_all.append([np.asarray(r, np.float32) for r in session.run(None, dict(zip([n for n, _ in signature], arrays)))])
        got_all.append(run_ms(arrays))
    refs = [np.concatenate([r[k] for r in ref_all]) for k in range(len(ref_all[0]))]
    gots = [np.concatenate([g[k] for g in got_all]) for k in range(len(got_all[0]))]
    reasons = []
    if len(refs) != len(gots):
        reasons.append(f"{len(gots)} outputs, ONNX Runtime gives {len(refs)}")
    min_cos, max_rel, batch_diff = 1.0, 0.0, 0.0
    for ref, got in zip(refs, gots):
        if ref.shape != got.shape:
            reasons.append(f"output shape {got.shape} != ONNX Runtime's {ref.shape}")
            continue
        if not np.all(np.isfinite(got)):
            reasons.append("non-finite outputs")
            continue
        min_cos = min(min_cos, float(_cosines(ref, got).min()) if ref.ndim else 1.0)
        scale = float(np.max(np.abs(ref))) or 1.0
        max_rel = max(max_rel, float(np.max(np.abs(ref.astype(np.float64) - got))) / scale)
    if dynamic_batch and not reasons:
        singles = [run_ms([a[i : i + 1] for a in inputs]) for i in range(samples)]
        for k, got in enumerate(gots):
            one = np.concatenate([s[k] for s in singles])
            scale = float(np.max(np.abs(one))) or 1.0
            batch_diff = max(batch_diff, float(np.max(np.abs(got - one))) / scale)
    threshold = COSINE_THRESHOLDS[precision]
    if min_cos < threshold:
        reasons.append(f"min cosine {min_cos:.7f} < {threshold}")
    if precision == "FP32" and max_rel > 1e-3:
        reasons.append(f"max relative error {max_rel:.2e} > 1e-3")
    if batch_diff > BATCH_TOLERANCE[precision]:
        reasons.append(f"batch of {samples} differs from single runs by {batch_diff:.2e}")
    return MindirCheck(precision, samples, min_cos, max_rel, batch_diff, not reasons, "; ".join(reasons))


def convert_onnx_file(
    onnx_path: str | Path,
    output_dir: str | Path,
    precisions: Sequence[str] = ("FP32",),
    *,
    samples: int = 4,
    seed: int = 0,
    input_range: tuple[float, float] = (0.0, 255.0),
) -> list[Path]:
    """Convert an ONNX file to ``<output_dir>/<stem>/<PRECISION>/<stem>.mindir`` per precision.

    Each MINDIR is validated against ONNX Runtime on ``samples`` random inputs drawn uniformly
    from ``input_range`` (:func:`validate_mindir`). Everything is written into a temporary
    folder under ``output_dir`` first; only when every precision passed are the precision folders
    moved into place (replacing earlier ones). Raises :class:`ConversionError` otherwise.
    """
    onnx_path = Path(onnx_path)
    output_dir = Path(output_dir)
    precisions = list(dict.fromkeys(p.upper() for p in precisions))
    for p in precisions:
        if p not in PRECISIONS:
            raise ConversionError(f"unknown precision {p!r}; expected {', '.join(PRECISIONS)}")
    if not precisions:
        raise ConversionError("no precision requested")
    if not onnx_path.is_file():
        raise ConversionError(f"{onnx_path} does not exist")
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(f"{onnx_path}: not a valid ONNX model: {exc}") from None
    stem = onnx_path.stem
    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=output_dir))
    try:
        failures = []
        for precision in precisions:
            target = scratch / precision / f"{stem}.mindir"
            cell = onnx_to_mindspore(model, precision=precision)
            export_mindir(cell, target)
            check = validate_mindir(target, onnx_path, precision, samples=samples, seed=seed, input_range=input_range)
            if not check.passed:
                failures.append(f"{precision}: {check.reason}")
        if failures:
            raise ConversionError(f"{onnx_path.name}: MINDIR does not match ONNX Runtime: {'; '.join(failures)}")
        from facezoo.converters.pipeline import publish_precisions

        final = publish_precisions(scratch, output_dir / stem, list(precisions))
        written = [final / precision / f"{stem}.mindir" for precision in precisions]
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
