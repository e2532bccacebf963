"""What a benchmark case drives: facezoo's runtime, or the inference library called directly.

The direct runners are the baseline for the runtime's overhead: they use each library's
documented calls with the same settings facezoo passes (device, performance hint, precision
hint, threads), and nothing of facezoo's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Protocol

import cv2

from facezoo.benchmark.results import BenchmarkCase
from facezoo.runtime.backends import default_threads
from facezoo.runtime.errors import BackendError
from facezoo.runtime.devices import pick_device


class Runner(Protocol):
    backend_version: str
    device_name: str
    requests: int
    threads: int
    input_shape: tuple[int, ...]
    channel_order: str

    def once(self, payload) -> None: ...

    def stream(self, payloads: Iterable) -> None: ...

    def close(self) -> None: ...


def open_runner(case: BenchmarkCase) -> Runner:
    if case.runner == "facezoo":
        return FacezooRunner(case)
    # The same availability check as the runtime's: a library asked for a device it lacks may
    # fall back to the CPU on its own (ONNX Runtime does, with a warning), which would mislabel it.
    case = dataclasses.replace(case, device=pick_device(case.backend, case.device))
    if not Path(case.path).is_file():
        raise BackendError(f"{case.path}: no such file")
    if case.preprocessing:
        raise BackendError("preprocessing is timed through facezoo's runtime only, not the direct runners")
    if case.backend == "openvino":
        return DirectOpenVino(case)
    if case.backend == "onnxruntime":
        return DirectOnnxRuntime(case)
    raise BackendError(f"no direct runner for backend {case.backend!r} (direct: openvino, onnxruntime)")


def _openvino_hints(case: BenchmarkCase) -> dict:
    return {"performance_hint": case.mode.upper(), "precision_hint": case.precision_hint, "num_streams": case.requests}


class FacezooRunner:
    """`facezoo.runtime.load(...)`: `infer` per batch, `infer_many` to keep requests in flight."""

    def __init__(self, case: BenchmarkCase):
        from facezoo.runtime import Embedder, load

        hints = _openvino_hints(case) if case.backend == "openvino" else {}
        self.model = load(case.path, device=case.device, backend=case.backend, threads=case.threads, **hints)
        backend = self.model.backend
        self.backend_version = backend.version()
        self.device_name = _device_name(backend)
        self.threads = _threads(backend, case.threads)
        self.requests = backend.optimal_requests if case.mode == "throughput" and hasattr(backend, "optimal_requests") else 1
        self.input_shape = self.model.input_spec.shape
        self.channel_order = self.model.input_spec.channel_order
        # +pre: JPEG decode, then 5-point alignment with the photos' landmarks, as a deployment does
        self.embedder = Embedder(self.model, batch_size=max(case.batch, 1)) if case.preprocessing else None

    def once(self, payload) -> None:
        if self.embedder is not None:
            from facezoo.benchmark.inputs import frame_landmarks

            photos = [cv2.imdecode(blob, cv2.IMREAD_COLOR) for blob in payload]
            self.embedder.embed(photos, frame_landmarks(len(photos)))
        else:
            self.model.infer(payload)

    def stream(self, payloads: Iterable) -> None:
        if self.embedder is not None:
            for payload in payloads:
                self.once(payload)
        else:
            self.model.infer_many(payloads)

    def close(self) -> None:
        self.model.close()


class DirectOpenVino:
    """Core.compile_model + InferRequest.infer / AsyncInferQueue, as OpenVINO's docs show."""

    def __init__(self, case: BenchmarkCase):
        import openvino as ov

        from facezoo.runtime.precision import effective_hint, require_precision

        core = ov.Core()
        hint = effective_hint(case.path, case.precision_hint)  # a BF16 folder's card asks for bf16
        require_precision(case.path, hint, case.device)
        config = {"PERFORMANCE_HINT": case.mode.upper(), "INFERENCE_PRECISION_HINT": hint}
        if case.requests:
            config["NUM_STREAMS"] = case.requests
        if case.threads:
            config["INFERENCE_NUM_THREADS"] = case.threads
        self.compiled = core.compile_model(case.path, case.device, config)
        self.request = self.compiled.create_infer_request()
        optimal = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.requests = optimal if case.mode == "throughput" else 1
        self.queue = ov.AsyncInferQueue(self.compiled, self.requests) if case.mode == "throughput" else None
        self.backend_version = ov.get_version()
        self.device_name = core.get_property(case.device, "FULL_DEVICE_NAME")
        self.threads = _openvino_threads(self.compiled)
        model_input = self.compiled.input(0)
        self.input_shape = tuple(d.get_length() if d.is_static else -1 for d in model_input.get_partial_shape())
        self.channel_order = "GRAY" if self.input_shape[1] == 1 else "BGR"

    def once(self, payload) -> None:
        self.request.infer({0: payload})

    def stream(self, payloads: Iterable) -> None:
        for payload in payloads:
            self.queue.start_async({0: payload})
        self.queue.wait_all()

    def close(self) -> None:
        self.queue = None
        self.request = None
        self.compiled = None


class DirectOnnxRuntime:
    """InferenceSession.run, one batch after another (ONNX Runtime's Python API is synchronous)."""

    def __init__(self, case: BenchmarkCase):
        import onnxruntime as ort

        from facezoo.runtime.devices import ORT_PROVIDER_FOR_DEVICE

        options = ort.SessionOptions()
        if case.threads:
            options.intra_op_num_threads = case.threads
        provider = ORT_PROVIDER_FOR_DEVICE[case.device]
        try:
            self.session = ort.InferenceSession(case.path, options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"{case.path}: onnxruntime cannot load the model on {case.device}: {exc}") from None
        if provider not in self.session.get_providers():
            raise BackendError(f"{case.path}: onnxruntime did not enable {provider} (got {self.session.get_providers()})")
        self.input_name = self.session.get_inputs()[0].name
        self.backend_version = ort.__version__
        self.device_name = provider
        self.threads = case.threads or default_threads()
        self.requests = 1
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in self.session.get_inputs()[0].shape)
        self.channel_order = "GRAY" if self.input_shape[1] == 1 else "BGR"

    def once(self, payload) -> None:
        self.session.run(None, {self.input_name: payload})

    def stream(self, payloads: Iterable) -> None:
        for payload in payloads:
            self.session.run(None, {self.input_name: payload})

    def close(self) -> None:
        self.session = None


def _device_name(backend) -> str:
    if backend.name == "openvino":
        try:
            import openvino as ov

            return str(ov.Core().get_property(backend.device, "FULL_DEVICE_NAME"))
        except RuntimeError:
            return backend.device
    if backend.name == "onnxruntime":
        return backend.session.get_providers()[0]
    return f"MindSpore {backend.device}"


def _threads(backend, asked: int | None) -> int:
    if backend.name == "openvino":
        return _openvino_threads(backend.compiled)
    return asked or default_threads()


def _openvino_threads(compiled) -> int:
    """What the compiled model will use (0 means every core)."""
    return int(compiled.get_property("INFERENCE_NUM_THREADS")) or default_threads()
