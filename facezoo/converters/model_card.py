"""model_card.json: what a converted folder holds, how it was made, and how well it matches."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from facezoo.registry import ModelSpec

TOOLS = ("facezoo", "mindspore", "onnx", "onnxruntime", "openvino", "numpy")
CARD_NAME = "model_card.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def write_model_card(folder: Path, spec: ModelSpec, precision: str, sources: list[Path], checks: list) -> Path:
    _, channels, height, width = spec.input.shape
    card = {
        "model": spec.name,
        "architecture": spec.architecture,
        "precision": precision,
        "files": {
            path.name: {"sha256": file_sha256(path), "bytes": path.stat().st_size}
            for path in sorted(folder.iterdir())
            if path.is_file() and path.name != CARD_NAME
        },
        "input": {
            "name": spec.converted.input_name,
            "shape": [-1, channels, height, width],
            "layout": "NCHW",
            "dtype": "float32",
            "channel_order": spec.converted.channel_order,
            "pixel_range": spec.converted.pixel_range,
            "preprocessing_inside": "channel swap and normalization "
            f"(x - {spec.input.mean}) / {spec.input.std} are part of the model",
        },
        "output": {"name": spec.converted.output_name, "shape": [-1, spec.output.dim], "l2_normalized": spec.output.l2_normalized},
        "source": {
            "framework": spec.framework,
            "files": {path.name: file_sha256(path) for path in sources},
            "original_input": {
                "channel_order": spec.input.channel_order,
                "mean": spec.input.mean,
                "std": spec.input.std,
            },
        },
        "tools": tool_versions(),
        "validation": [check.as_dict() for check in checks],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = folder / CARD_NAME
    partial = folder / f".{CARD_NAME}.part-{os.getpid()}"
    partial.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
