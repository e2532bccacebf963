"""A converted model as the server holds it: loaded once, one batcher, its protocol metadata."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facezoo.errors import FacezooError, RegistryError
from facezoo.registry import Zoo
from facezoo.runtime import FaceModel, load, resolve_artifact
from facezoo.runtime.backends import backend_for
from facezoo.formats import FORMAT_FOR_SUFFIX
from facezoo.runtime.resolve import Artifact
from facezoo.serving.batcher import BatchingOptions, DynamicBatcher
from facezoo.serving.errors import Unavailable
from facezoo.serving.kserve import DATATYPE_FOR_NUMPY, TensorSpecV2

#: The H and W a net that takes any size is first run at (a multiple of YuNet's 32).
WARM_UP_SIZE = 32
#: KServe `platform` of each converted format, in Triton's spelling.
PLATFORM_FOR_FORMAT = {"openvino": "openvino_xml", "onnx": "onnxruntime_onnx", "mindir": "mindspore_mindir"}


@dataclass
class ModelChoice:
    """What `facezoo serve` was asked to load for one MODEL_OR_FILE argument."""

    model: str
    converted_dir: Path = Path("converted")
    format: str | None = None
    precision: str | None = None
    device: str = "CPU"
    backend: str | None = None


class ServedModel:
    """One model behind the endpoints: the loaded file, its batcher, its task's wrapper and its
    verification threshold."""

    def __init__(self, name: str, model: FaceModel, batching: BatchingOptions, threshold: float | None = None,
                 threshold_source: str | None = None, on_batch=None):
        self.name = name
        self.model = model
        # the task's checks and alignment, not its inference (a detector's net: the detector's own)
        self.wrapper = model.wrap() if not self.part else None
        self.threshold = threshold
        self.threshold_source = threshold_source  # "server" (--threshold) or "registry"
        spec_in = model.input_spec
        # float32 NCHW, BGR (or gray) 0..255, as the model card says; -1 for the batch
        self.input = TensorSpecV2(spec_in.name, "FP32", (-1, *spec_in.shape[1:]))
        # every output the task declares, as the model card records them
        self.outputs = [TensorSpecV2(o.name, DATATYPE_FOR_NUMPY[np.dtype(o.dtype).newbyteorder("<")], (-1, *o.shape[1:]))
                        for o in model.output_specs]
        self.detector = None  # a ServedDetector: photos in /embed and /verify are detected first
        lanes = [model.new_request() for _ in range(max(1, model.optimal_requests))]
        warm = tuple(d if d > 0 else WARM_UP_SIZE for d in spec_in.shape[1:])  # any H×W: a small one
        for lane in lanes:  # the first inference of each request is slow (allocation, kernels)
            lane.infer(np.zeros((1, *warm), np.float32))
        self.batcher = DynamicBatcher(lanes, batching, name=name,
                                      on_batch=(lambda size, seconds: on_batch(name, size, seconds)) if on_batch else None)

    @property
    def artifact(self) -> Artifact:
        return self.model.artifact

    @property
    def platform(self) -> str:
        return PLATFORM_FOR_FORMAT[self.artifact.format]

    @property
    def task(self):
        return self.model.task

    @property
    def routes(self) -> tuple[str, ...]:
        """The task's own routes this model answers on (/v1/models/NAME/<route>); a net of a
        detector answers KServe only (the detector answers its routes)."""
        return self.model.task.serving_routes if not self.part else ()

    @property
    def part(self) -> str:
        card = self.artifact.card
        return card.part_of(self.artifact.path) if card is not None and card.parts else ""

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": self.platform,
            "inputs": [self.input.as_json()],
            "outputs": [output.as_json() for output in self.outputs],
        }

    async def infer(self, batch: np.ndarray, timeout_s: float) -> dict[str, np.ndarray]:
        """The model's rows (every output, by name) for a prepared float32 NCHW batch, batched with
        concurrent callers."""
        future = asyncio.wrap_future(self.batcher.submit(batch))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise Unavailable(f"model {self.name!r}: no result within {timeout_s:g} s (--timeout-s); "
                              "the server is busy, retry later") from None

    def close(self) -> None:
        self.batcher.close()
        self.model.close()


def open_model(choice: ModelChoice, zoo: Zoo | None, batching: BatchingOptions, threshold: float | None,
               on_batch=None) -> ServedModel:
    """Resolve a zoo name or a file, load it for serving and name it (registry name or file stem)."""
    artifact = resolve_artifact(choice.model, choice.converted_dir, choice.format, choice.precision)
    is_file = Path(choice.model).suffix in FORMAT_FOR_SUFFIX
    spec = _registry_entry(zoo, artifact.model if is_file else choice.model)
    name = Path(choice.model).stem if is_file else (spec.name if spec else choice.model)
    source = "server" if threshold is not None else None
    if threshold is None and spec is not None and spec.verification_threshold is not None:
        threshold, source = spec.verification_threshold, "registry"
    # Several streams, one per lane, so that batches of different requests run side by side.
    hint = "THROUGHPUT" if backend_for(artifact.path, choice.backend) == "openvino" else None
    model = load(artifact.path, device=choice.device, backend=choice.backend, performance_hint=hint)
    try:
        return ServedModel(name, model, batching, threshold, source, on_batch)
    except FacezooError:
        model.close()
        raise


def _registry_entry(zoo: Zoo | None, name: str):
    if zoo is None:
        return None
    try:
        return zoo.get(name)
    except RegistryError:
        return None
