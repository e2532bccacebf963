"""The one place facezoo starts MindSpore, and caps its oneDNN where that helps.

The first call of :func:`mindspore` quiets MindSpore's logging (unless the user set GLOG_v),
applies the oneDNN decision below, imports MindSpore and puts it in GRAPH mode: the only mode
facezoo uses, and the one that works with numpy 2 (PyNative and eager ops given scalars do not,
with MindSpore 2.10). Every facezoo module that needs MindSpore (the MindSpore source, the
MINDIR importer, the runtime's MindSpore backend) gets it from here; nothing is done at import.

Why the oneDNN cap: MindSpore 2.10's bundled oneDNN picks AVX-512 convolution kernels that run
50-90x slower than its AVX2 ones. Measured: an Intel Xeon KVM guest (2026-11-23, LightCNN-9 0.7
→ 39 images/s) and an AMD EPYC KVM guest (2026-12-01, a 64-channel 3x3 convolution 0.7 → 59-66
GFLOP/s). On a CPU without AVX-512 there are no such kernels to avoid, and nothing is capped.

The environment variable ONEDNN_MAX_CPU_ISA would fix MindSpore, but OpenVINO's CPU plugin reads
it too and loses a third of its speed under it. So facezoo loads MindSpore's own libdnnl before
MindSpore does and calls its dnnl_set_max_cpu_isa: MindSpore's libraries then bind to that same,
capped copy (same soname), and OpenVINO's statically linked oneDNN is left alone. A user's
ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA wins: then nothing is done here.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from pathlib import Path

DNNL_CPU_ISA_AVX2 = 0x7  # dnnl_cpu_isa_t in oneDNN 3.x
USER_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

_LOCK = threading.Lock()
_STATE: dict = {}


def mindspore(device: str = "CPU"):
    """The mindspore module, started the facezoo way, in GRAPH mode on ``device``."""
    with _LOCK:
        if "module" not in _STATE:
            # MindSpore logs every graph-compile and device-probe warning to stderr unless told otherwise.
            os.environ.setdefault("GLOG_v", "3")
            _STATE["onednn"] = cap_if_it_helps()
            import mindspore as ms

            _STATE["module"] = ms
        ms = _STATE["module"]
        if _STATE.get("device") != device:
            ms.set_context(mode=ms.GRAPH_MODE, device_target=device)
            _STATE["device"] = device
        elif ms.get_context("mode") != ms.GRAPH_MODE:
            ms.set_context(mode=ms.GRAPH_MODE)
        return ms


def onednn_status() -> str:
    """What was done to MindSpore's oneDNN in this process (for reports)."""
    return _STATE.get("onednn", "MindSpore not started in this process")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def plan(flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether to cap (and why), from the user's variables and the CPU's flags; does nothing."""
    for name in USER_VARIABLES:
        if os.environ.get(name):
            return False, f"left to {name}={os.environ[name]}"
    flags = cpu_flags() if flags is None else flags
    if "avx512f" not in flags:
        return False, "not capped: the CPU has no AVX-512, whose slow kernels the cap avoids"
    return True, "capped at AVX2 (AVX-512 CPU)"


def cap_if_it_helps(flags: set[str] | None = None) -> str:
    """Cap MindSpore's oneDNN at AVX2 on AVX-512 CPUs; what was done, in words."""
    wanted, why = plan(flags)
    if not wanted:
        return why
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
    return why if status == 0 else f"not capped: oneDNN already initialised (status {status})"
