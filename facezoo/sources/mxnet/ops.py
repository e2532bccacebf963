"""The operators of the NumPy reference executor (MXNet 1.x inference semantics).

See :mod:`facezoo.sources.mxnet.executor` for the semantics worth knowing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from facezoo.sources.mxnet.params import MXNetFormatError
from facezoo.sources.mxnet.shapes import mxnet_reshape
from facezoo.sources.mxnet.symbol import Node, UnsupportedOperatorError


class _Ctx:
    """What an operator implementation gets besides its inputs."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def scalar(self, node: Node, key: str = "scalar", default=None) -> np.generic:
        value = node.get_float(key) if default is None else node.get_float(key, default)
        return self.dtype.type(value)


def _fail(node: Node, message: str) -> MXNetFormatError:
    return MXNetFormatError(f"node {node.name!r} ({node.op}): {message}")


def _channel_shape(x: np.ndarray, axis: int) -> tuple[int, ...]:
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return tuple(shape)


def _pair(node: Node, key: str, default: int, n: int = 2) -> tuple[int, ...]:
    value = node.get_tuple(key, ())
    if len(value) == 0:
        return (default,) * n
    if len(value) == 1 and n > 1:
        return value * n
    if len(value) != n:
        raise _fail(node, f"attribute {key}={node.attrs.get(key)!r} must have {n} values")
    return value


