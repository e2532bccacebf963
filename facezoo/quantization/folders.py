"""INT8 and BF16 folder contents from an FP32 folder: the quantized files and the BF16 IR.

These functions write into a folder the caller owns (a scratch folder the conversion pipeline
moves into place only when every artifact passed); they never publish anything themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facezoo.quantization.calibration import CalibrationSet, TuningSet
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.gate import Judge
from facezoo.quantization.ladder import LadderOptions, LadderResult, budget_deadline, run_ladder
from facezoo.quantization.mindir import MINDIR_INT8_REASON
from facezoo.quantization.precisions import BF16, INT8

# The formats facezoo quantizes to INT8, in the order they are built.
INT8_FORMATS = ("openvino", "onnx")


@dataclass
class Int8Result:
    """Every format's ladder; the folder may be published only if all of them passed."""

    model: str
    calibration: dict
    ladders: list[LadderResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.ladders) and all(ladder.passed for ladder in self.ladders)

    @property
    def files(self) -> list[str]:
        return [ladder.path for ladder in self.ladders if ladder.path]

    def summary(self) -> str:
        return "; ".join(ladder.summary() for ladder in self.ladders)

    def record(self) -> dict:
        """The model card's "quantization" section."""
        return {
            "method": "NNCF post-training quantization, symmetric INT8, with a gate against the original model",
            "calibration": self.calibration,
            "passed": self.passed,
            "ladders": [ladder.record() for ladder in self.ladders],
            "mindir": MINDIR_INT8_REASON,
        }


def quantize_folder(
    name: str,
    fp32_folder: Path,
    int8_folder: Path,
    calibration: CalibrationSet,
    tuning: TuningSet,
    gate: Judge,
    formats: tuple[str, ...] = INT8_FORMATS,
    options: LadderOptions = LadderOptions(),
    step: Callable[[str], None] = lambda _: None,
) -> Int8Result:
    """Run the ladder for each format's FP32 file of ``fp32_folder``, writing into ``int8_folder``.

    When a format misses, the formats after it are not tried: the folder cannot be published
    anyway, and each ladder costs minutes on a large network.
    """
    from facezoo.formats import SUFFIX

    unknown = [f for f in formats if f not in INT8_FORMATS]
    if unknown:
        raise QuantizationError(f"INT8 formats {unknown}: facezoo quantizes {', '.join(INT8_FORMATS)} (MINDIR: {MINDIR_INT8_REASON})")
    int8_folder.mkdir(parents=True, exist_ok=True)
    result = Int8Result(name, calibration.record())
    deadline = budget_deadline(options)  # one budget for every format
    for fmt in formats:
        source = Path(fp32_folder) / f"{name}{SUFFIX[fmt]}"
        if not source.is_file():
            raise QuantizationError(f"{source}: no FP32 {fmt} file to quantize; convert the model to FP32 first")
        ladder = run_ladder(source, int8_folder / source.name, calibration, tuning, gate, options, step, deadline)
        result.ladders.append(ladder)
        if not ladder.passed:
            break
    return result


def write_bf16(fp32_xml: Path, bf16_xml: Path) -> Path:
    """The FP32 IR again, tagged BF16: OpenVINO is asked for bf16 inference when it is loaded.

    The request itself lives in the model card (``card_fields_for("BF16")``), which facezoo's
    runtime reads; the IR also carries it as rt_info ``runtime_options`` for other OpenVINO tools.
    """
    import openvino as ov

    if Path(fp32_xml).suffix != ".xml" or not Path(fp32_xml).is_file():
        raise QuantizationError(f"{fp32_xml}: BF16 is made from an FP32 OpenVINO IR (.xml); none there")
    model = ov.Core().read_model(str(fp32_xml))
    model.set_rt_info(BF16, ["facezoo", "precision"])
    model.set_rt_info("bf16", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    Path(bf16_xml).parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(bf16_xml), compress_to_fp16=False)
    return Path(bf16_xml)


__all__ = ["INT8", "INT8_FORMATS", "Int8Result", "quantize_folder", "write_bf16"]
