"""ONNX face detectors as conversion sources: one or more nets (the entry's ``parts``), each
kept with its raw heads, the original files run by ONNX Runtime as the truth.

Each part's converted graph is the original with facezoo's contract in front (see
:func:`facezoo.sources.onnx.graph.attach_contract`): N×3×H×W float32 BGR 0..255, then the
original's channel order, normalization, layout and, for Caffe-trained nets, the H/W transpose.
H and W stay symbolic where the net runs at any size (the file's own dynamic dims, or
``input.dynamic_size``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.converters.normalization import normalization_constants
from facezoo.errors import ConversionError
from facezoo.registry import ModelSpec, Part
from facezoo.sources.onnx.source import load_onnx

HEIGHT_DIM, WIDTH_DIM = "H", "W"


def detector_files(spec: ModelSpec, folder: Path, override: Path | None) -> list[Path]:
    """Each part's file under the model folder (or under ``override``, a folder laid out the same)."""
    root = Path(override) if override is not None else Path(folder)
    return [root / part.model for part in spec.parts]


@dataclass
class _Net:
    part: Part
    path: Path
    model: object = field(repr=False)
    input_name: str = ""
    dynamic: bool = False  # H and W free in the converted graph
    batch: int | None = None  # the file's fixed batch (None: any)
    session: object = field(default=None, repr=False)
    converted: object = field(default=None, repr=False)


