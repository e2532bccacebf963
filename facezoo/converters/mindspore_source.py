"""MindSpore checkpoints as conversion sources: the original network and its exports."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from facezoo.converters import onnx_graph
from facezoo.converters.normalization import normalization_constants
from facezoo.errors import ConversionError
from facezoo.registry import ModelSpec


def _use_graph_mode() -> None:
    # GRAPH mode: the exporters need it, and it is the mode that works with any numpy.
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")


@dataclass
class MindSporeSource:
    """The original network with its checkpoint, fed the upstream preprocessing."""

    spec: ModelSpec
    checkpoint: Path
    network: object = field(init=False, repr=False)
    load_report: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _use_graph_mode()
        from facezoo.checkpoints import load_backbone
        from facezoo.networks import build_network

        self.network = build_network(self.spec.architecture)
        self.load_report = load_backbone(self.network, self.checkpoint, architecture=self.spec.architecture)
        self.network.set_train(False)

    @property
    def source_files(self) -> list[Path]:
        return [self.checkpoint]

    def reference(self, images_bgr: np.ndarray) -> np.ndarray:
        """Embeddings of the original model for uint8 BGR NHWC images."""
        from facezoo.faces import to_model_input

        _use_graph_mode()
        batch = to_model_input(images_bgr, self.spec.input.channel_order)
        mean, inv_std = normalization_constants(self.spec, self.spec.input.channel_order)
        outputs = self.network(ms.Tensor((batch - mean) * inv_std))
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[self.spec.output.index]
        return outputs.asnumpy().astype(np.float32)

    def export_onnx(self, path: Path) -> None:
        """FP32 ONNX with the converted contract: raw BGR/gray in, embedding out, dynamic batch."""
        import onnx

        _use_graph_mode()
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
        _use_graph_mode()
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
        from facezoo.networks import build_network

        copy = build_network(self.spec.architecture)
        weights = {p.name: p.asnumpy() for p in self.network.get_parameters()}
        if self._needs_channel_swap():
            name = self._first_convolution()
            weights[name] = weights[name][:, ::-1].copy()
        ms.load_param_into_net(copy, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()})
        copy.set_train(False)
        return _ConvertedContract(copy, self.spec, precision)

    def _needs_channel_swap(self) -> bool:
        return self.spec.input.channels == 3 and self.spec.input.channel_order != self.spec.converted.channel_order

    def _first_convolution(self) -> str:
        for parameter in self.network.get_parameters():
            if len(parameter.shape) == 4 and parameter.shape[1] == 3:
                return parameter.name
        raise ConversionError(f"{self.spec.name}: no first convolution with 3 input channels to fold the swap into")


class _ConvertedContract(nn.Cell):
    """Raw pixels in the converted channel order → normalized → backbone → embedding."""

    def __init__(self, backbone, spec: ModelSpec, precision: str):
        super().__init__()
        self.backbone = backbone
        mean, inv_std = normalization_constants(spec, spec.converted.channel_order)
        self.mean = ms.Tensor(mean)
        self.inv_std = ms.Tensor(inv_std)
        self.output_index = spec.output.index
        self.fp16 = precision == "FP16"
        if self.fp16:
            backbone.to_float(ms.float16)

    def construct(self, data):
        outputs = self.backbone((data - self.mean) * self.inv_std)
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[self.output_index]
        if self.fp16:
            outputs = ops.cast(outputs, ms.float32)
        return outputs
