"""Layers with weights or windows: Gemm, MatMul, Conv, BatchNormalization, pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from facezoo.converters.mindir.common import (
    _attrs,
    _fail,
    _lit,
    _only_first_output,
    _out,
    _unsupported,
)

if TYPE_CHECKING:
    from facezoo.converters.mindir.builder import _Builder


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


def _h_maxpool(b, node):
    _only_first_output(node, b)
    if _dynamic_same_upper(b, node):
        # a net that runs at any size (MTCNN's P-Net): the padding follows each input's size at run
        # time; MindSpore's 'SAME' pads like ONNX SAME_UPPER (the odd pixel at the end)
        a = _attrs(node)
        kernel, strides = tuple(int(k) for k in a["kernel_shape"]), tuple(int(v) for v in a.get("strides", [1, 1]))
        op = b.primitive(f"{node.name}_pool", f"ops.MaxPool({_lit(kernel)}, {_lit(strides)}, 'SAME')")
        _out(b, node, f"self.{op}({b.expr(node.input[0])})")
        return
    kernel, strides, pads, size, outs, extra = _pool_geometry(b, node)
    x = _padded(b, b.expr(node.input[0]), pads, extra, "float('-inf')")
    op = b.primitive(f"{node.name}_pool", f"ops.MaxPool({_lit(tuple(kernel))}, {_lit(tuple(strides))}, 'VALID')")
    _out(b, node, f"self.{op}({x})")


def _dynamic_same_upper(b: _Builder, node: onnx.NodeProto) -> bool:
    """A 2-D SAME_UPPER max pool without dilation or ceil_mode over an input of unknown H×W."""
    a = _attrs(node)
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    shape = b.shape(node.input[0], node)
    return (auto == "SAME_UPPER" and len(shape) == 4 and not all(isinstance(d, int) for d in shape[2:])
            and not int(a.get("ceil_mode", 0)) and [int(v) for v in a.get("dilations", [1, 1])] == [1, 1]
            and not int(a.get("storage_order", 0)))


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


