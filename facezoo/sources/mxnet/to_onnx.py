"""Translate an MXNet symbol graph with its parameters into an ONNX model, without MXNet.

This module shares nothing with :mod:`facezoo.sources.mxnet.executor` but the file parsing
(:mod:`~facezoo.sources.mxnet.symbol`, :mod:`~facezoo.sources.mxnet.params`) and MXNet's Reshape rule
(:mod:`~facezoo.sources.mxnet.shapes`, which the executor's tests check against real MXNet), so the
executor serves as an independent check of the conversion.

The converted model has one input (``data`` by default) whose batch dimension is symbolic
(``N``) and one output named by the caller (OMZ called the r34 embedding ``pre_fc1`` although
it is the output of the BatchNorm node ``fc1``).

With ``reverse_input_channels`` the converted model takes the channels in reverse order (BGR
for an RGB network). When the first computation on the input, after only per-channel-uniform
ops (scalar arithmetic, identities, plain activations), is an ungrouped Convolution, the swap is
folded into that Convolution's weights; otherwise an explicit ``Gather`` on axis 1 is inserted.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


from facezoo.sources.mxnet.onnx_shapes import (
    _ACT,
    _BROADCAST_BINARY,
    _IDENTITY_OPS,
    _IR_VERSION,
    _SAME_SHAPE_BINARY,
    _SCALAR_OPS,
    _UNARY,
    CONVERTIBLE_OPS,
    DEFAULT_OPSET,
    Shape,
    _err,
    _hw,
    _infer_shape,
    _skip,
)
from facezoo.sources.mxnet.params import MXNetFormatError, load_params, split_arg_aux
from facezoo.sources.mxnet.symbol import Graph, Node, UnsupportedOperatorError, load_symbol

__all__ = ["mxnet_to_onnx", "convert_mxnet_files", "CONVERTIBLE_OPS", "DEFAULT_OPSET"]


# ------------------------------------------------------------------------------- converter ----
class _Converter:
    def __init__(self, graph: Graph, params: Mapping[str, np.ndarray], input_name: str, output_name: str):
        self.graph = graph
        args, auxs = split_arg_aux(params)
        self.params = {**args, **auxs}
        self.input_name = input_name
        self.output_name = output_name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.used: set[str] = {input_name, output_name}
        self.tensor: dict[tuple[int, int], str] = {}
        self.counter = 0
        self.param_names: dict[str, str] = {}

    # names -------------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        name = hint
        k = 1
        while name in self.used:
            name = f"{hint}__{k}"
            k += 1
        self.used.add(name)
        return name

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def param(self, var: Node) -> np.ndarray:
        try:
            arr = self.params[var.name]
        except KeyError:
            raise MXNetFormatError(f"parameter {var.name!r} is not in the params file") from None
        return np.asarray(arr, dtype=np.float32)

    def param_input(self, entry: tuple[int, int]) -> Node:
        var = self.graph.nodes[entry[0]]
        if not var.is_variable or var.name == self.input_name:
            raise UnsupportedOperatorError(var.op, var.name, "a weight input computed in the graph cannot be converted")
        return var

    def emit(self, op: str, inputs: list[str], hint: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(hint if k == 0 else f"{hint}_output{k}") for k in range(n_out)]
        self.counter += 1
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"{hint}/{op}_{self.counter}", **attrs))
        return outs


def _per_channel_uniform(node: Node) -> bool:
    if node.op in _IDENTITY_OPS or node.op in _SCALAR_OPS or node.op in _UNARY:
        return True
    return node.op == "Activation"


def mxnet_to_onnx(
    graph: Graph,
    params: Mapping[str, np.ndarray],
    *,
    input_shape: Sequence[int],
    output_node: str | None = None,
    output_name: str | None = None,
    reverse_input_channels: bool = False,
    opset: int = DEFAULT_OPSET,
    input_name: str = "data",
) -> onnx.ModelProto:
    """Convert ``graph`` with ``params`` (``load_params`` output, ``arg:``/``aux:`` keys or plain)
    into an ONNX model.

    ``input_shape`` is the NCHW shape of the input variable ``input_name``; its batch dimension
    becomes the symbolic ``N``. ``output_node`` (a node name or ``<name>_output``; default: the
    first head) is exported as ``output_name`` (default: the node name). Raises
    :class:`UnsupportedOperatorError` naming the first unsupported operator.
    """
    # the emitted Split/Squeeze/ReduceSumSquare signatures are those of opsets 13..17
    if not 13 <= opset <= 17:
        raise ValueError(f"opset must be between 13 and 17 (default {DEFAULT_OPSET}), not {opset}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) < 2 or any(d <= 0 for d in input_shape):
        raise ValueError(f"input_shape must hold at least 2 positive dims, got {input_shape}")
    where = f"{graph.path}: " if graph.path else ""
    out_entry = graph.resolve_output(output_node) if output_node else graph.heads[0]
    out_node = graph.nodes[out_entry[0]]
    if output_name is None:
        output_name = out_node.name
    if output_name == input_name:
        raise ValueError("output_name must differ from input_name")
    if input_name not in graph or not graph.node(input_name).is_variable:
        raise MXNetFormatError(f"{where}the graph has no input variable {input_name!r}")
    needed = graph.ancestors([out_entry], _skip)
    cv = _Converter(graph, params, input_name, output_name)

    # 1. unsupported ops and free variables, before any work
    for i in needed:
        node = graph.nodes[i]
        if node.is_variable:
            if node.name != input_name and node.name not in cv.params:
                raise MXNetFormatError(
                    f"{where}variable {node.name!r} is neither the input {input_name!r} nor in the params"
                )
        elif node.op not in CONVERTIBLE_OPS:
            raise UnsupportedOperatorError(node.op, node.name, where=where)
    if graph.index(input_name) not in needed:
        raise MXNetFormatError(f"{where}output {out_node.name!r} does not depend on the input {input_name!r}")

    # 2. shapes at two batch sizes: the dims that move with the batch are the dynamic ones
    def shapes_for(batch: int) -> dict[tuple[int, int], Shape]:
        sh: dict[tuple[int, int], Shape] = {}
        for i in needed:
            node = graph.nodes[i]
            if node.is_variable:
                sh[(i, 0)] = (batch, *input_shape[1:]) if node.name == input_name else tuple(cv.params[node.name].shape)
                continue
            ins = [sh[e] for pos, e in enumerate(node.inputs) if pos not in _skip(node)]
            try:
                outs = _infer_shape(node, ins, cv.params, graph)
            except (IndexError, ValueError, ZeroDivisionError) as exc:
                raise _err(node, f"cannot infer the output shape from inputs {ins}: {exc}") from None
            for k, s in enumerate(outs):
                sh[(i, k)] = s
        return sh

    shp = shapes_for(input_shape[0])
    shp2 = shapes_for(input_shape[0] + 1)

    consumers: dict[int, list[int]] = {i: [] for i in needed}
    for i in needed:
        for pos, (src, _) in enumerate(graph.nodes[i].inputs):
            if pos not in _skip(graph.nodes[i]):
                consumers[src].append(i)

    # 3. reverse_input_channels: fold into the first convolution or gather explicitly
    data_idx = graph.index(input_name)
    fold_conv: int | None = None
    rev_mode = "none"
    if reverse_input_channels:
        c = input_shape[1]
        cur = data_idx
        while True:
            users = consumers[cur]
            if len(users) != 1:
                break
            user = graph.nodes[users[0]]
            if _per_channel_uniform(user) and user.inputs[0][0] == cur:
                cur = users[0]
                continue
            if (
                user.op == "Convolution"
                and user.inputs[0][0] == cur
                and all(src != cur for src, _ in user.inputs[1:])
                and user.get_int("num_group", 1) == 1
                and shp[(user.inputs[1][0], 0)][1] == c
            ):
                fold_conv = users[0]
            break
        if fold_conv is not None:
            rev_mode = f"folded into {graph.nodes[fold_conv].name}"
        else:
            rev_mode = "gather"

    # 4. emit
    if reverse_input_channels and fold_conv is None:
        idx = cv.const(f"{input_name}_reverse_channels", np.arange(input_shape[1] - 1, -1, -1, dtype=np.int64))
        (swapped,) = cv.emit("Gather", [input_name, idx], f"{input_name}_reversed", axis=1)
        cv.tensor[(data_idx, 0)] = swapped
    else:
        cv.tensor[(data_idx, 0)] = input_name

    def dyn_dims(key) -> list[bool]:
        return [a != b for a, b in zip(shp[key], shp2[key])]

    for i in needed:
        node = graph.nodes[i]
        if node.is_variable:
            continue
        _emit_node(cv, i, node, shp, dyn_dims, fold=(i == fold_conv))

    # 5. output naming
    final = cv.tensor[out_entry]
    producer = next((n for n in cv.nodes if final in n.output), None)
    read_elsewhere = any(final in n.input for n in cv.nodes)
    if producer is not None and not read_elsewhere:
        producer.output[list(producer.output).index(final)] = output_name
    else:
        cv.nodes.append(helper.make_node("Identity", [final], [output_name], name=f"{output_name}/Identity"))

    def vi(name: str, key) -> onnx.ValueInfoProto:
        dims = []
        for d, moving in zip(shp[key], dyn_dims(key)):
            if not moving:
                dims.append(d)
            elif d == input_shape[0]:
                dims.append("N")
            else:
                dims.append(None)
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    g = helper.make_graph(
        cv.nodes,
        f"mxnet_{out_node.name}",
        [vi(input_name, (data_idx, 0))],
        [vi(output_name, out_entry)],
        initializer=list(cv.inits.values()),
    )
    model = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="facezoo.sources.mxnet.to_onnx",
        ir_version=_IR_VERSION,
    )
    meta = {
        "source": "mxnet",
        "mxnet_version": str(graph.mxnet_version) if graph.mxnet_version is not None else "unknown",
        "source_output_node": out_node.name,
        "reverse_input_channels": rev_mode,
    }
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def _emit_node(cv: _Converter, i: int, node: Node, shp, dyn_dims, fold: bool) -> None:
    g = cv.graph
    skip = _skip(node)
    entries = [e for pos, e in enumerate(node.inputs) if pos not in skip]
    name = node.name
    op = node.op

    def t(k: int) -> str:
        return cv.tensor[entries[k]]

    def x_shape(k: int = 0) -> Shape:
        return shp[entries[k]]

    def done(outs: list[str]) -> None:
        for k, o in enumerate(outs):
            cv.tensor[(i, k)] = o

    if op in _IDENTITY_OPS:
        if op == "Dropout" and node.get_str("mode", "training") == "always":
            raise UnsupportedOperatorError(op, name, "mode 'always' drops at inference too")
        done([t(0)])
        return

    if op == "Convolution":
        var = cv.param_input(entries[1])
        w = cv.param(var)
        x = x_shape()
        kh, kw = _hw(node, "kernel", 0)
        groups = node.get_int("num_group", 1)
        nf = node.get_int("num_filter")
        if len(x) != 4 or len(node.get_tuple("kernel")) != 2:
            raise UnsupportedOperatorError(op, name, "only 2-D convolution is supported")
        if groups < 1 or x[1] % groups or w.shape != (nf, x[1] // groups, kh, kw):
            raise _err(node, f"weight {w.shape} does not fit input {x} with num_filter {nf}, num_group {groups}")
        if fold:
            w = np.ascontiguousarray(w[:, ::-1])
            wname = cv.const(f"{var.name}_bgr", w)
        else:
            wname = _param_init(cv, var)
        ins = [t(0), wname]
        if not node.get_bool("no_bias", False):
            bvar = cv.param_input(entries[2])
            if cv.param(bvar).shape != (nf,):
                raise _err(node, f"bias shape {cv.param(bvar).shape} != ({nf},)")
            ins.append(_param_init(cv, bvar))
        ph, pw = _hw(node, "pad", 0)
        done(cv.emit(
            "Conv", ins, name,
            kernel_shape=[kh, kw], strides=list(_hw(node, "stride", 1)), pads=[ph, pw, ph, pw],
            dilations=list(_hw(node, "dilate", 1)), group=groups,
        ))
        return

    if op == "BatchNorm":
        x = x_shape()
        axis = node.get_int("axis", 1)
        if axis % len(x) != 1:
            raise UnsupportedOperatorError(op, name, f"axis {axis} (only the channel axis 1 converts)")
        c = x[1]
        vals = [cv.param(cv.param_input(e)) for e in entries[1:5]]
        if any(v.shape != (c,) for v in vals):
            raise _err(node, f"statistics shapes {[v.shape for v in vals]} do not match {c} channels")
        gamma_var = g.nodes[entries[1][0]]
        if node.get_bool("fix_gamma", True):
            gname = cv.const(f"{gamma_var.name}_fixed_ones", np.ones(c, np.float32))
        else:
            gname = _param_init(cv, gamma_var)
        ins = [t(0), gname] + [_param_init(cv, g.nodes[e[0]]) for e in entries[2:5]]
        done(cv.emit("BatchNormalization", ins, name, epsilon=node.get_float("eps", 1e-3)))
        return

    if op == "LeakyReLU":
        act = node.get_str("act_type", "leaky")
        if act == "prelu":
            var = cv.param_input(entries[1])
            slope = cv.param(var)
            x = x_shape()
            if slope.size == 1:
                slope = slope.reshape(1)
            elif len(x) >= 2 and slope.shape == (x[1],):
                slope = slope.reshape((x[1],) + (1,) * (len(x) - 2))
            else:
                raise _err(node, f"prelu gamma {slope.shape} does not fit input {x}")
            done(cv.emit("PRelu", [t(0), cv.const(var.name, slope)], name))
        elif act in ("leaky", "rrelu"):
            alpha = node.get_float("slope", 0.25) if act == "leaky" else (
                node.get_float("lower_bound", 0.125) + node.get_float("upper_bound", 0.334)) / 2
            done(cv.emit("LeakyRelu", [t(0)], name, alpha=alpha))
        elif act == "elu":
            done(cv.emit("Elu", [t(0)], name, alpha=node.get_float("slope", 0.25)))
        elif act == "selu":
            done(cv.emit("Selu", [t(0)], name))
        else:
            raise UnsupportedOperatorError(op, name, f"act_type {act!r}")
        return

    if op == "Activation":
        act = node.get_str("act_type")
        if act not in _ACT:
            raise UnsupportedOperatorError(op, name, f"act_type {act!r}")
        done(cv.emit(_ACT[act], [t(0)], name))
        return

    if op in _UNARY:
        done(cv.emit(_UNARY[op], [t(0)], name))
        return
    if op == "square":
        done(cv.emit("Mul", [t(0), t(0)], name))
        return

    if op in _SCALAR_OPS:
        kind = _SCALAR_OPS[op]
        c = cv.const(f"{name}_scalar", np.array(node.get_float("scalar"), dtype=np.float32))
        if kind == "RSub":
            done(cv.emit("Sub", [c, t(0)], name))
        elif kind == "RDiv":
            done(cv.emit("Div", [c, t(0)], name))
        else:
            done(cv.emit(kind, [t(0), c], name))
        return

    if op in _SAME_SHAPE_BINARY:
        done(cv.emit(_SAME_SHAPE_BINARY[op], [t(0), t(1)], name))
        return
    if op in _BROADCAST_BINARY:
        done(cv.emit(_BROADCAST_BINARY[op], [t(0), t(1)], name))
        return
    if op in ("add_n", "ElementWiseSum"):
        done(cv.emit("Sum", [t(k) for k in range(len(entries))], name))
        return

    if op == "clip":
        lo = cv.const(f"{name}_min", np.array(node.get_float("a_min"), np.float32))
        hi = cv.const(f"{name}_max", np.array(node.get_float("a_max"), np.float32))
        done(cv.emit("Clip", [t(0), lo, hi], name))
        return

    if op == "FullyConnected":
        var = cv.param_input(entries[1])
        w = cv.param(var)
        nh = node.get_int("num_hidden")
        x = x_shape()
        flatten = node.get_bool("flatten", True)
        k = math.prod(x[1:]) if flatten else x[-1]
        if w.shape != (nh, k):
            raise _err(node, f"weight {w.shape} does not fit input {x} (expected {(nh, k)})")
        bias = None
        if not node.get_bool("no_bias", False):
            bvar = cv.param_input(entries[2])
            if cv.param(bvar).shape != (nh,):
                raise _err(node, f"bias shape {cv.param(bvar).shape} != ({nh},)")
            bias = _param_init(cv, bvar)
        if flatten:
            (flat,) = cv.emit("Flatten", [t(0)], f"{name}_flatten", axis=1)
            ins = [flat, _param_init(cv, var)] + ([bias] if bias else [])
            done(cv.emit("Gemm", ins, name, transB=1))
        else:
            wt = cv.const(f"{var.name}_T", np.ascontiguousarray(w.T))
            (mm,) = cv.emit("MatMul", [t(0), wt], name if bias is None else f"{name}_matmul")
            done([mm] if bias is None else cv.emit("Add", [mm, bias], name))
        return

    if op == "Pooling":
        ptype = node.get_str("pool_type", "max")
        if ptype not in ("max", "avg", "sum"):
            raise UnsupportedOperatorError(op, name, f"pool_type {ptype!r}")
        if len(x_shape()) != 4:
            raise UnsupportedOperatorError(op, name, "only 2-D pooling is supported")
        if node.get_bool("global_pool", False):
            onnx_op = "GlobalMaxPool" if ptype == "max" else "GlobalAveragePool"
            if ptype == "sum":
                (avg,) = cv.emit(onnx_op, [t(0)], f"{name}_avg")
                area = cv.const(f"{name}_area", np.array(x_shape()[2] * x_shape()[3], np.float32))
                done(cv.emit("Mul", [avg, area], name))
            else:
                done(cv.emit(onnx_op, [t(0)], name))
            return
        conv = node.get_str("pooling_convention", "valid")
        if conv not in ("valid", "full"):
            raise UnsupportedOperatorError(op, name, f"pooling_convention {conv!r}")
        kh, kw = _hw(node, "kernel", 0)
        ph, pw = _hw(node, "pad", 0)
        attrs = dict(kernel_shape=[kh, kw], strides=list(_hw(node, "stride", 1)), pads=[ph, pw, ph, pw],
                     ceil_mode=int(conv == "full"))
        if ptype == "max":
            done(cv.emit("MaxPool", [t(0)], name, **attrs))
        elif ptype == "avg":
            done(cv.emit("AveragePool", [t(0)], name,
                         count_include_pad=int(node.get_bool("count_include_pad", True)), **attrs))
        else:
            (avg,) = cv.emit("AveragePool", [t(0)], f"{name}_avg", count_include_pad=1, **attrs)
            area = cv.const(f"{name}_area", np.array(kh * kw, np.float32))
            done(cv.emit("Mul", [avg, area], name))
        return

    if op in ("Flatten", "flatten"):
        done(cv.emit("Flatten", [t(0)], name, axis=1))
        return

    if op in ("Reshape", "reshape"):
        if node.get_bool("reverse", False) or not node.has("shape"):
            raise UnsupportedOperatorError(op, name, "reverse=True and legacy target_shape are not supported")
        done([_reshape_to(cv, t(0), name, shp[(i, 0)], dyn_dims((i, 0)), node)])
        return

    if op in ("Concat", "concat"):
        done(cv.emit("Concat", [t(k) for k in range(len(entries))], name, axis=node.get_int("dim", 1)))
        return

    if op in ("SoftmaxOutput", "Softmax", "SoftmaxActivation"):
        x = x_shape()
        if op == "SoftmaxActivation":
            axis1 = node.get_str("mode", "instance") == "channel"
            last = False
        else:
            axis1 = node.get_bool("multi_output", False)
            last = node.get_bool("preserve_shape", False)
        if last:
            done(cv.emit("Softmax", [t(0)], name, axis=-1))
        elif axis1:
            if len(x) <= 3:
                done(cv.emit("Softmax", [t(0)], name, axis=1))
            else:
                shape3 = cv.const(f"{name}_shape3", np.array([0, x[1], -1], np.int64))
                (r,) = cv.emit("Reshape", [t(0), shape3], f"{name}_to3d")
                (s,) = cv.emit("Softmax", [r], f"{name}_softmax", axis=1)
                back = cv.const(f"{name}_shape", np.array([0, *x[1:]], np.int64))
                done(cv.emit("Reshape", [s, back], name))
        elif len(x) == 2:
            done(cv.emit("Softmax", [t(0)], name, axis=1))
        else:
            (f,) = cv.emit("Flatten", [t(0)], f"{name}_flatten", axis=1)
            (s,) = cv.emit("Softmax", [f], f"{name}_softmax", axis=1)
            back = cv.const(f"{name}_shape", np.array([0, *x[1:]], np.int64))
            done(cv.emit("Reshape", [s, back], name))
        return
    if op == "softmax":
        if node.attrs.get("temperature", "None") not in ("None", "1", "1.0"):
            raise UnsupportedOperatorError(op, name, "temperature is not supported")
        done(cv.emit("Softmax", [t(0)], name, axis=node.get_int("axis", -1)))
        return

    if op == "L2Normalization":
        x = x_shape()
        mode = node.get_str("mode", "instance")
        axes = {"instance": list(range(1, len(x))), "channel": [1], "spatial": list(range(2, len(x)))}.get(mode)
        if axes is None:
            raise UnsupportedOperatorError(op, name, f"mode {mode!r}")
        (ss,) = cv.emit("ReduceSumSquare", [t(0)], f"{name}_sumsq", axes=axes, keepdims=1)
        eps = cv.const(f"{name}_eps", np.array(node.get_float("eps", 1e-10), np.float32))
        (se,) = cv.emit("Add", [ss, eps], f"{name}_sumsq_eps")
        (nrm,) = cv.emit("Sqrt", [se], f"{name}_norm")
        done(cv.emit("Div", [t(0), nrm], name))
        return

    if op in ("SliceChannel", "split"):
        x = x_shape()
        n = node.get_int("num_outputs")
        axis = node.get_int("axis", 1) % len(x)
        sizes = cv.const(f"{name}_sizes", np.full(n, x[axis] // n, np.int64))
        parts = cv.emit("Split", [t(0), sizes], name if not node.get_bool("squeeze_axis", False) else f"{name}_split",
                        n_out=n, axis=axis)
        if node.get_bool("squeeze_axis", False):
            ax = cv.const(f"{name}_axis", np.array([axis], np.int64))
            parts = [cv.emit("Squeeze", [p, ax], name if k == 0 else f"{name}_output{k}")[0]
                     for k, p in enumerate(parts)]
        done(parts)
        return

    if op == "transpose":
        axes = node.get_tuple("axes", ()) or tuple(reversed(range(len(x_shape()))))
        done(cv.emit("Transpose", [t(0)], name, perm=list(axes)))
        return
    if op == "expand_dims":
        ax = cv.const(f"{name}_axis", np.array([node.get_int("axis")], np.int64))
        done(cv.emit("Unsqueeze", [t(0), ax], name))
        return

    raise UnsupportedOperatorError(op, name)  # pragma: no cover - filtered before


def _param_init(cv: _Converter, var: Node) -> str:
    """The initializer for a parameter variable, created once under the variable's name."""
    if var.name not in cv.param_names:
        cv.param_names[var.name] = cv.const(var.name, cv.param(var))
    return cv.param_names[var.name]


def _reshape_to(cv: _Converter, x: str, name: str, out: Shape, moving: list[bool], node: Node) -> str:
    """Reshape to a static shape except for the one dim that follows the batch size (-1)."""
    n_moving = sum(moving)
    if n_moving > 1:
        raise UnsupportedOperatorError(node.op, node.name, f"target {out} has {n_moving} batch-dependent dims")
    target = [-1 if m else d for d, m in zip(out, moving)]
    shape = cv.const(f"{name}_shape", np.array(target, np.int64))
    return cv.emit("Reshape", [x, shape], name)[0]


def convert_mxnet_files(
    symbol_path: str | os.PathLike,
    params_path: str | os.PathLike,
    onnx_path: str | os.PathLike | None = None,
    **kwargs,
) -> onnx.ModelProto:
    """Read ``*-symbol.json`` + ``*.params``, convert with :func:`mxnet_to_onnx` (same keyword
    arguments) and optionally save to ``onnx_path``."""
    model = mxnet_to_onnx(load_symbol(symbol_path), load_params(params_path), **kwargs)
    if onnx_path is not None:
        onnx.save_model(model, os.fspath(onnx_path))
    return model
