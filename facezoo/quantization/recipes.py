"""One NNCF post-training quantization configuration: what one ladder candidate tries.

Every option is passed to NNCF explicitly, so a card's record of a recipe is the whole story:
symmetric INT8 (``performance`` preset) activations and per-channel weights, unless a recipe
says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from facezoo.quantization.errors import QuantizationError

PRESETS = ("performance", "mixed")
OVERFLOW_FIXES = ("enable", "first_layer_only", "disable")


@dataclass(frozen=True)
class Recipe:
    preset: str = "performance"  # symmetric activations and weights
    fast_bias_correction: bool = True  # False: NNCF's full BiasCorrection (slower, more accurate)
    ignored_names: tuple[str, ...] = ()
    ignored_types: tuple[str, ...] = ()
    overflow_fix: str = "first_layer_only"  # NNCF's default: 7-bit weights in the first layer only
    smooth_quant_alpha: float | None = None  # SmoothQuant on convolutions and MatMuls (NNCF runs it as TRANSFORMER)
    target_device: str = "CPU"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise QuantizationError(f"preset {self.preset!r}: expected {' or '.join(PRESETS)}")
        if self.overflow_fix not in OVERFLOW_FIXES:
            raise QuantizationError(f"overflow_fix {self.overflow_fix!r}: expected one of {', '.join(OVERFLOW_FIXES)}")

    def with_(self, **changes) -> "Recipe":
        return replace(self, **changes)

    def record(self) -> dict:
        data = asdict(self)
        data["ignored_names"] = len(self.ignored_names)
        data["ignored_types"] = list(self.ignored_types)
        return data

    def nncf_arguments(self, subset_size: int) -> dict:
        """Keyword arguments of nncf.quantize for this recipe (every default spelled out)."""
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
            OverflowFix,
        )

        smooth = AdvancedSmoothQuantParameters(convolution=-1, matmul=-1)
        model_type = None
        if self.smooth_quant_alpha is not None:
            smooth = AdvancedSmoothQuantParameters(convolution=self.smooth_quant_alpha, matmul=self.smooth_quant_alpha)
            model_type = nncf.ModelType.TRANSFORMER  # NNCF runs SmoothQuant only for this model type
        ignored = None
        if self.ignored_names or self.ignored_types:
            ignored = nncf.IgnoredScope(names=list(self.ignored_names), types=list(self.ignored_types), validate=False)
        return {
            "preset": nncf.QuantizationPreset(self.preset),
            "target_device": nncf.TargetDevice[self.target_device],
            "subset_size": subset_size,
            "fast_bias_correction": self.fast_bias_correction,
            "model_type": model_type,
            "ignored_scope": ignored,
            "advanced_parameters": AdvancedQuantizationParameters(
                overflow_fix=OverflowFix(self.overflow_fix), smooth_quant_alphas=smooth
            ),
        }


def samples(inputs: np.ndarray, feed_name: str | None = None) -> list:
    """One-image batches (NNCF's statistics are per sample; batch 1 avoids batchwise statistics)."""
    items = [np.ascontiguousarray(inputs[i : i + 1], np.float32) for i in range(len(inputs))]
    return [{feed_name: x} for x in items] if feed_name else items
