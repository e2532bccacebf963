"""INT8 for a model of several nets (a detector): each net quantized by NNCF, judged as a whole.

A detector's nets see what the detector feeds them: P-Net a pyramid of a photo's scales, R-Net
and O-Net crops of candidate faces, YuNet whole padded photos. Calibration records exactly those
inputs by running the ORIGINAL detector on calibration photos (never the gate's photos), then
each net is quantized once with NNCF's plain post-training recipe. The whole detector is then
judged by the task's gate on the gate's photos (the same faces, box IoU, landmarks in pixels), as
every artifact is; a precision that misses it is reported with its numbers and not published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from facezoo.quantization.engines import engine_for
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.recipes import Recipe

#: NNCF statistics over at most this many recorded inputs per net.
SUBSET_SIZE = 300


def calibration_photos(count: int = 8) -> list[np.ndarray]:
    """Photos unlike the gate's: the astronaut turned, darkened and shrunk, and generated faces."""
    import cv2

    from facezoo.photos import astronaut, generated_photo

    photo = astronaut()
    centre = (photo.shape[1] / 2, photo.shape[0] / 2)
    variants = [
        cv2.warpAffine(photo, cv2.getRotationMatrix2D(centre, 12, 0.9), photo.shape[1::-1], borderValue=(90, 90, 90)),
        np.clip(photo.astype(np.float32) * 0.6, 0, 255).astype(np.uint8),
        cv2.resize(photo, (300, 300), interpolation=cv2.INTER_AREA),
        cv2.warpAffine(photo, cv2.getRotationMatrix2D(centre, -8, 1.2), photo.shape[1::-1], borderValue=(30, 60, 90)),
    ]
    variants += [generated_photo((320, 400), identity=4200 + k) for k in range(max(0, count - len(variants)))]
    return variants[:count]


def record_inputs(decode: Callable, run_original: Callable, photos: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Every batch the original detector feeds each net on ``photos``, split into single inputs."""
    recorded: dict[str, list[np.ndarray]] = {}

    def run(part: str, batch: np.ndarray):
        recorded.setdefault(part, []).extend(np.ascontiguousarray(batch[i : i + 1], np.float32)
                                             for i in range(len(batch)))
        return run_original(part, batch)

    for photo in photos:
        decode(photo, run)
    return recorded


def quantize_net(fp32: Path, calibration: list[np.ndarray], output: Path, recipe: Recipe = Recipe()) -> Path:
    """One net's FP32 file (IR or ONNX) → its INT8 file, NNCF statistics from ``calibration``."""
    import nncf

    if not calibration:
        raise QuantizationError(f"{fp32.name}: no calibration inputs were recorded (the detector never ran this net)")
    engine = engine_for(fp32)
    model = engine.load(fp32)
    rng = np.random.default_rng(0)
    chosen = [calibration[i] for i in sorted(rng.choice(len(calibration), min(len(calibration), SUBSET_SIZE),
                                                        replace=False))]
    feed = model.graph.input[0].name if engine.format == "onnx" else None
    items = [{feed: x} for x in chosen] if feed else chosen
    try:
        quantized = nncf.quantize(model, nncf.Dataset(items), **recipe.nncf_arguments(len(items)))
    except Exception as exc:  # NNCF's own errors, named with the file
        raise QuantizationError(f"{fp32.name}: NNCF could not quantize it: {exc}") from None
    engine.save(quantized, output)
    return output


__all__ = ["SUBSET_SIZE", "calibration_photos", "quantize_net", "record_inputs"]
