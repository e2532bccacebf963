"""Edits that bring a published ONNX face model to facezoo's converted contract.

Real files are messy: exported at a fixed batch of 1 or 2 with that batch baked into Reshape
constants (directly, or through Shape → Gather → Concat chains), initializers listed as graph
inputs, inputs named anything, NHWC inputs. The recipe:

1. pin the input's batch to a number (the file's own, else 1) and fold every shape computation
   into constants, so no node reads a shape at run time;
2. turn Reshape targets that carry that batch into 0 ("copy the input's batch");
3. keep only the embedding output (flattened to N x D), or a detector's heads; heads that hold
   the rows of one image (no batch axis) get one;
4. put the contract in front: a new input ``data`` (float32 NCHW, BGR 0..255 or gray), the
   channel swap, the original's normalization and, for NHWC, the transpose;
5. mark the batch dynamic. The converter then proves a batch equals its images run one by one.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facezoo.converters.onnx_graph import prune_dead_nodes, rename_value
from facezoo.errors import ConversionError

BATCH_DIM = "N"
#: Only tensors up to this size are folded: shape arithmetic, not weights.
FOLD_MAX_ELEMENTS = 4096
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


def runtime_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (old exporters list weights as inputs too)."""
    initializers = {init.name for init in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]


def drop_initializer_inputs(model: onnx.ModelProto) -> None:
    keep = runtime_inputs(model.graph)
    del model.graph.input[:]
    model.graph.input.extend(keep)


def opset_of(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ConversionError("the ONNX model imports no default-domain opset")


def pin_batch(model: onnx.ModelProto, input_name: str, batch: int) -> None:
    for value in model.graph.input:
        if value.name == input_name:
            dim = value.type.tensor_type.shape.dim[0]
            dim.ClearField("dim_param")
            dim.dim_value = batch
    del model.graph.value_info[:]


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # the inference raises its own error types
        raise ConversionError(f"ONNX shape inference fails on the graph: {exc}") from None
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return shapes


def _evaluate(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if name else "" for i, name in enumerate(node.input)]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip(names, arrays) if n]
    outputs = [helper.make_tensor_value_info(f"out{i}", TensorProto.UNDEFINED, None) for i in range(len(node.output))]
    single = helper.make_node(node.op_type, [n for n in names], [o.name for o in outputs], domain=node.domain)
    single.attribute.extend(node.attribute)
    mini = helper.make_model(helper.make_graph([single], "fold", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, arrays) if n}
    return [np.asarray(v) for v in ReferenceEvaluator(mini).run(None, feeds)]


def fold_shape_computations(model: onnx.ModelProto) -> None:
    """Replace Shape nodes of statically shaped tensors, and small all-constant nodes, by constants."""
    graph = model.graph
    opset = opset_of(model)
    shapes = _static_shapes(model)
    constants: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept, added = [], []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            value = _constant_value(node)
            if value is not None:
                constants[node.output[0]] = value
            kept.append(node)
            continue
        if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
            dims = shapes.get(node.input[0])
            if dims is not None and all(d is not None for d in dims):
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                start, end = attrs.get("start", 0), attrs.get("end", None)
                value = np.array(dims[start:end] if end is not None else dims[start:], np.int64)
                constants[node.output[0]] = value
                added.append(numpy_helper.from_array(value, node.output[0]))
                continue
        data = [name for name in node.input if name]
        if (data and node.domain in ("", "ai.onnx") and all(name in constants for name in data)
                and all(constants[name].size <= FOLD_MAX_ELEMENTS for name in data)):
            try:
                values = _evaluate(node, [constants[name] if name else None for name in node.input], opset)
            except Exception:  # leave it to the runtime; folding is an optimisation
                kept.append(node)
                continue
            for name, value in zip(node.output, values):
                if name:
                    constants[name] = value
                    added.append(numpy_helper.from_array(value, name))
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(added)
    prune(model)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name in ("value_int", "value_ints", "value_float", "value_floats"):
            value = helper.get_attribute_value(attribute)
            return np.array(value, np.int64 if "int" in attribute.name else np.float32)
    return None


