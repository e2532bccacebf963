"""The operator table: every ONNX operator the importer translates, and its handler."""

from __future__ import annotations

from typing import Callable

from facezoo.converters.mindir.ops_layers import (
    _h_avgpool,
    _h_batchnorm,
    _h_conv,
    _h_gemm,
    _h_global_pool,
    _h_matmul,
    _h_maxpool,
)
from facezoo.converters.mindir.ops_math import (
    _h_alias,
    _h_binary,
    _h_cast,
    _h_clip,
    _h_leaky,
    _h_prelu,
    _h_reduce,
    _h_softmax,
    _h_tanh,
    _h_variadic,
    _unary,
)
from facezoo.converters.mindir.ops_shape import (
    _h_concat,
    _h_flatten,
    _h_gather,
    _h_pad,
    _h_reshape,
    _h_shape,
    _h_split,
    _h_squeeze,
    _h_transpose,
    _h_unsqueeze,
)

_HANDLERS: dict[str, Callable] = {
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


