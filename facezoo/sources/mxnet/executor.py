"""A NumPy reference executor for MXNet symbol graphs: "the original model", without MXNet.

It follows MXNet's *inference* semantics (``is_train=False``) for the operators face-recognition
graphs use, and is the yardstick converted models are validated against.

Semantics worth knowing (MXNet 1.x defaults):

* ``BatchNorm``: eps 1e-3 when absent, ``fix_gamma`` True by default and then gamma := 1,
  moving statistics always used (``use_global_stats`` and ``momentum`` are training-only), axis 1.
* ``LeakyReLU``: ``act_type`` leaky (slope 0.25) by default; prelu reads ``<name>_gamma``
  per channel (axis 1); elu uses ``slope`` as alpha; rrelu uses the mean of its bounds.
* ``FullyConnected`` flattens its input unless ``flatten`` is False.
* ``Pooling``: stride 1 and pad 0 by default, ``pooling_convention`` valid (floor) or full
  (ceil), average pooling counts padding unless ``count_include_pad`` is False.
* ``Dropout`` is the identity; ``SoftmaxOutput`` is a softmax and ignores its label.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from facezoo.sources.mxnet.ops import _OPS, SUPPORTED_OPS, _Ctx, _fail, _skip_inputs, conv2d
from facezoo.sources.mxnet.params import MXNetFormatError, load_params, split_arg_aux
from facezoo.sources.mxnet.shapes import mxnet_reshape
from facezoo.sources.mxnet.symbol import Graph, UnsupportedOperatorError, load_symbol

__all__ = ["MXNetModel", "SUPPORTED_OPS", "conv2d", "mxnet_reshape"]


class MXNetModel:
    """An MXNet graph with its parameters, runnable with NumPy.

    ``arg_params``/``aux_params`` are keyed by variable name without ``arg:``/``aux:``.
    ``data_names`` are the variables fed at run time; any other variable the heads need must be
    a parameter.
    """

    def __init__(
        self,
        graph: Graph,
        arg_params: Mapping[str, np.ndarray],
        aux_params: Mapping[str, np.ndarray] | None = None,
        *,
        data_names: Sequence[str] = ("data",),
    ):
        self.graph = graph
        self.params: dict[str, np.ndarray] = dict(arg_params)
        for k, v in (aux_params or {}).items():
            self.params[k] = v
        self.data_names = tuple(data_names)
        needed = graph.ancestors(graph.heads, _skip_inputs)
        self._check(needed, set(self.data_names), "data")

    @classmethod
    def load(
        cls,
        symbol_path: str | os.PathLike,
        params_path: str | os.PathLike,
        *,
        data_names: Sequence[str] = ("data",),
    ) -> "MXNetModel":
        graph = load_symbol(symbol_path)
        args, auxs = split_arg_aux(load_params(params_path))
        return cls(graph, args, auxs, data_names=data_names)

    # ------------------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.graph.path}: " if self.graph.path else ""

    def _check(self, needed: list[int], fed: set[str], what: str) -> None:
        missing = []
        for i in needed:
            node = self.graph.nodes[i]
            if node.is_variable:
                if node.name not in self.params and node.name not in fed:
                    missing.append(node.name)
            elif node.op not in _OPS:
                raise UnsupportedOperatorError(node.op, node.name, where=self._where())
        if missing:
            raise MXNetFormatError(
                f"{self._where()}variables {missing} are neither {what} inputs ({sorted(fed)}) nor in the params file"
            )

    @property
    def input_names(self) -> list[str]:
        """Variables the heads need that are not parameters (normally ``["data"]``)."""
        needed = self.graph.ancestors(self.graph.heads, _skip_inputs)
        return [
            self.graph.nodes[i].name
            for i in needed
            if self.graph.nodes[i].is_variable and self.graph.nodes[i].name not in self.params
        ]

    @property
    def output_names(self) -> list[str]:
        """The graph heads in MXNet's ``list_outputs`` spelling (``fc1_output``)."""
        return [self.graph.output_name(h) for h in self.graph.heads]

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
        *,
        dtype: np.dtype | type = np.float32,
    ) -> dict[str, np.ndarray]:
        """Run the graph. ``outputs`` are node names or ``<name>_output`` spellings (default: the
        heads, keyed as :attr:`output_names`). ``dtype`` float32 mimics MXNet; float64 gives a
        higher-precision reference. Results are float32 arrays."""
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, not {dt}")
        g = self.graph
        if outputs is None:
            wanted = {g.output_name(h): h for h in g.heads}
        else:
            if isinstance(outputs, str):
                outputs = [outputs]
            wanted = {name: g.resolve_output(name) for name in outputs}
        for name in inputs:
            if name not in g or not g.node(name).is_variable:
                raise MXNetFormatError(f"{self._where()}input {name!r} is not a variable of the graph")
        needed = g.ancestors(wanted.values(), _skip_inputs)
        self._check(needed, set(inputs), "given")
        ctx = _Ctx(dt)
        values: dict[int, list[np.ndarray]] = {}
        last_use: dict[int, int] = {}
        for i in needed:
            for pos, (src, _) in enumerate(g.nodes[i].inputs):
                if pos not in _skip_inputs(g.nodes[i]):
                    last_use[src] = i
        keep = {idx for idx, _ in wanted.values()}
        for i in needed:
            node = g.nodes[i]
            if node.is_variable:
                if node.name in inputs:
                    values[i] = [np.asarray(inputs[node.name]).astype(dt)]
                else:
                    values[i] = [self.params[node.name]]
                continue
            skip = _skip_inputs(node)
            args = []
            for pos, (src, out) in enumerate(node.inputs):
                if pos in skip:
                    continue
                produced = values[src]
                if out >= len(produced):
                    raise _fail(
                        node, f"input {pos} reads output {out} of {g.nodes[src].name!r}, which has {len(produced)}"
                    )
                a = produced[out]
                args.append(a.astype(dt, copy=False) if a.dtype != dt and a.dtype.kind == "f" else a)
            if not args and node.inputs:
                raise _fail(node, "no usable inputs")
            values[i] = _OPS[node.op](node, args, ctx)
            # free what nobody reads any more
            for src, _ in node.inputs:
                if last_use.get(src) == i and src not in keep:
                    values.pop(src, None)
        result = {}
        for name, (idx, out) in wanted.items():
            produced = values[idx]
            if out >= len(produced):
                raise MXNetFormatError(f"{self._where()}node {g.nodes[idx].name!r} has no output {out}")
            result[name] = np.asarray(produced[out], dtype=np.float32)
        return result
