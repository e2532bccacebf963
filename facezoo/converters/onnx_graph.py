"""Edits that turn an exported ONNX graph into the converted contract.

MindSpore's exporter names inputs after Python arguments, refuses custom output names and
bakes batch 1 into Reshape targets; these functions fix that after export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from facezoo.errors import ConversionError

BATCH_DIM = "N"


def rename_io(model: onnx.ModelProto, input_name: str, output_name: str) -> None:
    """Give the single graph input and the single graph output the contract's names."""
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise ConversionError(
            f"expected one input and at least one output, found inputs {[i.name for i in inputs]}"
        )
    rename_value(graph, inputs[0].name, input_name)
    rename_value(graph, graph.output[0].name, output_name)


def keep_outputs(model: onnx.ModelProto, index: int) -> None:
    """Drop every graph output but the embedding, then prune nodes that fed only the others."""
    graph = model.graph
    if index >= len(graph.output):
        raise ConversionError(f"the exported graph has {len(graph.output)} outputs, output index {index} requested")
    kept = graph.output[index]
    del graph.output[:]
    graph.output.append(kept)
    prune_dead_nodes(graph)


def make_batch_dynamic(model: onnx.ModelProto) -> None:
    """Mark dim 0 symbolic and turn leading-1 Reshape targets into 0 (copy the batch)."""
    graph = model.graph
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}
    initializers = {init.name: init for init in graph.initializer}
    static = set(initializers) | set(constants)
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] in static:
            continue
        shape_name = node.input[1]
        if shape_name in constants:
            attr = next(a for a in constants[shape_name].attribute if a.name == "value")
            shape = numpy_helper.to_array(attr.t)
            if shape.size and shape[0] == 1:
                shape = shape.copy()
                shape[0] = 0
                attr.t.CopyFrom(numpy_helper.from_array(shape, attr.t.name))
        elif shape_name in initializers:
            shape = numpy_helper.to_array(initializers[shape_name])
            if shape.size and shape[0] == 1:
                shape = shape.copy()
                shape[0] = 0
                initializers[shape_name].CopyFrom(numpy_helper.from_array(shape, shape_name))
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i:
                raise ConversionError(f"Reshape {node.name!r} uses allowzero; cannot make its batch dynamic")
    for value in list(graph.input) + list(graph.output):
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    del graph.value_info[:]


def set_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if current == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises bare RuntimeErrors
        raise ConversionError(f"cannot convert the ONNX graph from opset {current} to {opset}: {exc}") from None


# FP16's largest finite value and smallest subnormal: onnxconverter-common's defaults (1e4 and
# 1e-7) silently clamp weights inside FP16's range, such as the variance of a BN that follows a
# convolution of raw 0..255 pixels (measured: 14319 → 10000, a 20 % error in those channels).
FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 5.96e-8
# BatchNormalization stays FP32 (ONNX Runtime casts around it): its statistics can lie outside
# FP16's range, and x - mean on large activations cancels catastrophically in FP16.
# Softmax stays FP32: FP16 resolves 2^-11 near 1, so a detector's face probabilities of 0.99985
# and 0.99981 both become 1.0, near-duplicate boxes tie, and NMS keeps another box than the
# original's (MTCNN's O-Net: box IoU 0.87 to the original's with an FP16 softmax).
FP16_KEEP_FP32 = ("BatchNormalization", "Softmax")


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, FP32 input and output (so callers feed the same tensors)."""
    import warnings

    from onnxconverter_common import float16

    with warnings.catch_warnings():
        # It warns for every weight below FP16's smallest subnormal that it rounds; that is the point.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model,
            min_positive_val=FP16_MIN_SUBNORMAL,
            max_finite_val=FP16_MAX,
            keep_io_types=True,
            disable_shape_infer=False,
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FP32),
        )
    _float_outputs(converted)
    return converted


def _float_outputs(model: onnx.ModelProto) -> None:
    """FP32 graph outputs where the converter cast a kept-FP32 op's result to FP16 on its way out
    (onnxconverter-common does so when a blocked op, a Softmax, gives a graph output): the cast
    becomes FP32 and the output is declared so, as keep_io_types promises."""
    outputs = {value.name: value for value in model.graph.output}
    for node in model.graph.node:
        if node.op_type != "Cast" or node.output[0] not in outputs:
            continue
        target = next(a for a in node.attribute if a.name == "to")
        value = outputs[node.output[0]]
        if target.i == TensorProto.FLOAT16 and value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            target.i = TensorProto.FLOAT
            value.type.tensor_type.elem_type = TensorProto.FLOAT


def check_and_save(model: onnx.ModelProto, path: Path) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"{path.name}: ONNX checker rejected the graph: {exc}") from None
    onnx.save_model(model, str(path))


def initializer_array(model: onnx.ModelProto, name: str) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a value everywhere: node inputs and outputs, graph inputs/outputs, initializers."""
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for init in graph.initializer:
        if init.name == old:
            init.name = new


def prune_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers that no graph output depends on."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    used = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


def make_value(name: str, channels: int, height: int, width: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [BATCH_DIM, channels, height, width])
