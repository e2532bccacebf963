"""Cap the instruction set of MindSpore's oneDNN, and of nothing else.

MindSpore 2.10's bundled oneDNN picks AVX-512 convolution kernels that run about 50× slower
than its AVX2 ones on the Xeons measured here (0.7 against 39 images/s for LightCNN-9).
The environment variable ONEDNN_MAX_CPU_ISA would fix MindSpore, but OpenVINO's CPU plugin
reads it too and loses a third of its speed under it. So facezoo loads MindSpore's own
libdnnl before MindSpore does and calls its dnnl_set_max_cpu_isa: MindSpore's libraries then
bind to that same, capped copy (same soname), and OpenVINO's statically linked oneDNN is left
alone. A user's ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA wins: then nothing is done here.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

DNNL_CPU_ISA_AVX2 = 0x7  # dnnl_cpu_isa_t in oneDNN 3.x


def cap_mindspore_onednn() -> str:
    """What was done, in words (for `facezoo info` and benchmark reports)."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        if os.environ.get(name):
            return f"left to {name}={os.environ[name]}"
    spec = importlib.util.find_spec("mindspore")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return "MindSpore not installed"
    libraries = sorted(Path(spec.submodule_search_locations[0], "lib").glob("libdnnl.so*"))
    if not libraries:
        return "MindSpore has no bundled libdnnl"
    try:
        dnnl = ctypes.CDLL(str(libraries[0]))
        status = dnnl.dnnl_set_max_cpu_isa(DNNL_CPU_ISA_AVX2)
    except (OSError, AttributeError) as exc:
        return f"not capped: {exc}"
    # Status 2 (invalid arguments): oneDNN already ran, so the cap can no longer be set.
    return "capped at AVX2" if status == 0 else f"not capped: oneDNN already initialised (status {status})"


MINDSPORE_ONEDNN = cap_mindspore_onednn()
