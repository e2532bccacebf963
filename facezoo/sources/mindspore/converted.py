"""The network wrapped in facezoo's converted contract, for export (ONNX, MINDIR)."""

from __future__ import annotations

from facezoo.converters.normalization import normalization_constants
from facezoo.registry import ModelSpec
from facezoo.mindspore_context import mindspore

mindspore()
import mindspore as ms  # noqa: E402  (started above)
from mindspore import nn, ops  # noqa: E402


class ConvertedContract(nn.Cell):
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
