"""Thin adapters that run one converted file through one inference library.

Each adapter takes a float32 NCHW batch and returns every output of the model by name
(``{name: array}``); the task's wrapper picks what it needs. They never fall back to another
device on their own: `device` is what the caller asked for (AUTO is resolved by
facezoo.runtime.devices before an adapter is built).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from facezoo.formats import DEFAULT_BACKEND_FOR_SUFFIX, SUFFIXES_FOR_BACKEND
from facezoo.modelcard import card_beside
from facezoo.runtime.devices import ORT_PROVIDER_FOR_DEVICE, pick_device
from facezoo.runtime.errors import BackendError
from facezoo.runtime.precision import effective_hint, require_precision
from facezoo.tasks import Outputs


class Backend(Protocol):
    name: str
    device: str
    output_names: tuple[str, ...]

    def infer(self, batch: np.ndarray) -> Outputs: ...

    def infer_many(self, batches: Iterable[np.ndarray]) -> list[Outputs]: ...

    def version(self) -> str: ...

    def close(self) -> None: ...

    @property
    def optimal_requests(self) -> int: ...

    def new_request(self) -> "InferRequest": ...


class InferRequest(Protocol):
    """One lane of inference a caller's thread may drive on its own, beside other lanes."""

    def infer(self, batch: np.ndarray) -> Outputs: ...


@dataclass
class BackendOptions:
    """Tuning knobs; each backend uses the ones it understands."""

    threads: int | None = None
    num_streams: int | None = None  # OpenVINO streams / parallel requests
    precision_hint: str | None = None  # OpenVINO INFERENCE_PRECISION_HINT: f32, f16, bf16
    performance_hint: str | None = None  # OpenVINO: LATENCY or THROUGHPUT
    ort_cuda: dict = field(default_factory=dict)  # ONNX Runtime CUDA provider options
    # The output names the caller expects (default: the model card's): a MINDIR keeps none, and an
    # OpenVINO output may carry several (an FP16 ONNX's Cast adds its own)
    output_names: tuple[str, ...] | None = None


class _Sequential:
    """infer_many for libraries without an asynchronous queue: one batch after another."""

    optimal_requests = 1  # one call at a time already uses every core

    def infer_many(self, batches: Iterable[np.ndarray]) -> list[Outputs]:
        return [self.infer(batch) for batch in batches]

    def new_request(self) -> "InferRequest":
        return self


class OnnxRuntimeBackend(_Sequential):
    name = "onnxruntime"

    def __init__(self, path: Path, device: str, options: BackendOptions):
        import onnxruntime as ort

        self.path, self.device = path, device
        session_options = ort.SessionOptions()
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        provider = ORT_PROVIDER_FOR_DEVICE[device]
        providers = [(provider, options.ort_cuda)] if device == "GPU" and options.ort_cuda else [provider]
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"{path}: onnxruntime cannot load the model on {device}: {exc}") from None
        if provider not in self.session.get_providers():
            raise BackendError(f"{path}: onnxruntime did not enable {provider} (got {self.session.get_providers()})")
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._version = ort.__version__

    def infer(self, batch: np.ndarray) -> Outputs:
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: batch})))

    def version(self) -> str:
        return self._version

    def close(self) -> None:
        self.session = None


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, path: Path, device: str, options: BackendOptions):
        import openvino as ov

        self.path, self.device = path, device
        core = ov.Core()
        config: dict = {}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = options.threads
        if options.num_streams:
            config["NUM_STREAMS"] = options.num_streams
        if options.performance_hint:
            config["PERFORMANCE_HINT"] = options.performance_hint
        # CPUs with bf16/fp16 units would otherwise lower FP32 models: precision is explicit. A BF16
        # folder's model card asks for bf16; the caller's hint wins; refused on CPUs without bf16.
        self.precision_hint = effective_hint(path, options.precision_hint)
        require_precision(path, self.precision_hint, device)
        config["INFERENCE_PRECISION_HINT"] = self.precision_hint
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), device, config)
        except RuntimeError as exc:
            raise BackendError(f"{path}: OpenVINO cannot compile the model on {device}: {exc}") from None
        self.request = self.compiled.create_infer_request()
        wanted = options.output_names or _card_output_names(path)
        self.output_names = tuple(_openvino_name(o.get_names(), wanted) for o in self.compiled.outputs)
        self._version = ov.get_version()
        self._pool: list = []

    @property
    def optimal_requests(self) -> int:
        return int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def infer(self, batch: np.ndarray) -> Outputs:
        # Inputs are copied (share_inputs=False): a shared input stays bound to the request after
        # the call, and once the caller frees the array, later infer_many calls crashed (SIGSEGV,
        # OpenVINO 2026.4, THROUGHPUT hint). Outputs are copies too, so results stay valid.
        results = self.request.infer({0: batch})
        return {name: results[index] for index, name in enumerate(self.output_names)}

    def infer_many(self, batches: Iterable[np.ndarray]) -> list[Outputs]:
        """All batches in flight over the device's optimal number of requests, in order.

        Round-robin over plain InferRequests rather than AsyncInferQueue: a Python callback on
        OpenVINO's threads deadlocked the CompiledModel's teardown here (2026.4).
        """
        if not self._pool:
            self._pool = [self.compiled.create_infer_request() for _ in range(self.optimal_requests)]
        results: list[Outputs | None] = []
        pending: dict[int, int] = {}  # request slot → index of the batch it runs
        for index, batch in enumerate(batches):
            slot = index % len(self._pool)
            self._finish(slot, pending, results)
            results.append(None)
            self._pool[slot].start_async({0: batch})
            pending[slot] = index
        for slot in list(pending):
            self._finish(slot, pending, results)
        return results  # type: ignore[return-value]

    def new_request(self) -> "InferRequest":
        """An asynchronous request of its own: lanes in different threads run in parallel streams."""
        return _OpenVinoRequest(self.compiled.create_infer_request(), self.output_names)

    def _finish(self, slot: int, pending: dict[int, int], results: list) -> None:
        if slot in pending:
            request = self._pool[slot]
            request.wait()
            results[pending.pop(slot)] = _copy_outputs(request, self.output_names)

    def version(self) -> str:
        return self._version

    def close(self) -> None:
        self._pool = []
        self.request = None
        self.compiled = None


