"""Arithmetic cost of a converted model, counted from its ONNX graph.

Counts the multiply-accumulates of Conv, Gemm and MatMul at batch 1, two FLOPs each: the
convention of published GFLOPs figures for face models (OMZ, insightface). Element-wise work
(BatchNorm, PReLU, Add) is under one percent of it and is left out, as they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facezoo.errors import FacezooError


@dataclass(frozen=True)
class FlopCount:
    gflops: float  # per image
    by_op: dict[str, float]  # GFLOPs per op type
    parameters: int  # weights held in initializers (millions: parameters / 1e6)

    @property
    def mparams(self) -> float:
        return self.parameters / 1e6


def count_flops(path: str | Path) -> FlopCount:
    """GFLOPs per image of an ONNX file (its batch dimension is pinned to 1 for the count)."""
    import onnx
    from onnx import shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise FacezooError(f"{path}: cannot read ONNX model: {exc}") from None
    graph_inputs = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        if value.name in graph_inputs:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: _dims(v) for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    constants = {init.name: tuple(init.dims) for init in model.graph.initializer}
    shapes.update(constants)
    parameters = sum(int(np.prod(dims)) for dims in constants.values())
    by_op: dict[str, float] = {}
    for node in inferred.graph.node:
        flops = _node_flops(node, shapes)
        if flops:
            by_op[node.op_type] = by_op.get(node.op_type, 0.0) + flops / 1e9
    return FlopCount(sum(by_op.values()), by_op, parameters)


def _dims(value) -> tuple[int, ...] | None:
    dims = value.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def _node_flops(node, shapes: dict) -> float:
    if node.op_type == "Conv":
        weight, output = shapes.get(node.input[1]), shapes.get(node.output[0])
        if weight is None or output is None:
            raise FacezooError(f"Conv {node.name!r}: shapes unknown after shape inference")
        # weight: [C_out, C_in / group, kH, kW]; each output element is C_in/group·kH·kW MACs.
        return 2.0 * float(np.prod(output)) * float(np.prod(weight[1:]))
    if node.op_type in ("Gemm", "MatMul"):
        left, output = shapes.get(node.input[0]), shapes.get(node.output[0])
        if left is None or output is None:
            raise FacezooError(f"{node.op_type} {node.name!r}: shapes unknown after shape inference")
        transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
        inner = left[-2] if transposed else left[-1]
        return 2.0 * float(np.prod(output)) * float(inner)
    return 0.0
