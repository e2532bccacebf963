"""The ONNX → MindSpore importer: an ONNX model as a MindSpore ``nn.Cell`` (GRAPH mode), and export it as MINDIR.

``onnx_to_mindspore(model)`` generates the Python source of a ``nn.Cell`` subclass whose
``construct`` is the ONNX graph written out as straight-line MindSpore code, one statement per
ONNX node, and instantiates it with the model's weights as ``ms.Parameter``\\ s named after the
ONNX initializers (``cell.source`` holds the generated code). The source lives in a real module
file (in a per-process temporary folder) because MindSpore's GRAPH-mode parser reads a
``construct``'s source and its module's globals.

What the import does with the graph:

* Nodes whose inputs are all constants (initializers, ``Constant`` nodes, or results of such
  nodes) are evaluated at import time with NumPy (``Unsqueeze`` of a PReLU slope, shape
  arithmetic). A constant derived from one initializer through shape-only ops keeps that
  initializer's name as its ``Parameter`` name.
* Every dimension the ONNX shape inference cannot fix (a symbolic batch ``N``) stays dynamic;
  ``Reshape`` targets are resolved symbolically so that ``[0, -1]`` on ``N x 512 x 7 x 7``
  becomes ``(-1, 25088)``; a reshape with two dynamic output dimensions is refused.
* ``precision="FP16"``: the input is cast to float16 after entry, weights are stored as
  float16 Parameters, BatchNorm statistics stay float32 (the affine is computed in float32 and
  then cast), and float outputs are cast back to float32: FP32 in, FP32 out, FP16 compute.
* ``Cast`` to any float type becomes a cast to the compute type, so an ONNX file converted to
  FP16 with FP32 I/O imports too (its weights keep their FP16 rounding).

The first node with an operator outside :data:`SUPPORTED_OPS` (or an unsupported attribute
value) raises :class:`facezoo.errors.ConversionError` naming the operator and the node.

The package: :mod:`.builder` walks the graph, :mod:`.folding` evaluates constants and carries
shapes, :mod:`.ops_math`, :mod:`.ops_shape` and :mod:`.ops_layers` translate the operators
(:mod:`.handlers` is their table), :mod:`.cell` builds the cell and exports it. The cell is
validated and published like every other artifact, by the conversion pipeline.
"""

from facezoo.converters.mindir.cell import export_mindir, onnx_to_mindspore
from facezoo.converters.mindir.handlers import SUPPORTED_OPS

__all__ = ["SUPPORTED_OPS", "export_mindir", "onnx_to_mindspore"]