@dataclass
class OnnxDetectorSource:
    """The nets of a detector entry, by part name."""

    spec: ModelSpec
    paths: tuple[Path, ...]
    nets: dict[str, _Net] = field(init=False, repr=False)

    def __init__(self, spec: ModelSpec, *paths: Path):
        from facezoo.sources.onnx import graph as edits

        self.spec = spec
        self.paths = tuple(Path(p) for p in paths)
        if len(self.paths) != len(spec.parts):
            raise ConversionError(f"{spec.name}: {len(spec.parts)} parts but {len(self.paths)} files")
        self.nets = {}
        for part, path in zip(spec.parts, self.paths):
            model = load_onnx(path)
            inputs = [v.name for v in edits.runtime_inputs(model.graph)]
            name = part.input or (inputs[0] if len(inputs) == 1 else None)
            if name not in inputs:
                raise ConversionError(f"{spec.name}: {path.name}: name the graph input of part {part.name!r} "
                                      f"with parts[].input; the graph has {inputs}")
            outputs = [v.name for v in model.graph.output]
            missing = [o for o in part.outputs if o not in outputs]
            if missing:
                raise ConversionError(f"{spec.name}: {path.name}: parts[{part.name}].outputs: {missing[0]!r} is not "
                                      f"a graph output; the graph has {outputs}")
            value = next(v for v in model.graph.input if v.name == name)
            dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
            if len(dims) != 4:
                raise ConversionError(f"{spec.name}: {path.name}: input {name!r} has rank {len(dims)}; expected 4")
            for axis in range(1, 4):
                if dims[axis] is not None and dims[axis] != part.input_shape[axis]:
                    raise ConversionError(f"{spec.name}: parts[{part.name}].input_shape {part.input_shape} does not "
                                          f"match input {name!r} of {path.name}, which is {dims}")
            spatial = (1, 2) if spec.input.layout == "NHWC" else (2, 3)
            dynamic = spec.input.dynamic_size or any(dims[a] is None for a in spatial)
            self.nets[part.name] = _Net(part, path, model, name, dynamic, dims[0])

    @property
    def source_files(self) -> list[Path]:
        return list(self.paths)

    def net(self, part: str) -> _Net:
        if not part and len(self.nets) == 1:
            return next(iter(self.nets.values()))
        try:
            return self.nets[part]
        except KeyError:
            raise ConversionError(f"{self.spec.name} has no part {part!r}; parts: {', '.join(self.nets)}") from None

    def size(self, part: str) -> tuple[int, int] | None:
        """The H×W a converted part takes (None: any)."""
        net = self.net(part)
        if net.dynamic:
            return None
        shape = net.part.input_shape
        return (shape[1], shape[2]) if self.spec.input.layout == "NHWC" else (shape[2], shape[3])

    # ------------------------------------------------------------------------------ original --
    def original_input(self, batch: np.ndarray) -> np.ndarray:
        """A converted-contract batch (N×3×H×W BGR 0..255) → what the original nets take."""
        contract = self.spec.input
        batch = np.asarray(batch, np.float32)
        if contract.channel_order == "RGB":
            batch = batch[:, ::-1]
        if contract.normalization == "outside":
            mean, inv_std = normalization_constants(self.spec, contract.channel_order)
            batch = (batch - mean) * inv_std
        if contract.transpose_hw:
            batch = batch.transpose(0, 1, 3, 2)
        if contract.layout == "NHWC":
            batch = batch.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(batch, np.float32)

    def run_part(self, part: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The original net's raw heads for a converted-contract batch (a RunPart); a file that
        fixes its batch runs in chunks of it (the last padded with copies of its first row)."""
        net = self.net(part)
        session = self._session(net)
        feed = self.original_input(batch)
        step = 1 if not net.part.outputs_batched else net.batch or len(feed)
        chunks = []
        for start in range(0, len(feed), step):
            chunk = feed[start : start + step]
            rows = len(chunk)
            if rows < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], step - rows, axis=0)])
            try:
                values = session.run(list(net.part.outputs), {net.input_name: chunk})
            except Exception as exc:
                raise ConversionError(f"{self.spec.name}: ONNX Runtime cannot run {net.path.name}: {exc}") from None
            if not net.part.outputs_batched:  # the rows of one image: that image's batch axis
                values = [np.asarray(value)[None] for value in values]
            for name, value in zip(net.part.outputs, values):
                if np.ndim(value) == 0 or len(value) != len(chunk):
                    raise ConversionError(
                        f"{self.spec.name}: {net.path.name}: output {name!r} has shape {list(np.shape(value))} for "
                        f"a batch of {len(chunk)}: its first axis is not the batch. If the file's outputs hold the "
                        f"rows of one image, set parts[{net.part.name}].outputs_batched: false")
            chunks.append([np.asarray(value, np.float32)[:rows] for value in values])
        return {name: np.concatenate([chunk[k] for chunk in chunks]) for k, name in enumerate(net.part.outputs)}

    def _session(self, net: _Net):
        """ONNX Runtime on the original graph; where the file declares a size the net does not need
        (``input.dynamic_size``), on a copy whose declared H×W are free (its nodes untouched)."""
        if net.session is None:
            import onnxruntime as ort

            model = net.model
            if self.spec.input.dynamic_size:
                model = copy.deepcopy(model)
                _free_input_size(model, net.input_name, self.spec.input.layout)
                _free_spatial_dims(model)
            try:
                net.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ConversionError(f"{self.spec.name}: ONNX Runtime cannot load {net.path.name}: {exc}") from None
        return net.session

    def reference(self, images_bgr: np.ndarray, part: str = "") -> dict[str, np.ndarray]:
        """The original net's heads for uint8 BGR NHWC images."""
        from facezoo.preprocessing import to_model_input

        return self.run_part(part, to_model_input(images_bgr, "BGR"))

    # ------------------------------------------------------------------------------- exports --
    def converted_model(self, part: str = ""):
        net = self.net(part)
        if net.converted is None:
            net.converted = self._build_converted(net)
        return net.converted

    def export_onnx(self, path: Path, part: str = "") -> None:
        from facezoo.converters import onnx_graph

        onnx_graph.check_and_save(self.converted_model(part), Path(path))

    def export_mindir(self, path: Path, precision: str, part: str = "") -> None:
        from facezoo.converters.mindir import export_mindir, onnx_to_mindspore

        cell = onnx_to_mindspore(self.converted_model(part), precision=precision)
        export_mindir(cell, Path(path))

    def _build_converted(self, net: _Net):
        from facezoo.sources.onnx import graph as edits

        spec = self.spec
        model = copy.deepcopy(net.model)
        edits.drop_initializer_inputs(model)
        edits.keep_outputs(model, list(net.part.outputs))
        pinned = net.batch or (None if net.part.outputs_batched else 1)
        if pinned:  # a batch baked into Reshape targets becomes "the input's batch"
            edits.pin_batch(model, net.input_name, pinned)
            edits.fold_shape_computations(model)
            edits.rebatch_reshapes(model, pinned)
        if not net.part.outputs_batched:
            try:
                edits.add_output_batch_axis(model, list(net.part.outputs), pinned)
            except ConversionError as exc:
                raise ConversionError(f"{spec.name}: {net.path.name}: parts[{net.part.name}].outputs_batched is "
                                      f"false: {exc}") from None
        mean = inv_std = None
        if spec.input.normalization == "outside":
            mean, inv_std = normalization_constants(spec, spec.input.channel_order)
            mean = None if np.all(mean == 0) else mean
            inv_std = None if np.all(inv_std == 1) else inv_std
        size = self.size(net.part.name)
        height, width = size if size is not None else (HEIGHT_DIM, WIDTH_DIM)
        edits.attach_contract(
            model, original_input=net.input_name, input_name=spec.converted.input_name, output_name=None,
            channels=3, height=height, width=width, layout=spec.input.layout,
            swap_channels=spec.input.channel_order != spec.converted.channel_order, mean=mean, inv_std=inv_std,
            transpose_hw=spec.input.transpose_hw)
        edits.cancel_transposes(model)
        edits.make_batch_dynamic(model)
        if size is None:
            _free_spatial_dims(model)
        model.producer_name = "facezoo"
        return model


def _free_input_size(model, name: str, layout: str) -> None:
    value = next(v for v in model.graph.input if v.name == name)
    dims = value.type.tensor_type.shape.dim
    for index, label in zip((1, 2) if layout == "NHWC" else (2, 3), (HEIGHT_DIM, WIDTH_DIM)):
        dims[index].ClearField("dim_value")
        dims[index].dim_param = label
    del model.graph.value_info[:]


def _free_spatial_dims(model) -> None:
    """Outputs of a net that runs at any size: batch and channels declared, the rest follows H×W."""
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        for index in range(1, len(dims) - 1):  # the batch and the channels stay
            if dims[index].HasField("dim_value"):
                dims[index].ClearField("dim_value")
                dims[index].dim_param = f"{value.name}_{index}"


__all__ = ["OnnxDetectorSource", "detector_files"]
