"""Triton: <repo>/<name>/config.pbtxt and <repo>/<name>/<version>/model.onnx | model.xml + model.bin."""

from __future__ import annotations

from facezoo.atomic import write_bytes_atomic
from facezoo.repository.layout import ExportOptions, ExportResult, ModelIO, publish_folder, stage_model_folder
from facezoo.runtime.resolve import Artifact

BACKEND_FOR_FORMAT = {"onnx": "onnxruntime", "openvino": "openvino"}
#: Triton's data type of each numpy dtype a model card may declare.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}


def config_text(name: str, backend: str, io: ModelIO, options: ExportOptions) -> str:
    """config.pbtxt (ModelConfig in protobuf text format); dims leave out the batch (max_batch_size > 0)."""
    def dims(shape):
        return ", ".join(str(d) for d in shape[1:])

    lines = [
        f'name: "{name}"',
        f'backend: "{backend}"',
        f"max_batch_size: {options.max_batch}",
        "input [",
        "  {",
        f'    name: "{io.input_name}"',
        "    data_type: TYPE_FP32",
        "    format: FORMAT_NCHW",
        f"    dims: [ {dims(io.input_shape)} ]",
        "  }",
        "]",
        "output [",
        ",\n".join("\n".join(["  {", f'    name: "{name}"', f"    data_type: {TRITON_TYPES[dtype]}",
                               f"    dims: [ {dims(shape)} ]", "  }"]) for name, shape, dtype in io.outputs),
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {options.max_batch} ]",
        f"  max_queue_delay_microseconds: {options.max_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {options.instances}",
        "    kind: KIND_CPU",
        "  }",
        "]",
    ]
    if backend == "openvino":  # as facezoo serve runs it: parallel streams
        lines += ["parameters: {", '  key: "PERFORMANCE_HINT"', '  value: { string_value: "THROUGHPUT" }', "}"]
    return "\n".join(lines) + "\n"


def write(artifact: Artifact, io: ModelIO, options: ExportOptions, name: str) -> ExportResult:
    repository = options.repository
    staging = stage_model_folder(artifact, repository, name, options.version)
    config = staging / "config.pbtxt"
    write_bytes_atomic(config, config_text(name, BACKEND_FOR_FORMAT[artifact.format], io, options).encode())
    folder = repository / name
    publish_folder(staging, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return ExportResult(name, "triton", folder, files, folder / "config.pbtxt")