class _OpenVinoRequest:
    """start_async + wait on a request of its own; the GIL is released while it runs."""

    def __init__(self, request, output_names: tuple[str, ...]):
        self.request = request
        self.output_names = output_names

    def infer(self, batch: np.ndarray) -> Outputs:
        self.request.start_async({0: batch})  # inputs copied, as in OpenVinoBackend.infer
        self.request.wait()
        return _copy_outputs(self.request, self.output_names)


def _copy_outputs(request, names: tuple[str, ...]) -> Outputs:
    return {name: request.get_output_tensor(index).data.copy() for index, name in enumerate(names)}


class MindSporeBackend(_Sequential):
    name = "mindspore"

    def __init__(self, path: Path, device: str, options: BackendOptions):
        from facezoo.mindspore_context import mindspore

        ms = mindspore(device)
        from mindspore import nn

        self.path, self.device = path, device
        if options.threads:
            ms.set_context(runtime_num_threads=options.threads)
        try:
            self.cell = nn.GraphCell(ms.load(str(path)))
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{path}: MindSpore cannot load the MINDIR: {exc}") from None
        self.output_names = tuple(options.output_names or _card_output_names(path))
        self._version = ms.__version__

    def infer(self, batch: np.ndarray) -> Outputs:
        from facezoo.mindspore_context import mindspore

        output = self.cell(mindspore(self.device).Tensor(batch))
        arrays = list(output) if isinstance(output, (tuple, list)) else [output]
        names = list(self.output_names) + [f"output{i}" for i in range(len(self.output_names), len(arrays))]
        return {name: array.asnumpy().astype(np.float32, copy=False) for name, array in zip(names, arrays)}

    def version(self) -> str:
        return self._version

    def close(self) -> None:
        self.cell = None


def _openvino_name(names: set[str], wanted: tuple[str, ...]) -> str:
    """The name of an OpenVINO output, which may carry several (an FP16 ONNX's Cast adds its own):
    the one the model card (or the caller) declares, else the shortest."""
    for name in wanted:
        if name in names:
            return name
    return min(names, key=lambda name: (len(name), name))


def _card_output_names(path: Path) -> tuple[str, ...]:
    """The outputs the model card declares for this file (one net of several: that net's)."""
    card = card_beside(path)
    if card is None:
        return ()
    part = card.part_of(path)
    if part:
        return tuple(card.parts[part]["outputs"])
    return tuple(output.name for output in card.outputs)


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend, "mindspore": MindSporeBackend}


def backend_for(path: Path, backend: str | None) -> str:
    path = Path(path)
    name = backend or DEFAULT_BACKEND_FOR_SUFFIX.get(path.suffix)
    if name is None:
        raise BackendError(f"{path}: no backend runs {path.suffix!r} files; expected {', '.join(DEFAULT_BACKEND_FOR_SUFFIX)}")
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if path.suffix not in SUFFIXES_FOR_BACKEND[name]:
        raise BackendError(f"{path}: {name} runs {' and '.join(SUFFIXES_FOR_BACKEND[name])} files, not {path.suffix!r}")
    return name


def open_backend(
    path: Path, backend: str | None = None, device: str = "CPU", options: BackendOptions | None = None
) -> Backend:
    """Load `path` with `backend` (default: by file type) on `device` (CPU, GPU, Ascend, AUTO)."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path}: no such file")
    name = backend_for(path, backend)
    concrete = pick_device(name, device)
    return BACKENDS[name](path, concrete, options or BackendOptions())


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
