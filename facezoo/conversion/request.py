"""What a conversion is asked to do, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facezoo.quantization.build import GATE_FACES
from facezoo.quantization.calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_TUNING_SIZE
from facezoo.quantization.ladder import LadderOptions
from facezoo.registry import ModelSpec
from facezoo.tasks import DEFAULT_TASK
from facezoo.validation import ArtifactCheck


@dataclass(frozen=True)
class QuantizationSettings:
    """How INT8 is calibrated (the user's aligned crops, or facezoo's synthetic faces) and judged."""

    calibration_images: Path | None = None
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    ladder: LadderOptions | None = None  # None: every step, defaults
    tuning_size: int = DEFAULT_TUNING_SIZE
    gate_faces: int = GATE_FACES


@dataclass
class ConversionRequest:
    spec: ModelSpec
    download_dir: Path
    output_dir: Path
    formats: list[str]
    precisions: list[str]
    checkpoint: Path | None = None  # the original file to use instead of the downloaded one
    original: dict | None = None  # recorded in the model card: where the original lives (no download folder)
    quantization: QuantizationSettings = field(default_factory=lambda: QuantizationSettings())


@dataclass
class ConversionResult:
    model: str
    passed: bool  # every requested precision passed (and was published)
    task: str = DEFAULT_TASK  # the registry entry's task_type
    folder: str = ""  # where the published precisions are ("" when none was)
    artifacts: list[str] = field(default_factory=list)
    checks: list[ArtifactCheck] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # precisions moved into place
    failed_precisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was deliberately not made, and why
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    error: str = ""


__all__ = ["ConversionRequest", "ConversionResult", "QuantizationSettings"]