def rebatch_reshapes(model: onnx.ModelProto, batch: int) -> list[str]:
    """Reshape targets whose first entry is the pinned batch become 0 (copy the input's batch).

    Returns the names of the Reshape nodes changed.
    """
    graph = model.graph
    shapes = _static_shapes(model)
    initializers = {init.name: init for init in graph.initializer}
    changed = []
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] in initializers or node.input[1] not in initializers:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        target = numpy_helper.to_array(initializers[node.input[1]]).copy()
        data_dims = shapes.get(node.input[0]) or [None]
        if target.size and int(target[0]) == batch and data_dims[0] == batch:
            target[0] = 0
            name = f"{node.input[1]}__batch_copied"
            if name not in initializers:
                initializers[name] = numpy_helper.from_array(target.astype(np.int64), name)
                graph.initializer.append(initializers[name])
            node.input[1] = name
            changed.append(node.name or node.output[0])
    prune(model)
    return changed


def add_output_batch_axis(model: onnx.ModelProto, names: list[str], batch: int) -> None:
    """Give outputs that hold the rows of one image (no batch axis, as SCRFD's det_10g) a leading
    batch axis: the Reshape that makes each gets a target ``[0, *target]`` (copy the input's batch).

    The input's batch must be pinned to ``batch`` and shape computations folded first, so that the
    Reshape's target is a constant and its data's batch is known.
    """
    graph = model.graph
    shapes = _static_shapes(model)
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for name in names:
        node = producers.get(name)
        if node is None or node.op_type != "Reshape" or node.input[1] not in initializers:
            raise ConversionError(f"output {name!r} has no batch axis and is not made by a Reshape with a "
                                  f"constant target, so facezoo cannot give it one")
        target = numpy_helper.to_array(initializers[node.input[1]])
        data_dims = shapes.get(node.input[0]) or [None]
        if data_dims[0] != batch or np.any(target == 0):
            raise ConversionError(f"output {name!r}: its Reshape's input {node.input[0]!r} does not start with the "
                                  f"batch axis ({data_dims}), or its target {target.tolist()} copies dimensions")
        batched = f"{node.input[1]}__batched"  # one per target, however many Reshapes share it
        if batched not in initializers:
            initializers[batched] = numpy_helper.from_array(np.concatenate([[0], target]).astype(np.int64), batched)
            graph.initializer.append(initializers[batched])
        node.input[1] = batched
        value = next(v for v in graph.output if v.name == name)
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        value.type.CopyFrom(helper.make_tensor_type_proto(value.type.tensor_type.elem_type, [batch, *dims]))
    del graph.value_info[:]
    prune(model)


def keep_output(model: onnx.ModelProto, name: str) -> None:
    keep_outputs(model, [name])


