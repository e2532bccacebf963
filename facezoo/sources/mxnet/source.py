"""MXNet models (``-symbol.json`` + ``.params``) as conversion sources, without MXNet.

The original model is the NumPy reference executor (:class:`facezoo.sources.mxnet.MXNetModel`) fed the
registry's input contract; the converted artifacts come from one translation to ONNX
(:func:`facezoo.sources.mxnet.mxnet_to_onnx`, the channel swap folded into the first convolution), from
which the MINDIR is imported (:mod:`facezoo.converters.mindir`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.converters.normalization import normalization_constants
from facezoo.errors import ConversionError, FacezooError
from facezoo.registry import ModelSpec
from facezoo.sources import register_source


def _files(spec: ModelSpec, folder: Path, override: Path | None) -> list[Path]:
    return [folder / spec.conversion.symbol, folder / spec.conversion.params]


@register_source("mxnet", files=_files, standin_writer="facezoo.sources.mxnet.standin:write_standin")
@dataclass
class MXNetSource:
    """The original MXNet graph with its parameters, fed the upstream preprocessing."""

    spec: ModelSpec
    symbol_path: Path
    params_path: Path
    model: object = field(init=False, repr=False)
    _onnx: object = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        from facezoo.sources.mxnet import MXNetModel, load_params, load_symbol, split_arg_aux

        self.symbol_path = Path(self.symbol_path)
        self.params_path = Path(self.params_path)
        if not self.spec.conversion.output_node:
            raise ConversionError(f"{self.spec.name}: the registry entry names no conversion.output_node")
        try:
            graph = load_symbol(self.symbol_path)
            args, auxs = split_arg_aux(load_params(self.params_path))
            self.model = MXNetModel(graph, args, auxs, data_names=(self.spec.input.name,))
            graph.resolve_output(self.spec.conversion.output_node)
        except ConversionError:
            raise
        except FacezooError as exc:  # MXNetFormatError, UnsupportedOperatorError
            raise ConversionError(f"{self.spec.name}: {exc}") from None

    @property
    def source_files(self) -> list[Path]:
        return [self.symbol_path, self.params_path]

    # ------------------------------------------------------------------------------ original --
    def original_input(self, images_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR NHWC images -> what the original graph's input takes (float32 NCHW)."""
        from facezoo.preprocessing import to_model_input

        batch = to_model_input(images_bgr, self.spec.input.channel_order)
        if self.spec.input.normalization == "outside":
            mean, inv_std = normalization_constants(self.spec, self.spec.input.channel_order)
            batch = (batch - mean) * inv_std
        return np.ascontiguousarray(batch, np.float32)

    def run_original(self, batch: np.ndarray) -> np.ndarray:
        """``conversion.output_node`` of the original graph for an input already in its contract
        (float32 NCHW, original channel order and normalization), as (N, features) float32."""
        node = self.spec.conversion.output_node
        try:
            outputs = self.model.run({self.spec.input.name: np.asarray(batch, np.float32)}, [node])
        except FacezooError as exc:
            raise ConversionError(f"{self.spec.name}: the MXNet graph does not run: {exc}") from None
        return np.asarray(outputs[node], np.float32).reshape(len(batch), -1)

    def reference(self, images_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The original model's output (``conversion.output_node``) for uint8 BGR images, under the
        converted contract's output name."""
        embeddings = self.run_original(self.original_input(images_bgr))
        if embeddings.shape[1] != self.spec.output.dim:
            raise ConversionError(
                f"{self.spec.name}: {self.spec.conversion.output_node} gives {embeddings.shape[1]} features, "
                f"the registry says output.dim {self.spec.output.dim}"
            )
        return {self.spec.converted.output_name: embeddings}

    # ------------------------------------------------------------------------------- exports --
    def onnx_model(self):
        """The FP32 ONNX with the converted contract (built once)."""
        if self._onnx is None:
            self._onnx = self._build_onnx()
        return self._onnx

    def export_onnx(self, path: Path) -> None:
        from facezoo.converters import onnx_graph

        onnx_graph.check_and_save(self.onnx_model(), Path(path))

    def export_mindir(self, path: Path, precision: str) -> None:
        from facezoo.converters.mindir import export_mindir, onnx_to_mindspore

        path = Path(path)
        cell = onnx_to_mindspore(self.onnx_model(), precision=precision)
        export_mindir(cell, path)

    def _needs_channel_swap(self) -> bool:
        return self.spec.input.channels == 3 and self.spec.input.channel_order != self.spec.converted.channel_order

    def _build_onnx(self):
        from facezoo.sources.mxnet import mxnet_to_onnx

        spec = self.spec
        if spec.input.channel_order == "GRAY" and spec.converted.channel_order != "GRAY":
            raise ConversionError(f"{spec.name}: a gray model cannot take {spec.converted.channel_order} input")
        try:
            model = mxnet_to_onnx(
                self.model.graph,
                {**self.model.params},
                input_shape=spec.input.shape,
                output_node=spec.conversion.output_node,
                output_name=spec.converted.output_name,
                reverse_input_channels=self._needs_channel_swap(),
                opset=spec.conversion.opset,
                input_name=spec.input.name,
            )
        except (FacezooError, ValueError) as exc:
            raise ConversionError(f"{spec.name}: cannot translate the MXNet graph to ONNX: {exc}") from None
        if spec.input.name != spec.converted.input_name:
            from facezoo.converters import onnx_graph

            onnx_graph.rename_io(model, spec.converted.input_name, spec.converted.output_name)
        if spec.input.normalization == "outside":
            _prepend_normalization(model, spec)
        model.producer_name = "facezoo"
        return model


def _prepend_normalization(model, spec: ModelSpec) -> None:
    """(x - mean) * (1/std) in front of the graph, in the converted channel order."""
    from onnx import helper, numpy_helper

    graph = model.graph
    name = spec.converted.input_name
    mean, inv_std = normalization_constants(spec, spec.converted.channel_order)
    centred, scaled = f"{name}__centred", f"{name}__normalized"
    for node in graph.node:
        node.input[:] = [scaled if i == name else i for i in node.input]
    graph.initializer.extend([numpy_helper.from_array(mean, f"{name}__mean"),
                              numpy_helper.from_array(inv_std, f"{name}__inv_std")])
    graph.node.insert(0, helper.make_node("Mul", [centred, f"{name}__inv_std"], [scaled], name=f"{name}/normalize_scale"))
    graph.node.insert(0, helper.make_node("Sub", [name, f"{name}__mean"], [centred], name=f"{name}/normalize_mean"))
