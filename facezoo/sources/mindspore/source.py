"""MindSpore checkpoints as conversion sources: the original network and its exports.

MindSpore itself is started (:mod:`facezoo.mindspore_context`) only when a source is
opened; importing this module costs nothing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.converters.normalization import normalization_constants
from facezoo.errors import ConversionError
from facezoo.registry import ModelSpec
from facezoo.sources import register_source
from facezoo.mindspore_context import mindspore


def _files(spec: ModelSpec, folder: Path, override: Path | None) -> list[Path]:
    return [override or folder / spec.conversion.checkpoint]


def _thresholds(spec: ModelSpec) -> dict[str, float]:
    from facezoo.sources.mindspore.networks import architecture

    return dict(architecture(spec.architecture).check_thresholds)


@register_source("mindspore", files=_files, thresholds=_thresholds,
                 standin_writer="facezoo.sources.mindspore.standin:write_standin")
@dataclass
class MindSporeSource:
    """The original network with its checkpoint, fed the upstream preprocessing."""

    spec: ModelSpec
    checkpoint: Path
    network: object = field(init=False, repr=False)
    load_report: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mindspore()
        from facezoo.sources.mindspore.checkpoints import load_backbone
        from facezoo.sources.mindspore.networks import build_network

        self.network = build_network(self.spec.architecture)
        self.load_report = load_backbone(self.network, self.checkpoint, architecture=self.spec.architecture)
        self.network.set_train(False)

    @property
    def source_files(self) -> list[Path]:
        return [self.checkpoint]

    def reference(self, images_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The original model's embeddings for uint8 BGR NHWC images, under the converted
        contract's output name."""
        from facezoo.preprocessing import to_model_input

        ms = mindspore()
        batch = to_model_input(images_bgr, self.spec.input.channel_order)
        mean, inv_std = normalization_constants(self.spec, self.spec.input.channel_order)
        outputs = self.network(ms.Tensor((batch - mean) * inv_std))
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[self.spec.output.index]
        return {self.spec.converted.output_name: outputs.asnumpy().astype(np.float32)}

    def export_onnx(self, path: Path) -> None:
        """FP32 ONNX with the converted contract: raw BGR/gray in, embedding out, dynamic batch."""
        import onnx

        from facezoo.converters import onnx_graph

        ms = mindspore()
        cell = self._converted_cell(precision="FP32")
        with tempfile.TemporaryDirectory() as scratch:
            example = ms.Tensor(np.zeros(self._input_shape(1), np.float32))
            stem = Path(scratch) / "export"
            ms.export(cell, example, file_name=str(stem), file_format="ONNX")
            model = onnx.load(str(stem.with_suffix(".onnx")))
        onnx_graph.rename_io(model, self.spec.converted.input_name, self.spec.converted.output_name)
        onnx_graph.make_batch_dynamic(model)
        model = onnx_graph.set_opset(model, self.spec.conversion.opset)
        model.producer_name = "facezoo"
        onnx_graph.check_and_save(model, path)

    def export_mindir(self, path: Path, precision: str) -> None:
        ms = mindspore()
        cell = self._converted_cell(precision=precision)
        example = ms.Tensor(shape=[None, *self._input_shape(1)[1:]], dtype=ms.float32)
        ms.export(cell, example, file_name=str(path.with_suffix("")), file_format="MINDIR")
        if not path.exists():
            raise ConversionError(f"{self.spec.name}: MindSpore wrote no {path.name}")

    def _input_shape(self, batch: int) -> tuple[int, int, int, int]:
        _, channels, height, width = self.spec.input.shape
        return batch, channels, height, width

    def _converted_cell(self, precision: str):
        """A copy of the network taking raw converted-order pixels, the swap folded into conv 1."""
        from facezoo.sources.mindspore.converted import ConvertedContract
        from facezoo.sources.mindspore.networks import build_network

        ms = mindspore()
        copy = build_network(self.spec.architecture)
        weights = {p.name: p.asnumpy() for p in self.network.get_parameters()}
        if self._needs_channel_swap():
            name = self._first_convolution()
            weights[name] = weights[name][:, ::-1].copy()
        ms.load_param_into_net(copy, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()})
        copy.set_train(False)
        return ConvertedContract(copy, self.spec, precision)

    def _needs_channel_swap(self) -> bool:
        return self.spec.input.channels == 3 and self.spec.input.channel_order != self.spec.converted.channel_order

    def _first_convolution(self) -> str:
        for parameter in self.network.get_parameters():
            if len(parameter.shape) == 4 and parameter.shape[1] == 3:
                return parameter.name
        raise ConversionError(f"{self.spec.name}: no first convolution with 3 input channels to fold the swap into")
