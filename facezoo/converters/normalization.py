"""The registry's input normalization as constants to fold into a converted graph."""

from __future__ import annotations

import numpy as np

from facezoo.registry import ModelSpec


def normalization_constants(spec: ModelSpec, channel_order: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 1/std as (1,C,1,1) float32, in the channel order of the tensor they apply to."""
    channels = spec.input.channels
    mean = np.broadcast_to(np.asarray(spec.input.mean, np.float32), (channels,)).copy()
    std = np.broadcast_to(np.asarray(spec.input.std, np.float32), (channels,)).copy()
    if channel_order != spec.input.channel_order and channels == 3:
        mean, std = mean[::-1].copy(), std[::-1].copy()
    return mean.reshape(1, channels, 1, 1), (1.0 / std).reshape(1, channels, 1, 1).astype(np.float32)
