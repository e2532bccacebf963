"""A registry entry for an ONNX file that has none (`facezoo convert --onnx FILE`).

Without an entry nobody has said what the file's input means, so the entry takes the file at its
word: the input is an image batch in the converted contract already (BGR 0..255, or gray),
nothing to swap or normalize. The entry is written into every model card, so `facezoo check`,
`infer` and `benchmark` can run the result like any other conversion. A user who knows better
writes a registry entry (README: "Bring your own model").
"""

from __future__ import annotations

import re
from pathlib import Path

from facezoo.errors import ConversionError
from facezoo.registry import (
    Conversion,
    ConvertedContract,
    InputContract,
    ModelFile,
    ModelSpec,
    OutputContract,
)
from facezoo.tasks import DEFAULT_TASK

ASSUMPTION = (
    "no registry entry: the file is assumed to take BGR (or gray) pixels 0..255 as they are; "
    "write a registry entry to declare its channel order, normalization and layout"
)


def model_name_for(path: Path) -> str:
    """The file's stem, made a valid registry name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-._") or "model"
    return name if name[0].isalnum() else f"m{name}"


def spec_for_file(path: Path, name: str | None = None) -> ModelSpec:
    """The entry `convert --onnx FILE` converts with, read off the file's own input and output."""
    from facezoo.downloader.verify import sha256_file
    from facezoo.sources.onnx.graph import runtime_inputs
    from facezoo.sources.onnx.source import load_onnx

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such ONNX file")
    model = load_onnx(path)
    inputs = runtime_inputs(model.graph)
    if len(inputs) != 1:
        raise ConversionError(
            f"{path}: the graph has {len(inputs)} inputs {[v.name for v in inputs]}; give it a registry entry "
            "that names one (conversion.input)"
        )
    (value,) = inputs
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ConversionError(f"{path}: input {value.name!r} has rank {len(dims)}; facezoo converts 4-D image models")
    if dims[1] in (1, 3) and not (dims[3] in (1, 3) and dims[1] > 3):
        layout, channels, height, width = "NCHW", dims[1], dims[2], dims[3]
    elif dims[3] in (1, 3):
        layout, channels, height, width = "NHWC", dims[3], dims[1], dims[2]
    else:
        raise ConversionError(f"{path}: input {value.name!r} of shape {dims} has neither 1 nor 3 channels")
    if not height or not width:
        raise ConversionError(f"{path}: input {value.name!r} has no fixed height and width ({dims})")
    batch = dims[0] or 1
    shape = [batch, channels, height, width] if layout == "NCHW" else [batch, height, width, channels]
    order = "GRAY" if channels == 1 else "BGR"
    outputs = [o.name for o in model.graph.output]
    output_dim = _output_dim(model, outputs[0])
    spec = ModelSpec(
        name=name or model_name_for(path),
        description=f"{path.name}, converted without a registry entry ({ASSUMPTION})",
        task_type=DEFAULT_TASK,
        framework="onnx",
        architecture="onnx",
        license="unknown",
        files=[ModelFile(name=path.name, sha256=sha256_file(path), size=path.stat().st_size)],
        input=InputContract(shape=shape, channel_order=order, layout=layout, name=value.name, normalization="inside"),
        output=OutputContract(dim=output_dim, name=outputs[0]),
        converted=ConvertedContract(channel_order=order),
        conversion=Conversion(model=path.name, input=value.name, output=outputs[0]),
        how_to_obtain=f"a local file: {path.resolve()}",
    )
    problems = spec.validate()
    if problems:
        field, message = problems[0]
        raise ConversionError(f"{path}: cannot describe the file as a face model: {field}: {message}")
    return spec


def _output_dim(model, output: str) -> int:
    """The embedding size, from shape inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        for value in inferred.graph.output:
            if value.name == output:
                dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
                if len(dims) >= 2 and all(dims[1:]):
                    size = 1
                    for d in dims[1:]:
                        size *= d
                    return size
    except Exception:  # the inference raises its own error types; the message below says what to do
        pass
    raise ConversionError(
        f"the size of output {output!r} cannot be read from the graph; give the file a registry entry (output.dim)"
    )
