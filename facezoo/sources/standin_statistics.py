"""The statistics every stand-in writer gives its BatchNorms: those of a trained network.

Stand-ins whose BN statistics match their calibration batch exactly are kinder to a converter
than real checkpoints are; these settings make them as unkind as trained weights.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


def parameter_rng(seed: int, key: str) -> np.random.Generator:
    """The random stream of one parameter of one stand-in: the same (seed, name) always gives the
    same values, whatever order a writer draws its parameters in."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode())])


@dataclass(frozen=True)
class TrainedStatistics:
    """What trained BatchNorm statistics look like on data they were not computed on.

    - ``quiet_fraction`` of the channels of a BN that directly follows a convolution or dense
      layer carry almost no signal: their producing filter is scaled by 10^U(log10 quiet_scale),
      so their moving variance lands near 1e-4..1e-3 and the BN multiplies them back up by
      ~30-100x (where an eps slip or a rounding error shows most);
    - the moving mean sits ``mean_shift`` standard deviations (normal) away from the batch mean
      and the moving variance is off by a log-normal factor of spread ``variance_spread``.
    """

    quiet_fraction: float = 0.08
    quiet_scale: tuple[float, float] = (0.01, 0.03)
    mean_shift: float = 0.2
    variance_spread: float = 0.2


TRAINED = TrainedStatistics()
