"""OpenVINO Model Server: <repo>/<name>/<version>/model.xml + .bin, listed in <repo>/config.json."""

from __future__ import annotations

import json

from facezoo.atomic import write_bytes_atomic
from facezoo.repository.layout import (
    ExportError,
    ExportOptions,
    ExportResult,
    ModelIO,
    publish_folder,
    read_json,
    stage_model_folder,
)
from facezoo.runtime.resolve import Artifact


def model_entry(name: str, io: ModelIO, options: ExportOptions) -> dict:
    """One model_config_list item. base_path is relative to config.json, which OVMS resolves."""
    # -1: the IR's own dynamic batch, served natively (OVMS "dynamic IR/ONNX model"), no reloading
    shape = "(" + ",".join(["-1", *(str(d) for d in io.input_shape[1:])]) + ")"
    return {
        "config": {
            "name": name,
            "base_path": name,
            "shape": {io.input_name: shape},
            "target_device": options.device,
            # as facezoo serve runs it: parallel streams, and f32 kept on CPUs with bf16 units
            "plugin_config": {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"},
        }
    }


def write(artifact: Artifact, io: ModelIO, options: ExportOptions, name: str) -> ExportResult:
    repository = options.repository
    config_path = repository / "config.json"
    document = read_json(config_path) if config_path.exists() else {"model_config_list": []}
    models = document.get("model_config_list")
    if not isinstance(models, list):
        raise ExportError(f"{config_path}: model_config_list: expected a list")
    staging = stage_model_folder(artifact, repository, name, options.version)
    folder = repository / name
    publish_folder(staging, folder)
    kept = [m for m in models if not (isinstance(m, dict) and m.get("config", {}).get("name") == name)]
    document["model_config_list"] = [*kept, model_entry(name, io, options)]
    write_bytes_atomic(config_path, (json.dumps(document, indent=2) + "\n").encode())
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return ExportResult(name, "ovms", folder, files, config_path)