# ------------------------------------------------------------------------------------- conv ----
def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    dilate: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """2-D cross-correlation in NCHW/OIHW layout via im2col + matmul (dtype of ``x``)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    ph, pw = pad
    dh, dw = dilate
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    hp, wp = x.shape[2], x.shape[3]
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {kh}x{kw} (dilation {dh}x{dw}) larger than padded input {hp}x{wp}")
    x = np.ascontiguousarray(x)
    k = cg * kh * kw
    if kh == kw == 1 and sh == sw == 1:
        cols = x.reshape(n, c, hp * wp) if (oh, ow) == (hp, wp) else None
    else:
        cols = None
    if cols is None:
        s0, s1, s2, s3 = x.strides
        win = as_strided(
            x,
            shape=(n, c, kh, kw, oh, ow),
            strides=(s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw),
            writeable=False,
        )
        cols = win.reshape(n, c * kh * kw, oh * ow)
    if groups == 1:
        out = np.matmul(w.reshape(o, k).astype(x.dtype, copy=False), cols)
    else:
        cols = cols.reshape(n, groups, k, oh * ow)
        wg = w.reshape(groups, o // groups, k).astype(x.dtype, copy=False)
        if o // groups == 1 and k <= 64:
            out = np.einsum("gk,ngkl->ngl", wg[:, 0, :], cols, optimize=False)
        else:
            out = np.matmul(wg, cols)
    out = out.reshape(n, o, oh, ow)
    if b is not None:
        out += b.astype(x.dtype, copy=False).reshape(1, o, 1, 1)
    return out


def _op_convolution(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    x, w = ins[0], ins[1]
    no_bias = node.get_bool("no_bias", False)
    kernel = node.get_tuple("kernel")
    if len(kernel) != 2 or x.ndim != 4:
        raise UnsupportedOperatorError(node.op, node.name, f"only 2-D NCHW convolution is supported (kernel {kernel})")
    layout = node.get_str("layout", "None")
    if layout not in ("None", "NCHW"):
        raise UnsupportedOperatorError(node.op, node.name, f"layout {layout} is not supported")
    stride = _pair(node, "stride", 1)
    pad = _pair(node, "pad", 0)
    dilate = _pair(node, "dilate", 1)
    groups = node.get_int("num_group", 1)
    num_filter = node.get_int("num_filter")
    c = x.shape[1]
    if groups < 1 or c % groups or num_filter % groups:
        raise _fail(node, f"num_group {groups} does not divide {c} input channels and {num_filter} filters")
    expected = (num_filter, c // groups, *kernel)
    if w.shape != expected:
        raise _fail(node, f"weight has shape {w.shape}, expected {expected} for input {x.shape}")
    bias = None
    if not no_bias:
        if len(ins) < 3:
            raise _fail(node, "no_bias is False but no bias input is given")
        bias = ins[2]
        if bias.shape != (num_filter,):
            raise _fail(node, f"bias has shape {bias.shape}, expected ({num_filter},)")
    try:
        return [conv2d(x, w, bias, stride, pad, dilate, groups)]
    except ValueError as exc:
        raise _fail(node, str(exc)) from None


# ---------------------------------------------------------------------------------- layers ----
def _op_batchnorm(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    if len(ins) != 5:
        raise _fail(node, f"expects 5 inputs (data, gamma, beta, moving_mean, moving_var), got {len(ins)}")
    x, gamma, beta, mean, var = ins
    axis = node.get_int("axis", 1)
    if not -x.ndim <= axis < x.ndim:
        raise _fail(node, f"axis {axis} out of range for input of shape {x.shape}")
    axis %= x.ndim
    eps = node.get_float("eps", 1e-3)
    c = x.shape[axis]
    for what, a in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_var", var)):
        if a.shape != (c,):
            raise _fail(node, f"{what} has shape {a.shape}, expected ({c},) for input {x.shape}")
    if node.get_bool("fix_gamma", True):
        gamma = np.ones_like(gamma)
    # compute the affine in float64, apply it in the compute dtype
    g = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * g
    shape = _channel_shape(x, axis)
    scale = g.astype(ctx.dtype).reshape(shape)
    shift = shift.astype(ctx.dtype).reshape(shape)
    # MXNet evaluates (x - mean) * (gamma / sqrt(var + eps)) + beta; keep that order in float32
    if ctx.dtype == np.float32:
        y = (x - mean.astype(ctx.dtype).reshape(shape)) * scale + beta.astype(ctx.dtype).reshape(shape)
    else:
        y = x * scale + shift
    return [y, mean.astype(ctx.dtype), var.astype(ctx.dtype)]


def _op_leakyrelu(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    x = ins[0]
    act = node.get_str("act_type", "leaky")
    if act == "prelu":
        if len(ins) < 2:
            raise _fail(node, "prelu needs a gamma input")
        gamma = ins[1].astype(ctx.dtype, copy=False)
        if gamma.size == 1:
            g = gamma.reshape(())
        elif x.ndim >= 2 and gamma.shape == (x.shape[1],):
            g = gamma.reshape(_channel_shape(x, 1))
        else:
            raise _fail(node, f"prelu gamma has shape {gamma.shape}, expected ({x.shape[1]},) for input {x.shape}")
        return [np.where(x > 0, x, x * g)]
    if act == "leaky":
        slope = ctx.scalar(node, "slope", 0.25)
        return [np.where(x > 0, x, x * slope)]
    if act == "rrelu":
        lo = node.get_float("lower_bound", 0.125)
        hi = node.get_float("upper_bound", 0.334)
        slope = ctx.dtype.type((lo + hi) / 2)
        return [np.where(x > 0, x, x * slope)]
    if act == "elu":
        slope = ctx.scalar(node, "slope", 0.25)
        return [np.where(x > 0, x, slope * np.expm1(np.minimum(x, 0)))]
    if act == "selu":
        lam = ctx.dtype.type(1.0507009873554804934193349852946)
        alpha = ctx.dtype.type(1.6732632423543772848170429916717)
        return [lam * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))]
    raise UnsupportedOperatorError(node.op, node.name, f"act_type {act!r} is not supported")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # stable in both tails
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softrelu": lambda x: np.logaddexp(0, x).astype(x.dtype, copy=False),
    "softsign": lambda x: x / (1 + np.abs(x)),
}


def _op_activation(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    act = node.get_str("act_type")
    fn = _ACTIVATIONS.get(act)
    if fn is None:
        raise UnsupportedOperatorError(node.op, node.name, f"act_type {act!r} is not supported")
    return [fn(ins[0])]


def _op_fullyconnected(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    x, w = ins[0], ins[1].astype(ctx.dtype, copy=False)
    num_hidden = node.get_int("num_hidden")
    if node.get_bool("flatten", True):
        x2 = x.reshape(x.shape[0], -1)
    else:
        x2 = x
    if w.shape != (num_hidden, x2.shape[-1]):
        raise _fail(node, f"weight has shape {w.shape}, expected {(num_hidden, x2.shape[-1])} for input {x.shape}")
    y = x2 @ w.T
    if not node.get_bool("no_bias", False):
        if len(ins) < 3:
            raise _fail(node, "no_bias is False but no bias input is given")
        b = ins[2]
        if b.shape != (num_hidden,):
            raise _fail(node, f"bias has shape {b.shape}, expected ({num_hidden},)")
        y = y + b.astype(ctx.dtype, copy=False)
    return [y]


def _pool_out(size: int, k: int, s: int, p: int, convention: str) -> int:
    span = size + 2 * p - k
    if span < 0:
        raise ValueError(f"pooling kernel {k} larger than padded input {size + 2 * p}")
    if convention == "full":
        return 1 + -(-span // s)
    return 1 + span // s


def _op_pooling(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    x = ins[0]
    if x.ndim != 4:
        raise UnsupportedOperatorError(node.op, node.name, f"only 2-D NCHW pooling is supported (input {x.shape})")
    ptype = node.get_str("pool_type", "max")
    if ptype not in ("max", "avg", "sum"):
        raise UnsupportedOperatorError(node.op, node.name, f"pool_type {ptype!r} is not supported")
    if node.get_bool("global_pool", False):
        if ptype == "max":
            return [x.max(axis=(2, 3), keepdims=True)]
        s = x.sum(axis=(2, 3), keepdims=True, dtype=np.float64)
        if ptype == "avg":
            s = s / (x.shape[2] * x.shape[3])
        return [s.astype(x.dtype)]
    kernel = node.get_tuple("kernel")
    if len(kernel) != 2:
        raise UnsupportedOperatorError(node.op, node.name, f"only 2-D pooling is supported (kernel {kernel})")
    kh, kw = kernel
    sh, sw = _pair(node, "stride", 1)
    ph, pw = _pair(node, "pad", 0)
    conv = node.get_str("pooling_convention", "valid")
    if conv not in ("valid", "full"):
        raise UnsupportedOperatorError(node.op, node.name, f"pooling_convention {conv!r} is not supported")
    n, c, h, w = x.shape
    try:
        oh = _pool_out(h, kh, sh, ph, conv)
        ow = _pool_out(w, kw, sw, pw, conv)
    except ValueError as exc:
        raise _fail(node, str(exc)) from None
    # pad low by p, high by p plus what the last (full-convention) window overhangs
    eh = max(0, (oh - 1) * sh + kh - (h + 2 * ph))
    ew = max(0, (ow - 1) * sw + kw - (w + 2 * pw))
    fill = -np.inf if ptype == "max" else 0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=fill)
    s0, s1, s2, s3 = xp.strides
    win = as_strided(xp, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False)
    if ptype == "max":
        return [win.max(axis=(4, 5))]
    total = win.sum(axis=(4, 5), dtype=np.float64)
    if ptype == "sum":
        return [total.astype(x.dtype)]

    def counts(size, k, s, p, o, extra):
        inside = np.zeros(size + 2 * p + extra)
        if node.get_bool("count_include_pad", True):
            inside[: size + 2 * p] = 1
        else:
            inside[p : p + size] = 1
        return np.array([inside[i * s : i * s + k].sum() for i in range(o)])

    div = counts(h, kh, sh, ph, oh, eh)[:, None] * counts(w, kw, sw, pw, ow, ew)[None, :]
    return [(total / np.maximum(div, 1)).astype(x.dtype)]


def _op_flatten(node, ins, ctx):
    x = ins[0]
    return [x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)]


def _op_reshape(node: Node, ins: list[np.ndarray], ctx: _Ctx) -> list[np.ndarray]:
    x = ins[0]
    shape = node.get_tuple("shape", ())
    try:
        if shape:
            new = mxnet_reshape(x.shape, shape, node.get_bool("reverse", False))
        else:  # legacy target_shape (0 = infer) with keep_highest
            target = list(node.get_tuple("target_shape"))
            if node.get_bool("keep_highest", False):
                target = [x.shape[0]] + target
            target = [-1 if d == 0 else d for d in target]
            new = mxnet_reshape(x.shape, target)
    except ValueError as exc:
        raise _fail(node, f"cannot reshape {x.shape}: {exc}") from None
    return [x.reshape(new)]


def _op_concat(node, ins, ctx):
    dim = node.get_int("dim", 1)
    try:
        return [np.concatenate(ins, axis=dim)]
    except (ValueError, np.AxisError) as exc:
        raise _fail(node, f"cannot concatenate {[a.shape for a in ins]} on axis {dim}: {exc}") from None


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def _op_softmaxoutput(node, ins, ctx):
    x = ins[0]
    if node.get_bool("multi_output", False):
        return [_softmax(x.reshape(x.shape[0], x.shape[1], -1), 1).reshape(x.shape)]
    if node.get_bool("preserve_shape", False):
        return [_softmax(x, -1)]
    return [_softmax(x.reshape(x.shape[0], -1), 1).reshape(x.shape)]


def _op_softmax(node, ins, ctx):
    x = ins[0]
    t = node.get_float("temperature", 1.0) if node.attrs.get("temperature", "None") != "None" else 1.0
    return [_softmax(x / x.dtype.type(t) if t != 1.0 else x, node.get_int("axis", -1))]


def _op_softmaxactivation(node, ins, ctx):
    x = ins[0]
    if node.get_str("mode", "instance") == "channel":
        return [_softmax(x, 1)]
    return [_softmax(x.reshape(x.shape[0], -1), 1).reshape(x.shape)]


def _op_l2norm(node, ins, ctx):
    x = ins[0]
    eps = node.get_float("eps", 1e-10)
    mode = node.get_str("mode", "instance")
    if mode == "instance":
        axes = tuple(range(1, x.ndim))
    elif mode == "channel":
        axes = (1,)
    elif mode == "spatial":
        axes = tuple(range(2, x.ndim))
    else:
        raise UnsupportedOperatorError(node.op, node.name, f"mode {mode!r} is not supported")
    sq = np.sum(np.square(x, dtype=np.float64), axis=axes, keepdims=True)
    return [(x / np.sqrt(sq + eps)).astype(x.dtype)]


def _op_slicechannel(node, ins, ctx):
    x = ins[0]
    k = node.get_int("num_outputs")
    axis = node.get_int("axis", 1)
    if k < 1 or x.shape[axis] % k:
        raise _fail(node, f"cannot split axis {axis} of {x.shape} into {k} equal parts")
    parts = np.split(x, k, axis=axis)
    if node.get_bool("squeeze_axis", False):
        parts = [np.squeeze(p, axis=axis) for p in parts]
    return parts


def _identity(node, ins, ctx):
    return [ins[0]]


def _dropout(node, ins, ctx):
    if node.get_str("mode", "training") == "always":
        raise UnsupportedOperatorError(node.op, node.name, "mode 'always' drops at inference too (random)")
    return [ins[0]]


def _binary(fn, same_shape: bool):
    def op(node, ins, ctx):
        if len(ins) != 2:
            raise _fail(node, f"expects 2 inputs, got {len(ins)}")
        a, b = ins
        if same_shape and a.shape != b.shape:
            raise _fail(node, f"inputs have different shapes {a.shape} and {b.shape}")
        try:
            return [fn(a, b)]
        except ValueError as exc:
            raise _fail(node, f"cannot broadcast {a.shape} and {b.shape}: {exc}") from None

    return op


def _add_n(node, ins, ctx):
    out = ins[0].copy()
    for a in ins[1:]:
        if a.shape != out.shape:
            raise _fail(node, f"inputs have different shapes {[x.shape for x in ins]}")
        out += a
    return [out]


def _scalar(fn):
    def op(node, ins, ctx):
        return [fn(ins[0], ctx.scalar(node))]

    return op


def _unary(fn):
    def op(node, ins, ctx):
        return [fn(ins[0])]

    return op


def _op_clip(node, ins, ctx):
    return [np.clip(ins[0], ctx.scalar(node, "a_min"), ctx.scalar(node, "a_max"))]


def _op_cast(node, ins, ctx):
    try:
        dt = np.dtype(node.get_str("dtype"))
    except TypeError:
        raise _fail(node, f"unknown dtype {node.attrs.get('dtype')!r}") from None
    return [ins[0].astype(dt).astype(ctx.dtype)]


def _op_transpose(node, ins, ctx):
    axes = node.get_tuple("axes", ())
    return [np.transpose(ins[0], axes or None)]


def _op_expand_dims(node, ins, ctx):
    return [np.expand_dims(ins[0], node.get_int("axis"))]


_OPS: dict[str, Callable[[Node, list[np.ndarray], _Ctx], list[np.ndarray]]] = {
    "Convolution": _op_convolution,
    "BatchNorm": _op_batchnorm,
    "LeakyReLU": _op_leakyrelu,
    "Activation": _op_activation,
    "FullyConnected": _op_fullyconnected,
    "Pooling": _op_pooling,
    "Flatten": _op_flatten,
    "flatten": _op_flatten,
    "Reshape": _op_reshape,
    "reshape": _op_reshape,
    "Concat": _op_concat,
    "concat": _op_concat,
    "SoftmaxOutput": _op_softmaxoutput,
    "Softmax": _op_softmaxoutput,
    "softmax": _op_softmax,
    "SoftmaxActivation": _op_softmaxactivation,
    "L2Normalization": _op_l2norm,
    "SliceChannel": _op_slicechannel,
    "split": _op_slicechannel,
    "Dropout": _dropout,
    "_copy": _identity,
    "identity": _identity,
    "BlockGrad": _identity,
    "stop_gradient": _identity,
    "clip": _op_clip,
    "Cast": _op_cast,
    "cast": _op_cast,
    "transpose": _op_transpose,
    "expand_dims": _op_expand_dims,
    "add_n": _add_n,
    "ElementWiseSum": _add_n,
    "relu": _unary(_ACTIVATIONS["relu"]),
    "sigmoid": _unary(_sigmoid),
    "tanh": _unary(np.tanh),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "square": _unary(np.square),
    "abs": _unary(np.abs),
    "negative": _unary(np.negative),
}
for _names, _fn in (
    (("elemwise_add", "_Plus", "_plus", "_add"), np.add),
    (("elemwise_sub", "_Minus", "_minus", "_sub"), np.subtract),
    (("elemwise_mul", "_Mul", "_mul"), np.multiply),
    (("elemwise_div", "_Div", "_div"), np.divide),
    (("_Maximum", "_maximum"), np.maximum),
    (("_Minimum", "_minimum"), np.minimum),
):
    for _n in _names:
        _OPS[_n] = _binary(_fn, same_shape=True)
for _names, _fn in (
    (("broadcast_add", "broadcast_plus"), np.add),
    (("broadcast_sub", "broadcast_minus"), np.subtract),
    (("broadcast_mul",), np.multiply),
    (("broadcast_div",), np.divide),
    (("broadcast_maximum",), np.maximum),
    (("broadcast_minimum",), np.minimum),
):
    for _n in _names:
        _OPS[_n] = _binary(_fn, same_shape=False)
for _names, _fn in (
    (("_minus_scalar", "_MinusScalar"), lambda x, s: x - s),
    (("_rminus_scalar", "_RMinusScalar"), lambda x, s: s - x),
    (("_plus_scalar", "_PlusScalar"), lambda x, s: x + s),
    (("_mul_scalar", "_MulScalar"), lambda x, s: x * s),
    (("_div_scalar", "_DivScalar"), lambda x, s: x / s),
    (("_rdiv_scalar", "_RDivScalar"), lambda x, s: s / x),
    (("_maximum_scalar", "_MaximumScalar"), np.maximum),
    (("_minimum_scalar", "_MinimumScalar"), np.minimum),
    (("_power_scalar", "_PowerScalar"), np.power),
):
    for _n in _names:
        _OPS[_n] = _scalar(_fn)

#: operators the executor runs
SUPPORTED_OPS: frozenset[str] = frozenset(_OPS)

# inputs an operator does not read at inference (loss labels)
_IGNORED_INPUTS = {
    "SoftmaxOutput": {1},
    "Softmax": {1},
    "LinearRegressionOutput": {1},
    "LogisticRegressionOutput": {1},
}


def _skip_inputs(node: Node) -> set[int]:
    return _IGNORED_INPUTS.get(node.op, set())
