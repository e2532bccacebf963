"""model_card.json: what a converted folder holds, how it was made, and how well it matches."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from facezoo.registry import ModelSpec, dump_spec

TOOLS = ("facezoo", "mindspore", "onnx", "onnxruntime", "openvino", "nncf", "numpy")
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


def write_model_card(folder: Path, spec: ModelSpec, precision: str, sources: list[Path], checks: list,
                     original: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``folder/model_card.json``.

    ``original`` describes where the original file lives when it is not in a download folder
    (``convert --onnx FILE``): `facezoo check` finds it there. The registry entry the folder was
    made from is recorded whole, so a model without a registry entry can still be checked.
    ``extra`` adds fields: an INT8 folder's quantization record, a BF16 folder's inference hint.
    """
    channels, height, width = spec.input.channels, spec.input.height, spec.input.width
    inside = []
    if spec.input.channels == 3 and spec.input.channel_order != spec.converted.channel_order:
        inside.append(f"{spec.converted.channel_order} → {spec.input.channel_order} channel swap")
    if spec.input.normalization == "outside":
        inside.append(f"normalization (x - {spec.input.mean}) / {spec.input.std}")
    if spec.input.layout != "NCHW":
        inside.append(f"NCHW → {spec.input.layout} transpose")
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
            "preprocessing_inside": (", ".join(inside) + " inside the model") if inside else "none needed",
        },
        "output": {"name": spec.converted.output_name, "shape": [-1, spec.output.dim], "l2_normalized": spec.output.l2_normalized},
        "source": {
            "framework": spec.framework,
            "files": {path.name: file_sha256(path) for path in sources},
            "original_input": {
                "channel_order": spec.input.channel_order,
                "layout": spec.input.layout,
                "normalization": spec.input.normalization,
                "mean": spec.input.mean,
                "std": spec.input.std,
            },
            **({"original": original} if original else {}),
        },
        "entry": dump_spec(spec),
        "tools": tool_versions(),
        "validation": [check.as_dict() for check in checks],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    path = folder / CARD_NAME
    partial = folder / f".{CARD_NAME}.part-{os.getpid()}"
    partial.write_text(json.dumps(card, indent=2, default=_plain) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _plain(value):
    """numpy scalars and paths in records (quantization results) as JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_card(folder: Path) -> dict | None:
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        from facezoo.errors import FacezooError

        raise FacezooError(f"{path}: not a readable model card: {exc}") from None


def converted_entry(converted_dir: Path, model: str) -> tuple[ModelSpec, Path | None] | None:
    """The registry entry a converted folder was made from, and where its original lives when
    that is not a download folder (``convert --onnx FILE``); None if no card records one."""
    from facezoo.registry import spec_from_dict

    folder = Path(converted_dir) / model
    for card_folder in sorted(folder.iterdir()) if folder.is_dir() else []:
        card = read_card(card_folder) if card_folder.is_dir() else None
        if not card or "entry" not in card:
            continue
        spec = spec_from_dict(card["entry"], f"{card_folder / CARD_NAME}: entry")
        original = (card.get("source") or {}).get("original") or {}
        return spec, Path(original["path"]) if original.get("path") else None
    return None
