"""Thin adapters that run one converted file through one inference library.

Each adapter takes a float32 NCHW batch and returns the first output as float32; the
public runtime API (facezoo.runtime) builds on these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facezoo.errors import FacezooError

BACKEND_FOR_SUFFIX = {".xml": "openvino", ".onnx": "onnxruntime", ".mindir": "mindspore"}


class BackendError(FacezooError):
    """A backend cannot load or run a file on the requested device."""


class Backend(Protocol):
    name: str
    device: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass
class OnnxRuntimeBackend:
    path: Path
    device: str = "CPU"
    threads: int | None = None
    name: str = "onnxruntime"

    def __post_init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        providers = {"CPU": ["CPUExecutionProvider"], "GPU": ["CUDAExecutionProvider"]}.get(self.device)
        if providers is None:
            raise BackendError(f"{self.path}: onnxruntime backend has no device {self.device!r}")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"{self.path}: onnxruntime cannot load the model: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def close(self) -> None:
        self.session = None


@dataclass
class OpenVinoBackend:
    path: Path
    device: str = "CPU"
    threads: int | None = None
    name: str = "openvino"

    def __post_init__(self) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": self.threads} if self.threads else {}
        # Keep FP32 compute on CPUs with bf16/fp16 units: precision is what the file says.
        config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self.compiled = core.compile_model(core.read_model(str(self.path)), self.device, config)
        except RuntimeError as exc:
            raise BackendError(f"{self.path}: OpenVINO cannot compile the model on {self.device}: {exc}") from None
        self.request = self.compiled.create_infer_request()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.request.infer({0: batch})[0].copy()

    def close(self) -> None:
        self.request = None
        self.compiled = None


@dataclass
class MindSporeBackend:
    path: Path
    device: str = "CPU"
    threads: int | None = None
    name: str = "mindspore"

    def __post_init__(self) -> None:
        import mindspore as ms
        from mindspore import nn

        target = {"CPU": "CPU", "GPU": "GPU", "Ascend": "Ascend"}.get(self.device)
        if target is None:
            raise BackendError(f"{self.path}: mindspore backend has no device {self.device!r}")
        ms.set_context(mode=ms.GRAPH_MODE, device_target=target)
        try:
            self.cell = nn.GraphCell(ms.load(str(self.path)))
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.path}: MindSpore cannot load the MINDIR: {exc}") from None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import mindspore as ms

        output = self.cell(ms.Tensor(batch))
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output.asnumpy().astype(np.float32, copy=False)

    def close(self) -> None:
        self.cell = None


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend, "mindspore": MindSporeBackend}


def open_backend(path: Path, backend: str | None = None, device: str = "CPU", threads: int | None = None) -> Backend:
    path = Path(path)
    name = backend or BACKEND_FOR_SUFFIX.get(path.suffix)
    if name not in BACKENDS:
        raise BackendError(f"{path}: no backend for {path.suffix!r} files; expected one of {', '.join(BACKEND_FOR_SUFFIX)}")
    if name == "openvino" and path.suffix not in (".xml", ".onnx"):
        raise BackendError(f"{path}: OpenVINO runs .xml and .onnx files")
    if name == "onnxruntime" and path.suffix != ".onnx":
        raise BackendError(f"{path}: ONNX Runtime runs .onnx files")
    return BACKENDS[name](path, device, threads)
