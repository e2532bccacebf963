"""ONNX face models as conversion sources: the original file, run by ONNX Runtime, is the truth.

The original is fed its own preprocessing (the registry's channel order, mean/std, layout, at
its own batch size when the file fixes one); the converted graph is the same graph with
facezoo's contract in front (see :mod:`facezoo.sources.onnx.graph`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.converters.normalization import normalization_constants
from facezoo.errors import ConversionError
from facezoo.registry import ModelSpec


def load_onnx(path: Path):
    """The ONNX file, checked, with a clear error naming it."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...
        raise ConversionError(f"{path}: not a valid ONNX model: {exc}") from None
    return model


def onnx_file(spec: ModelSpec, folder: Path, override: Path | None) -> list[Path]:
    return [override or folder / spec.conversion.model]


@dataclass
class OnnxSource:
    """An ONNX file with its registry entry."""

    spec: ModelSpec
    model_path: Path
    model: object = field(init=False, repr=False)
    input_name: str = field(init=False)
    output_name: str = field(init=False)
    batch: int | None = field(init=False)  # the file's fixed batch; None: dynamic
    _session: object = field(init=False, repr=False, default=None)
    _converted: object = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        from facezoo.sources.onnx import graph as edits

        self.model_path = Path(self.model_path)
        self.model = load_onnx(self.model_path)
        graph = self.model.graph
        inputs = edits.runtime_inputs(graph)
        self.input_name = self._pick("input", [v.name for v in inputs], self.spec.conversion.input)
        wanted_output = self.spec.conversion.output
        names = [v.name for v in graph.output]
        if wanted_output is None and self.spec.output.name in names:
            wanted_output = self.spec.output.name
        if wanted_output is None and len(names) > 1 and 0 < self.spec.output.index < len(names):
            wanted_output = names[self.spec.output.index]  # the registry's output.index (LightCNN-style heads)
        self.output_name = self._pick("output", names, wanted_output)
        value = next(v for v in inputs if v.name == self.input_name)
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        self._check_input_shape(dims)
        self.batch = dims[0] if dims[0] else None

    def _pick(self, what: str, names: list[str], wanted: str | None) -> str:
        where = f"{self.spec.name}: {self.model_path.name}"
        if wanted is not None:
            if wanted not in names:
                raise ConversionError(f"{where}: conversion.{what} {wanted!r} is not a graph {what}; the graph has {names}")
            return wanted
        if len(names) != 1:
            raise ConversionError(f"{where}: the graph has {len(names)} {what}s {names}; name one with conversion.{what}")
        return names[0]

    def _check_input_shape(self, dims: list[int | None]) -> None:
        contract = self.spec.input
        if len(dims) != 4:
            raise ConversionError(
                f"{self.spec.name}: input {self.input_name!r} of {self.model_path.name} has rank {len(dims)}; "
                "facezoo converts models that take one 4-D image batch"
            )
        declared = list(contract.shape)
        for axis in range(1, 4):
            if dims[axis] is not None and dims[axis] != declared[axis]:
                raise ConversionError(
                    f"{self.spec.name}: input.shape {declared} ({contract.layout}) does not match input "
                    f"{self.input_name!r} of {self.model_path.name}, which is {dims}; fix input.shape or input.layout"
                )

    @property
    def source_files(self) -> list[Path]:
        return [self.model_path]

    # ------------------------------------------------------------------------------ original --
    def original_input(self, images_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR NHWC images → what the original graph's input takes, in its layout."""
        from facezoo.preprocessing import to_model_input

        batch = to_model_input(images_bgr, self.spec.input.channel_order)
        if self.spec.input.normalization == "outside":
            mean, inv_std = normalization_constants(self.spec, self.spec.input.channel_order)
            batch = (batch - mean) * inv_std
        if self.spec.input.layout == "NHWC":
            batch = batch.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(batch, np.float32)

    def run_original(self, batch: np.ndarray) -> np.ndarray:
        """The embedding output of the original file, in chunks of its fixed batch if it has one."""
        session = self._original_session()
        value = next(v for v in session.get_inputs() if v.name == self.input_name)
        dtype = np.float16 if "float16" in value.type else np.float32
        step = self.batch or len(batch)
        outputs = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            rows = len(chunk)
            if rows < step:  # pad a fixed-batch file's last chunk with copies of its first image
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], step - rows, axis=0)])
            try:
                (out,) = session.run([self.output_name], {self.input_name: chunk.astype(dtype)})
            except Exception as exc:  # onnxruntime's own error types
                raise ConversionError(f"{self.spec.name}: ONNX Runtime cannot run {self.model_path.name}: {exc}") from None
            outputs.append(np.asarray(out, np.float32).reshape(step, -1)[:rows])
        return np.concatenate(outputs)

    def reference(self, images_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The original file's output for uint8 BGR images, as (N, dim) float32, under the
        converted contract's output name."""
        embeddings = self.run_original(self.original_input(images_bgr))
        if embeddings.shape[1] != self.spec.output.dim:
            raise ConversionError(
                f"{self.spec.name}: output {self.output_name!r} of {self.model_path.name} has {embeddings.shape[1]} "
                f"values per image; the registry says output.dim {self.spec.output.dim}"
            )
        return {self.spec.converted.output_name: embeddings}

    def _original_session(self):
        if self._session is None:
            import onnxruntime as ort

            try:
                self._session = ort.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ConversionError(f"{self.spec.name}: ONNX Runtime cannot load {self.model_path.name}: {exc}") from None
        return self._session

    # ------------------------------------------------------------------------------- exports --
    def converted_model(self):
        """The FP32 ONNX with the converted contract (built once)."""
        if self._converted is None:
            self._converted = self._build_converted()
        return self._converted

    def export_onnx(self, path: Path) -> None:
        from facezoo.converters import onnx_graph

        onnx_graph.check_and_save(self.converted_model(), Path(path))

    def export_mindir(self, path: Path, precision: str) -> None:
        from facezoo.converters.mindir import export_mindir, onnx_to_mindspore

        cell = onnx_to_mindspore(self.converted_model(), precision=precision)
        export_mindir(cell, Path(path))

    def _build_converted(self):
        from facezoo.sources.onnx import graph as edits

        spec = self.spec
        model = copy.deepcopy(self.model)
        edits.drop_initializer_inputs(model)
        edits.keep_output(model, self.output_name)
        batch = self.batch or 1
        edits.pin_batch(model, self.input_name, batch)
        edits.fold_shape_computations(model)
        edits.rebatch_reshapes(model, batch)
        edits.flatten_output(model, spec.output.dim)
        swap = spec.input.channels == 3 and spec.input.channel_order != spec.converted.channel_order
        if spec.input.channel_order == "GRAY" and spec.converted.channel_order != "GRAY":
            raise ConversionError(f"{spec.name}: a gray model cannot take {spec.converted.channel_order} input")
        mean = inv_std = None
        if spec.input.normalization == "outside":
            mean, inv_std = normalization_constants(spec, spec.input.channel_order)
            if np.all(mean == 0):
                mean = None
            if np.all(inv_std == 1):
                inv_std = None
        edits.attach_contract(
            model,
            original_input=self.input_name,
            input_name=spec.converted.input_name,
            output_name=spec.converted.output_name,
            channels=spec.input.channels,
            height=spec.input.height,
            width=spec.input.width,
            layout=spec.input.layout,
            swap_channels=swap,
            mean=mean,
            inv_std=inv_std,
        )
        edits.cancel_transposes(model)
        edits.make_batch_dynamic(model)
        model.producer_name = "facezoo"
        return model
