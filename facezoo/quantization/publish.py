"""INT8 and BF16 folders beside an existing conversion, each gated and published whole.

`facezoo convert --precisions …,INT8,BF16` builds these folders in the conversion itself; for a
model already converted to FP32, :func:`quantize_converted` adds them. It reads the original model, as
`facezoo check` does, judges every candidate on held-out faces (`facezoo check`'s faces, never
calibration or tuning faces), writes a model card derived from the FP32 folder's, and moves a
folder into place only when everything in it passed. A folder that misses is not published.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.quantization.build import GATE_FACES, build_bf16, build_int8, held_out_faces
from facezoo.quantization.calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_TUNING_SIZE
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.folders import INT8_FORMATS
from facezoo.quantization.ladder import LadderOptions
from facezoo.quantization.precisions import BF16, INT8
from facezoo.registry import ModelSpec


@dataclass
class QuantizedFolders:
    """What quantize_converted did for one model (JSON-able through record())."""

    model: str
    int8: dict = field(default_factory=dict)
    bf16: dict = field(default_factory=dict)
    published: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"model": self.model, "int8": self.int8, "bf16": self.bf16, "published": self.published}


def quantize_converted(
    spec: ModelSpec,
    download_dir: Path,
    converted_dir: Path,
    precisions: tuple[str, ...] = (INT8, BF16),
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    calibration_images: Path | None = None,
    formats: tuple[str, ...] = INT8_FORMATS,
    options: LadderOptions | None = None,
    step: Callable[[str], None] = lambda _: None,
    tuning_size: int = DEFAULT_TUNING_SIZE,
    gate_faces: int = GATE_FACES,
) -> QuantizedFolders:
    """INT8 and BF16 folders beside an existing converted FP32 folder, each published whole."""
    from facezoo.converters.pipeline import ConversionRequest, open_source, publish_precisions

    name = spec.name
    fp32 = Path(converted_dir) / name / "FP32"
    if not (fp32 / "model_card.json").is_file():
        raise QuantizationError(f"{fp32}: no converted FP32 folder; run `facezoo convert {name}` first")
    step("loading the original model")
    source = open_source(ConversionRequest(spec, Path(download_dir), Path(converted_dir), [], []))
    held = held_out_faces(spec, source.reference, gate_faces)
    done = QuantizedFolders(name)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.quantize.", dir=Path(converted_dir) / name))
    try:
        ready = []
        if INT8 in precisions:
            built = build_int8(spec, source.reference, held, fp32, scratch / INT8, calibration_size=calibration_size,
                               calibration_images=calibration_images, formats=formats, options=options,
                               tuning_size=tuning_size, step=step)
            done.int8 = built.card["quantization"]
            if built.passed:
                _write_card(fp32, scratch / INT8, INT8, built.card)
                ready.append(INT8)
        if BF16 in precisions:
            (scratch / BF16).mkdir(parents=True, exist_ok=True)
            built = build_bf16(spec, held, fp32, scratch / BF16,
                               lambda folder, fields: _write_card(fp32, folder, BF16, fields), step)
            done.bf16 = {"passed": built.passed, "reason": built.reason, **built.card}
            if built.passed:
                _write_card(fp32, scratch / BF16, BF16, built.card)
                ready.append(BF16)
        if ready:
            publish_precisions(scratch, Path(converted_dir) / name, ready)
            done.published = ready
        return done
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_card(fp32: Path, folder: Path, precision: str, extra: dict) -> Path:
    """The FP32 folder's card with this folder's precision, files and results."""
    from facezoo.atomic import write_bytes_atomic
    from facezoo.converters.model_card import CARD_NAME, file_sha256

    card = json.loads((fp32 / CARD_NAME).read_text(encoding="utf-8"))
    card["precision"] = precision
    card["files"] = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                     for p in sorted(folder.iterdir()) if p.is_file() and p.name != CARD_NAME and not p.name.startswith(".")}
    card["validation"] = []
    card["derived_from"] = str(fp32)
    card.update(extra)
    return write_bytes_atomic(folder / CARD_NAME, (json.dumps(card, indent=2, default=_json_default) + "\n").encode())


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
