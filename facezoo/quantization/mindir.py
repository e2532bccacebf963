"""MINDIR INT8: why facezoo does not produce one (a stated fact, quoted by the CLI and the card).

Checked against the installed MindSpore 2.10.0 and the package index (2026-12):
- ``mindspore.export(net, *inputs, file_name, file_format, **kwargs)`` takes only enc_key,
  enc_mode, dataset, incremental and custom_func: no quantization mode. The MindSpore 1.x route
  (``mindspore.compression`` quantization-aware training, ``export(..., quant_mode="QUANT")``)
  is gone from 2.x.
- ``mindspore.ops.operations._quant_ops.FakeQuantParam`` survives only as a private annotation op:
  it passes tensors through unchanged, and MindSpore's own CPU runtime has no INT8 kernels for it.
- MindSpore Golden Stick (``mindspore-gs`` 1.4.1, the newest) pins ``mindspore==2.7.1.post1``, so
  pip cannot install it beside 2.10.0 (ResolutionImpossible); its PTQ is written for mindformers
  LLM layers on Ascend, and its SimQAT needs training on GPU.
- Real INT8 MINDIR inference is MindSpore Lite's (converter_lite full quantization into .ms files);
  the only ``mindspore-lite`` wheel on the index is 2.0.0 (2023), not a 2.10 match.
"""

from __future__ import annotations

MINDIR_INT8_SUPPORTED = False
MINDIR_INT8_REASON = (
    "MindSpore 2.10 has no supported post-training INT8 export to MINDIR on CPU: mindspore.export has no "
    "quantization option (1.x's mindspore.compression is gone), MindSpore Golden Stick (mindspore-gs 1.4.1) "
    "requires mindspore 2.7.1 and targets LLMs on Ascend, and INT8 MINDIR inference needs MindSpore Lite's "
    "converter, which has no 2.10 wheel. INT8 is produced as OpenVINO IR and QDQ ONNX only."
)
