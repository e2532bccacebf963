"""Building the MindSpore cell from the generated source, and exporting it as MINDIR."""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnx

from facezoo.converters.mindir.builder import _Builder
from facezoo.errors import ConversionError

_MODULE_LOCK = threading.Lock()
_MODULE_DIR: Path | None = None


def _module_dir() -> Path:
    global _MODULE_DIR
    if _MODULE_DIR is None or not _MODULE_DIR.is_dir():
        _MODULE_DIR = Path(tempfile.mkdtemp(prefix="facezoo-onnx-cells-"))
        atexit.register(shutil.rmtree, _MODULE_DIR, True)
    return _MODULE_DIR


def _load_cell_class(source: str):
    """Write ``source`` to a module file and import it (MindSpore parses the file)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    module_name = f"facezoo_onnx_cell_{digest}"
    with _MODULE_LOCK:
        module = sys.modules.get(module_name)
        if module is None or not Path(module.__file__).is_file():
            path = _module_dir() / f"{module_name}.py"
            path.write_text(source, encoding="utf-8")
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    return module.OnnxCell


def onnx_to_mindspore(model: onnx.ModelProto, *, precision: str = "FP32"):
    """Build a MindSpore ``nn.Cell`` computing ``model`` (see the module docstring).

    The cell has ``source`` (generated code), ``input_signature`` (``[(name, dims)]``, ``None``
    for dynamic dims), ``onnx_output_names`` and ``precision`` attributes and is in inference
    mode. Raises :class:`ConversionError` on the first unsupported operator.
    """
    from facezoo.mindspore_context import mindspore

    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    builder = _Builder(model, precision)
    source, signature, output_names = builder.build()
    ms = mindspore()  # before the generated module imports it
    cls = _load_cell_class(source)
    params = {}
    for p in builder.params:
        arr = p.array.astype(np.float32 if p.keep_fp32 else (np.float16 if builder.fp16 else np.float32))
        params[p.attr] = ms.Parameter(ms.Tensor(np.ascontiguousarray(arr)), name=p.name, requires_grad=False)
    tensors = {k: ms.Tensor(v) for k, v in builder.tensors.items()}
    cell = cls(params, tensors)
    cell.set_train(False)
    cell.source = source
    cell.input_signature = signature
    cell.onnx_output_names = output_names
    cell.precision = precision
    return cell


def export_mindir(cell, path: str | Path) -> Path:
    """Export a cell made by :func:`onnx_to_mindspore` as MINDIR; dynamic dims stay dynamic."""
    from facezoo.mindspore_context import mindspore

    path = Path(path)
    if path.suffix != ".mindir":
        raise ConversionError(f"{path}: a MINDIR file name must end in .mindir")
    ms = mindspore()
    examples = []
    for name, dims in cell.input_signature:
        if any(d is None for d in dims):
            examples.append(ms.Tensor(shape=list(dims), dtype=ms.float32))
        else:
            examples.append(ms.Tensor(np.zeros(dims, np.float32)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ms.export(cell, *examples, file_name=str(path.with_suffix("")), file_format="MINDIR")
    if not path.is_file():
        raise ConversionError(f"MindSpore wrote no {path}")
    return path