def keep_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Only these outputs, in this order; the nodes no kept output needs go."""
    graph = model.graph
    by_name = {value.name: value for value in graph.output}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ConversionError(f"the graph has no output {missing[0]!r}; outputs: {list(by_name)}")
    chosen = [by_name[name] for name in names]
    del graph.output[:]
    graph.output.extend(chosen)
    prune(model)


def prune(model: onnx.ModelProto) -> None:
    prune_dead_nodes(model.graph)


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    names |= {init.name for init in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def attach_contract(
    model: onnx.ModelProto,
    *,
    original_input: str,
    input_name: str,
    output_name: str | None,
    channels: int,
    height: int | str,
    width: int | str,
    layout: str,
    swap_channels: bool,
    mean: np.ndarray | None,
    inv_std: np.ndarray | None,
    transpose_hw: bool = False,
) -> None:
    """A new float32 NCHW input in front of the original one: swap, normalize, transpose, cast.

    ``output_name``: the one output's new name (None: a model whose outputs keep their names, a
    detector's heads). ``height``/``width`` may be symbolic (a net that runs at any size);
    ``transpose_hw``: the original takes images with H and W swapped (Caffe-trained MTCNN).
    """
    graph = model.graph
    if output_name is not None:
        (output,) = graph.output
    kept = {value.name for value in graph.output}
    names = _all_names(graph)
    for wanted in (input_name, output_name):
        if wanted is None:
            continue
        if wanted in names and wanted != original_input and wanted not in kept:
            rename_value(graph, wanted, f"{wanted}__original")
            names = _all_names(graph)
    if original_input == input_name:
        rename_value(graph, original_input, f"{original_input}__original")
        original_input = f"{original_input}__original"
    original = next(v for v in graph.input if v.name == original_input)
    elem_type = original.type.tensor_type.elem_type
    if elem_type not in _FLOAT_TYPES:
        raise ConversionError(
            f"graph input {original_input!r} is {TensorProto.DataType.Name(elem_type)}; facezoo converts models "
            "that take float pixels"
        )
    nodes, initializers = [], []
    current = input_name

    def add(op: str, inputs: list[str], label: str, **attrs) -> None:
        nonlocal current
        out = f"{input_name}__{label}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"{input_name}/{label}", **attrs))
        current = out

    if swap_channels:
        initializers.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), f"{input_name}__channel_order"))
        add("Gather", [current, f"{input_name}__channel_order"], "swap_channels", axis=1)
    if mean is not None:
        initializers.append(numpy_helper.from_array(mean.astype(np.float32), f"{input_name}__mean"))
        add("Sub", [current, f"{input_name}__mean"], "subtract_mean")
    if inv_std is not None:
        initializers.append(numpy_helper.from_array(inv_std.astype(np.float32), f"{input_name}__inv_std"))
        add("Mul", [current, f"{input_name}__inv_std"], "divide_by_std")
    perm = {("NHWC", False): [0, 2, 3, 1], ("NHWC", True): [0, 3, 2, 1], ("NCHW", True): [0, 1, 3, 2]}.get(
        (layout, transpose_hw))
    if perm is not None:
        add("Transpose", [current], "to_" + layout.lower() + ("_transposed" if transpose_hw else ""), perm=perm)
    if elem_type != TensorProto.FLOAT:
        add("Cast", [current], "cast", to=elem_type)
    if current == input_name:
        add("Identity", [current], "identity")
    for node in graph.node:
        node.input[:] = [current if name == original_input else name for name in node.input]
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    graph.initializer.extend(initializers)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [BATCH_DIM, channels, height, width]))
    if output_name is not None:
        rename_value(graph, output.name, output_name)


def flatten_output(model: onnx.ModelProto, dim: int) -> None:
    """Bring the embedding to N x D (an N x D x 1 x 1 output is flattened)."""
    graph = model.graph
    (output,) = graph.output
    shapes = _static_shapes(model)
    dims = shapes.get(output.name)
    if dims is not None and len(dims) == 2:
        return
    inner = f"{output.name}__unflattened"
    rename_value(graph, output.name, inner)
    graph.node.append(helper.make_node("Flatten", [inner], [output.name], name=f"{output.name}/flatten", axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output.name, TensorProto.FLOAT, [BATCH_DIM, dim]))


def cancel_transposes(model: onnx.ModelProto) -> int:
    """Remove Transpose pairs that undo each other (the NHWC transpose in front of a file that
    transposes straight back to NCHW). Returns how many pairs went."""
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {value.name for value in graph.output}
    removed = set()
    for first in graph.node:
        if first.op_type != "Transpose" or id(first) in removed or first.output[0] in outputs:
            continue
        users = consumers.get(first.output[0], [])
        if len(users) != 1 or users[0].op_type != "Transpose":
            continue
        second = users[0]
        p1 = [a for a in first.attribute if a.name == "perm"]
        p2 = [a for a in second.attribute if a.name == "perm"]
        if not p1 or not p2:
            continue
        perm1, perm2 = list(p1[0].ints), list(p2[0].ints)
        if [perm1[p] for p in perm2] != list(range(len(perm1))):
            continue
        source, target = first.input[0], second.output[0]
        if target in outputs:
            continue
        for node in graph.node:
            node.input[:] = [source if name == target else name for name in node.input]
        removed.update({id(first), id(second)})
    if removed:
        kept = [node for node in graph.node if id(node) not in removed]
        del graph.node[:]
        graph.node.extend(kept)
    return len(removed) // 2


def make_batch_dynamic(model: onnx.ModelProto) -> None:
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    del model.graph.value_info[:]
