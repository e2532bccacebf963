"""Which activation quantizers carry an INT8 model's error: the per-layer report.

Two measurements on held-out faces, against the ORIGINAL network's outputs:

- the relative noise ‖q(x) − x‖² / ‖x‖² each activation quantizer adds where it sits (one pass);
- for the noisiest few, the output's min cosine with only that quantizer removed (its layer fed
  float activations), which says whether its noise reaches the embedding or is washed out.

``facezoo check --int8-report`` prints it for converted INT8 files; the ladder records the noise
of its best candidate in the model card, so a folder that was not published still says where
its error came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facezoo.numerics import cosine_rows
from facezoo.quantization.engines import engine_for

REPORT_ROWS = 10  # quantizers listed (noisiest first)
BYPASS_ROWS = 5  # of those, how many are each removed and the model re-run


@dataclass(frozen=True)
class QuantizerError:
    quantizer: str  # the FakeQuantize / QuantizeLinear node
    feeds: str  # the layer(s) its rounding reaches first, "Type name"
    relative_noise: float
    min_cosine_without: float | None = None  # output min cosine with only this quantizer removed

    def record(self) -> dict:
        return {"quantizer": self.quantizer, "feeds": self.feeds, "relative_noise": self.relative_noise,
                "min_cosine_without": self.min_cosine_without}


@dataclass(frozen=True)
class Int8Report:
    file: str
    format: str
    faces: int
    min_cosine: float  # the whole INT8 model's, against the original
    quantizers: int  # activation quantizers in the model
    rows: tuple[QuantizerError, ...]  # the noisiest, noisiest first
    by_type: dict[str, dict]  # consumer op type -> {"quantizers", "noise_share"}

    def record(self) -> dict:
        return {"file": self.file, "format": self.format, "faces": self.faces, "min_cosine": self.min_cosine,
                "activation_quantizers": self.quantizers, "noisiest": [row.record() for row in self.rows],
                "by_consumer_type": self.by_type}


def noise_ranking(engine, model, inputs: np.ndarray, rows: int = REPORT_ROWS,
                  noise: dict[str, float] | None = None) -> tuple[list[QuantizerError], dict]:
    """The ``rows`` noisiest activation quantizers of ``model`` on ``inputs``, and the noise by
    consumer type (each type's share of the summed relative noise). ``noise``: the model's
    ``engine.noise`` on ``inputs`` where the caller has it already."""
    noise = engine.noise(model, inputs) if noise is None else noise
    feeds = engine.feeds(model)
    ranked = sorted(noise, key=noise.get, reverse=True)
    total = sum(noise.values()) or 1.0
    by_type: dict[str, dict] = {}
    for name, value in noise.items():
        kind = _consumer_type(feeds.get(name, ""))
        entry = by_type.setdefault(kind, {"quantizers": 0, "noise_share": 0.0})
        entry["quantizers"] += 1
        entry["noise_share"] = round(entry["noise_share"] + value / total, 4)
    top = [QuantizerError(name, feeds.get(name, ""), round(float(noise[name]), 6)) for name in ranked[:rows]]
    return top, dict(sorted(by_type.items(), key=lambda item: -item[1]["noise_share"]))


def quantizer_report(path: Path, inputs: np.ndarray, reference: np.ndarray, *, rows: int = REPORT_ROWS,
                     bypass: int = BYPASS_ROWS) -> Int8Report:
    """The per-layer report of the INT8 file ``path`` (IR or QDQ ONNX) on ``inputs`` (converted
    contract), judged against ``reference`` (the original's N×D outputs)."""
    engine = engine_for(Path(path))
    model = engine.load_int8(Path(path))
    inputs = np.ascontiguousarray(inputs, np.float32)
    reference = np.asarray(reference, np.float32).reshape(len(inputs), -1)

    def min_cosine(candidate) -> float:
        outputs = first_output(engine.run(candidate, inputs)).reshape(len(inputs), -1)
        return round(float(cosine_rows(reference, outputs).min()), 6)

    top, by_type = noise_ranking(engine, model, inputs, rows)
    measured = [QuantizerError(row.quantizer, row.feeds, row.relative_noise,
                               min_cosine(engine.bypass(model, {row.quantizer})))
                for row in top[:bypass]]
    return Int8Report(Path(path).name, engine.format, len(inputs), min_cosine(model), len(engine.quantizers(model)),
                      tuple(measured + top[bypass:]), by_type)


def _consumer_type(feeds: str) -> str:
    kinds = sorted({part.split(" ", 1)[0] for part in feeds.split(", ") if part})
    return "+".join(kinds) or "-"


def first_output(outputs) -> np.ndarray:
    """An engine's run gives an array (OpenVINO) or a list of them (ONNX Runtime): the first."""
    return np.asarray(outputs[0] if isinstance(outputs, list) else outputs)


__all__ = ["BYPASS_ROWS", "Int8Report", "QuantizerError", "REPORT_ROWS", "first_output", "noise_ranking", "quantizer_report"]
