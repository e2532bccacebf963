"""The importer's walk over the graph: one construct statement per ONNX node, the weights as
Parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from facezoo.converters.mindir.common import (
    _FLOAT_TYPES,
    IMPORT_PRECISIONS,
    _fail,
    _ident,
    _lit,
    _unsupported,
)
from facezoo.converters.mindir.folding import (
    _FOLD,
    _SHAPE_ONLY,
    _constant_value,
    _propagate_shape,
)
from facezoo.errors import ConversionError


@dataclass
class _Param:
    attr: str
    name: str
    array: np.ndarray
    keep_fp32: bool


class _Builder:
    """Walks the ONNX graph once, emitting construct statements and collecting weights."""

    def __init__(self, model: onnx.ModelProto, precision: str):
        if precision not in IMPORT_PRECISIONS:
            raise ConversionError(f"precision must be one of {', '.join(IMPORT_PRECISIONS)}, not {precision!r}")
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
        from facezoo.converters.mindir.handlers import _HANDLERS

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
            '"""Generated by facezoo.converters.mindir; do not edit."""',
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


