"""facezoo: face-recognition checkpoints turned into deployable, verified models."""

import os as _os

# MindSpore's bundled oneDNN picks an AVX-512 convolution kernel that runs ~100x slower than
# its AVX2 GEMM path on the machines measured here (1 vs ~100 GFLOP/s). It must be set before
# MindSpore's first convolution, so it is set on import; a user's own value wins.
_os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

__version__ = "0.1.0"
