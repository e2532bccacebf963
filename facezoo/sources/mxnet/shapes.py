"""MXNet's shape rules shared by the executor and the ONNX translation."""

from __future__ import annotations

import math
from typing import Sequence


def mxnet_reshape(src: Sequence[int], target: Sequence[int], reverse: bool = False) -> tuple[int, ...]:
    """MXNet's Reshape shape inference with special values 0, -1, -2, -3, -4."""
    src = list(src)
    target = list(target)
    if reverse:
        src.reverse()
        target.reverse()
        # -4 takes its two following values; reversed, they precede it: restore order
        fixed = []
        i = 0
        while i < len(target):
            if i + 2 < len(target) and target[i + 2] == -4:
                fixed += [-4, target[i + 1], target[i]]
                i += 3
            else:
                fixed.append(target[i])
                i += 1
        target = fixed
    out: list[int] = []
    infer = None
    i = j = 0
    while j < len(target):
        v = target[j]
        if v > 0:
            out.append(v)
            i += 1
        elif v == 0:
            if i >= len(src):
                raise ValueError("0 copies a dimension the input does not have")
            out.append(src[i])
            i += 1
        elif v == -1:
            if infer is not None:
                raise ValueError("more than one -1")
            infer = len(out)
            out.append(-1)
            i += 1
        elif v == -2:
            out.extend(src[i:])
            i = len(src)
        elif v == -3:
            if i + 1 >= len(src):
                raise ValueError("-3 needs two input dimensions")
            out.append(src[i] * src[i + 1])
            i += 2
        elif v == -4:
            if j + 2 >= len(target) or i >= len(src):
                raise ValueError("-4 needs two following values and an input dimension")
            d1, d2 = target[j + 1], target[j + 2]
            if d1 == -1 and d2 > 0:
                d1 = src[i] // d2
            elif d2 == -1 and d1 > 0:
                d2 = src[i] // d1
            if d1 <= 0 or d2 <= 0 or d1 * d2 != src[i]:
                raise ValueError(f"-4 cannot split {src[i]} into {target[j + 1]} x {target[j + 2]}")
            out += [d1, d2]
            i += 1
            j += 2
        else:
            raise ValueError(f"invalid shape value {v}")
        j += 1
    total = math.prod(src)
    if infer is not None:
        known = math.prod(d for k, d in enumerate(out) if k != infer)
        if known == 0 or total % known:
            raise ValueError(f"cannot infer -1: {total} elements, {known} known")
        out[infer] = total // known
    if math.prod(out) != total:
        raise ValueError(f"{tuple(src)} ({total} elements) cannot become {tuple(out)}")
    if reverse:
        out.reverse()
    return tuple(out)


__all__ = ["mxnet_reshape"]
