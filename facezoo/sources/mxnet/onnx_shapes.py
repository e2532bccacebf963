"""What the MXNet → ONNX translation knows before it emits: operator tables and static shapes."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from facezoo.sources.mxnet.params import MXNetFormatError
from facezoo.sources.mxnet.shapes import mxnet_reshape
from facezoo.sources.mxnet.symbol import Graph, Node, UnsupportedOperatorError

DEFAULT_OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17; every current runtime reads it

Shape = tuple[int, ...]

_IDENTITY_OPS = {"Dropout", "_copy", "identity", "BlockGrad", "stop_gradient"}
_SCALAR_OPS = {
    "_minus_scalar": "Sub",
    "_MinusScalar": "Sub",
    "_rminus_scalar": "RSub",
    "_RMinusScalar": "RSub",
    "_plus_scalar": "Add",
    "_PlusScalar": "Add",
    "_mul_scalar": "Mul",
    "_MulScalar": "Mul",
    "_div_scalar": "Div",
    "_DivScalar": "Div",
    "_rdiv_scalar": "RDiv",
    "_RDivScalar": "RDiv",
    "_maximum_scalar": "Max",
    "_MaximumScalar": "Max",
    "_minimum_scalar": "Min",
    "_MinimumScalar": "Min",
    "_power_scalar": "Pow",
    "_PowerScalar": "Pow",
}
_SAME_SHAPE_BINARY = {
    **dict.fromkeys(("elemwise_add", "_Plus", "_plus", "_add"), "Add"),
    **dict.fromkeys(("elemwise_sub", "_Minus", "_minus", "_sub"), "Sub"),
    **dict.fromkeys(("elemwise_mul", "_Mul", "_mul"), "Mul"),
    **dict.fromkeys(("elemwise_div", "_Div", "_div"), "Div"),
    **dict.fromkeys(("_Maximum", "_maximum"), "Max"),
    **dict.fromkeys(("_Minimum", "_minimum"), "Min"),
}
_BROADCAST_BINARY = {
    "broadcast_add": "Add",
    "broadcast_plus": "Add",
    "broadcast_sub": "Sub",
    "broadcast_minus": "Sub",
    "broadcast_mul": "Mul",
    "broadcast_div": "Div",
    "broadcast_maximum": "Max",
    "broadcast_minimum": "Min",
}
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
          "abs": "Abs", "negative": "Neg"}
_ACT = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus", "softsign": "Softsign"}
# inputs not read at inference (loss labels)
_LABEL_INPUT = {"SoftmaxOutput": {1}, "Softmax": {1}}


def _skip(node: Node) -> set[int]:
    return _LABEL_INPUT.get(node.op, set())


def _err(node: Node, msg: str) -> MXNetFormatError:
    return MXNetFormatError(f"node {node.name!r} ({node.op}): {msg}")


def _hw(node: Node, key: str, default: int) -> tuple[int, int]:
    v = node.get_tuple(key, ())
    if not v:
        return (default, default)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        raise _err(node, f"{key}={node.attrs[key]!r}: expected 2 values")
    return (v[0], v[1])


# ---------------------------------------------------------------------------- shape rules ----
def _pool_len(size: int, k: int, s: int, p: int, full: bool) -> int:
    num = size + 2 * p - k
    if num < 0:
        raise ValueError("pooling window larger than the padded input")
    return num // s + 1 + (1 if full and num % s else 0)


def _infer_shape(node: Node, shapes: list[Shape], params: Mapping[str, np.ndarray], graph: Graph) -> list[Shape]:
    """Output shapes of one operator node given its input shapes."""
    op = node.op
    x = shapes[0] if shapes else ()
    if op in _IDENTITY_OPS or op in _SCALAR_OPS or op in _UNARY or op in ("Activation", "LeakyReLU",
                                                                          "L2Normalization", "SoftmaxOutput",
                                                                          "Softmax", "softmax", "clip",
                                                                          "square", "SoftmaxActivation"):
        return [x]
    if op == "BatchNorm":
        return [x, (x[1],), (x[1],)]
    if op in _SAME_SHAPE_BINARY or op in ("add_n", "ElementWiseSum"):
        if any(s != x for s in shapes):
            raise _err(node, f"inputs have different shapes {shapes}")
        return [x]
    if op in _BROADCAST_BINARY:
        return [tuple(np.broadcast_shapes(*shapes))]
    if op in ("Convolution", "Pooling") and len(x) != 4:
        raise UnsupportedOperatorError(op, node.name, f"only 2-D NCHW is supported, input shape {x}")
    if op == "Convolution":
        if len(node.get_tuple("kernel")) != 2:
            raise UnsupportedOperatorError(op, node.name, f"kernel {node.attrs['kernel']} is not 2-D")
        kh, kw = _hw(node, "kernel", 0)
        sh, sw = _hw(node, "stride", 1)
        ph, pw = _hw(node, "pad", 0)
        dh, dw = _hw(node, "dilate", 1)
        oh = (x[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (x[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise _err(node, f"kernel larger than the padded input {x}")
        return [(x[0], node.get_int("num_filter"), oh, ow)]
    if op == "FullyConnected":
        nh = node.get_int("num_hidden")
        if node.get_bool("flatten", True):
            return [(x[0], nh)]
        return [x[:-1] + (nh,)]
    if op == "Pooling":
        if node.get_bool("global_pool", False):
            return [(x[0], x[1], 1, 1)]
        kh, kw = _hw(node, "kernel", 0)
        sh, sw = _hw(node, "stride", 1)
        ph, pw = _hw(node, "pad", 0)
        full = node.get_str("pooling_convention", "valid") == "full"
        try:
            return [(x[0], x[1], _pool_len(x[2], kh, sh, ph, full), _pool_len(x[3], kw, sw, pw, full))]
        except ValueError as exc:
            raise _err(node, str(exc)) from None
    if op in ("Flatten", "flatten"):
        return [(x[0], math.prod(x[1:]))]
    if op in ("Reshape", "reshape"):
        try:
            return [mxnet_reshape(x, node.get_tuple("shape"), node.get_bool("reverse", False))]
        except (ValueError, IndexError, ZeroDivisionError) as exc:
            raise _err(node, f"cannot reshape {x}: {exc}") from None
    if op in ("Concat", "concat"):
        d = node.get_int("dim", 1) % len(x)
        out = list(x)
        out[d] = sum(s[d] for s in shapes)
        return [tuple(out)]
    if op in ("SliceChannel", "split"):
        n = node.get_int("num_outputs")
        ax = node.get_int("axis", 1) % len(x)
        if x[ax] % n:
            raise _err(node, f"axis {ax} of {x} does not split into {n}")
        part = list(x)
        part[ax] //= n
        if node.get_bool("squeeze_axis", False):
            del part[ax]
        return [tuple(part)] * n
    if op == "transpose":
        axes = node.get_tuple("axes", ()) or tuple(reversed(range(len(x))))
        return [tuple(x[a] for a in axes)]
    if op == "expand_dims":
        ax = node.get_int("axis")
        ax = ax if ax >= 0 else ax + len(x) + 1
        return [x[:ax] + (1,) + x[ax:]]
    raise UnsupportedOperatorError(op, node.name, where=f"{graph.path}: " if graph.path else "")


CONVERTIBLE_OPS: frozenset[str] = frozenset(
    {"Convolution", "BatchNorm", "LeakyReLU", "Activation", "FullyConnected", "Pooling", "Flatten", "flatten",
     "Reshape", "reshape", "Concat", "concat", "SoftmaxOutput", "Softmax", "softmax", "SoftmaxActivation",
     "L2Normalization", "SliceChannel", "split", "add_n", "ElementWiseSum", "clip", "square", "transpose",
     "expand_dims"}
    | _IDENTITY_OPS | set(_SCALAR_OPS) | set(_SAME_SHAPE_BINARY) | set(_BROADCAST_BINARY) | set(_UNARY)
)
