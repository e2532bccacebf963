"""`facezoo.runtime.load`: one object for any converted model on any backend and device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from facezoo.runtime.backends import Backend, BackendOptions, backend_for, open_backend
from facezoo.runtime.errors import BackendError, InputError
from facezoo.runtime.resolve import Artifact, artifact_from_path
from facezoo.tasks import Outputs, Task


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (-1 for a dynamic dimension), layout and meaning of one model tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: str = ""
    channel_order: str = ""
    pixel_range: tuple[float, float] | None = None


class FaceModel:
    """A converted model (of any task), loaded on one backend and device.

    ``infer`` gives every output by name, as the model card declares them; ``wrap()`` gives the
    task's own object (face recognition: an Embedder).
    """

    def __init__(self, artifact: Artifact, backend: Backend):
        self.artifact = artifact
        self.backend = backend
        self.input_spec, self.output_specs = _specs(artifact, backend)

    @property
    def path(self) -> Path:
        return self.artifact.path

    @property
    def task(self) -> Task:
        return self.artifact.task

    def wrap(self, **options):
        """The task's wrapper around this model (face recognition: a FaceEmbedder)."""
        return self.task.wrapper(self, **options)

    def infer(self, batch: np.ndarray) -> Outputs:
        """Every output (raw: embeddings are not normalized) by name, for a float32 NCHW batch or
        uint8 images (N×H×W×C)."""
        return self.backend.infer(self.prepare(batch))

    def infer_many(self, batches: Iterable[np.ndarray]) -> list[Outputs]:
        """Many batches with as many requests in flight as the backend supports (throughput)."""
        return self.backend.infer_many(self.prepare(batch) for batch in batches)

    @property
    def optimal_requests(self) -> int:
        """How many requests the backend runs in parallel with profit (OpenVINO streams; else 1)."""
        return self.backend.optimal_requests

    def new_request(self):
        """A lane with `infer(prepared_batch)` for one caller thread; lanes run side by side.

        Batches go in already checked by `prepare`: a server prepares on its own threads.
        """
        return self.backend.new_request()

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """Check a batch against the input contract; uint8 images become float32 NCHW."""
        array = np.asarray(batch)
        _, channels, height, width = self.input_spec.shape
        expected = f"[N, {channels}, {height}, {width}] float32 ({self.input_spec.channel_order}, 0..255)"
        if array.dtype == np.uint8:
            if array.ndim == 3 and channels == 1:
                array = array[..., None]
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4 or array.shape[-1] != channels:
                raise InputError(f"{self.path.name}: uint8 images must be N×H×W×{channels}; got {array.shape}; expected {expected}")
            array = array.transpose(0, 3, 1, 2)
        elif array.dtype not in (np.float32, np.float64, np.float16):
            raise InputError(f"{self.path.name}: input dtype {array.dtype} is not supported; expected {expected}")
        if array.ndim != 4:
            raise InputError(f"{self.path.name}: input has rank {array.ndim} (shape {array.shape}); expected {expected}")
        if array.shape[1] != channels:
            raise InputError(f"{self.path.name}: input has {array.shape[1]} channels (shape {array.shape}); expected {expected}")
        if (height > 0 and array.shape[2] != height) or (width > 0 and array.shape[3] != width):
            raise InputError(f"{self.path.name}: input is {array.shape[2]}×{array.shape[3]} (shape {array.shape}); expected {expected}")
        if array.shape[0] == 0:
            raise InputError(f"{self.path.name}: empty batch; expected {expected}")
        return np.ascontiguousarray(array, dtype=np.float32)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "FaceModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceModel({self.path}, backend={self.backend.name}, device={self.backend.device})"


def load(
    path: str | Path,
    device: str = "CPU",
    backend: str | None = None,
    precision_hint: str | None = None,
    num_streams: int | None = None,
    threads: int | None = None,
    performance_hint: str | None = None,
) -> FaceModel:
    """Load a converted file: .xml → OpenVINO, .onnx → ONNX Runtime (or OpenVINO), .mindir → MindSpore."""
    artifact = artifact_from_path(Path(path))
    options = BackendOptions(
        threads=threads, num_streams=num_streams, precision_hint=precision_hint, performance_hint=performance_hint
    )
    return FaceModel(artifact, open_backend(artifact.path, backend, device, options))


def _specs(artifact: Artifact, backend: Backend) -> tuple[TensorSpec, tuple[TensorSpec, ...]]:
    card = artifact.card
    if card:
        contract = card.input
        outputs = card.outputs
        shape = contract.shape
        part = card.part_of(artifact.path)
        if part:  # one net of several: its own input size and heads
            facts = card.parts[part]
            shape = tuple(int(d) for d in facts["input_shape"])
            shapes = facts.get("output_shapes") or {}
            outputs = tuple(type(o)(o.name, tuple(shapes.get(o.name, o.shape)), o.dtype, o.attributes)
                            for o in outputs if o.name in facts["outputs"])
        return (
            TensorSpec(contract.name, shape, contract.dtype, contract.layout, contract.channel_order,
                       contract.pixel_range),
            tuple(TensorSpec(output.name, output.shape, output.dtype) for output in outputs),
        )
    return _specs_from_file(artifact.path, backend)


def _specs_from_file(path: Path, backend: Backend) -> tuple[TensorSpec, tuple[TensorSpec, ...]]:
    """Without a model card: read names and shapes from the model itself."""
    name = backend_for(path, backend.name)
    if name == "onnxruntime":
        first_in = backend.session.get_inputs()[0]
        dims_in = tuple(d if isinstance(d, int) else -1 for d in first_in.shape)
        outputs = tuple(TensorSpec(o.name, tuple(d if isinstance(d, int) else -1 for d in o.shape))
                        for o in backend.session.get_outputs())
        return _guess_input(first_in.name, dims_in), outputs
    if name == "openvino":
        model_input = backend.compiled.input(0)
        dims_in = tuple(d.get_length() if d.is_static else -1 for d in model_input.get_partial_shape())
        outputs = tuple(TensorSpec(o.get_any_name(), tuple(d.get_length() if d.is_static else -1
                                                           for d in o.get_partial_shape()))
                        for o in backend.compiled.outputs)
        return _guess_input(model_input.get_any_name(), dims_in), outputs
    raise BackendError(f"{path}: a MINDIR file needs the model_card.json written beside it by `facezoo convert`")


def _guess_input(name: str, shape: tuple[int, ...]) -> TensorSpec:
    if len(shape) != 4:
        raise BackendError(f"input {name!r} has shape {shape}; facezoo runs NCHW image models")
    order = "GRAY" if shape[1] == 1 else "BGR"
    return TensorSpec(name, shape, "float32", "NCHW", order, (0.0, 255.0))
