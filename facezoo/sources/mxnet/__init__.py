"""Reading, running and converting MXNet models without MXNet (issue #4).

* :mod:`~facezoo.sources.mxnet.params` -- ``.params`` NDArray lists (read hardened, write for tests).
* :mod:`~facezoo.sources.mxnet.symbol` -- ``-symbol.json`` graphs in every historical spelling.
* :mod:`~facezoo.sources.mxnet.executor` -- NumPy reference executor ("the original model").
* :mod:`~facezoo.sources.mxnet.to_onnx` -- translation to ONNX (imported lazily: it needs ``onnx``).
"""

from facezoo.sources.mxnet.params import MXNetFormatError, load_params, save_params, split_arg_aux
from facezoo.sources.mxnet.symbol import Graph, Node, SymbolBuilder, UnsupportedOperatorError, load_symbol, save_symbol

__all__ = [
    "MXNetFormatError",
    "UnsupportedOperatorError",
    "load_params",
    "save_params",
    "split_arg_aux",
    "Graph",
    "Node",
    "SymbolBuilder",
    "load_symbol",
    "save_symbol",
    "MXNetModel",
    "mxnet_to_onnx",
    "convert_mxnet_files",
]


def __getattr__(name):
    if name == "MXNetModel":
        from facezoo.sources.mxnet.executor import MXNetModel

        return MXNetModel
    if name in ("mxnet_to_onnx", "convert_mxnet_files"):
        from facezoo.sources.mxnet import to_onnx

        return getattr(to_onnx, name)
    raise AttributeError(f"module 'facezoo.sources.mxnet' has no attribute {name!r}")
