"""The inference precision a converted folder asks for, and whether this CPU can give it.

A BF16 folder holds an FP32 IR whose model card says ``"inference_precision_hint": "bf16"``:
OpenVINO then runs it in bfloat16 on CPUs with bf16 units (AVX512_BF16 or AMX-BF16). On other
CPUs OpenVINO would quietly run f32 instead, so facezoo refuses, naming the file and what the CPU
lacks. An explicit ``precision_hint`` from the caller always wins over the card.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable

from facezoo.modelcard import card_beside
from facezoo.runtime.errors import PrecisionUnavailableError

#: /proc/cpuinfo flags of bf16 arithmetic units; OpenVINO lists "BF16" in its capabilities for them.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
OPENVINO_BF16_CAPABILITY = "BF16"


def card_precision_hint(path: str | Path) -> str | None:
    """The inference precision hint recorded in the model card beside ``path``, if any."""
    card = card_beside(Path(path))
    hint = card.inference_precision_hint if card else None
    return str(hint).lower() if hint else None


@functools.lru_cache(maxsize=None)
def openvino_cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU plugin (e.g. FP32, BF16, INT8)."""
    import openvino as ov

    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str] | None:
    """The CPU flags of /proc/cpuinfo, or None where there is no such file (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def bf16_problem(capabilities: Iterable[str] | None = None, flags: Iterable[str] | None = None) -> str | None:
    """Why this CPU cannot run bf16 inference, or None if it can.

    Both sources must agree where both exist: OpenVINO lists BF16, and /proc/cpuinfo has
    AVX512_BF16 or AMX-BF16. Pass ``capabilities``/``flags`` to judge another machine's.
    """
    capabilities = tuple(openvino_cpu_capabilities() if capabilities is None else capabilities)
    flag_set = cpu_flags() if flags is None else frozenset(flags)
    missing = []
    if OPENVINO_BF16_CAPABILITY not in capabilities:
        missing.append(f"OpenVINO's CPU capabilities are {', '.join(capabilities) or 'empty'}, without BF16")
    if flag_set is not None and not any(flag in flag_set for flag in BF16_CPU_FLAGS):
        missing.append(f"the CPU flags have neither {' nor '.join(BF16_CPU_FLAGS)}")
    return "; ".join(missing) or None


def require_precision(path: str | Path, hint: str, device: str = "CPU", *,
                      capabilities: Iterable[str] | None = None, flags: Iterable[str] | None = None) -> None:
    """Refuse a bf16 run on a CPU without bf16 units, naming the file and what is missing."""
    if hint != "bf16" or device != "CPU":
        return
    problem = bf16_problem(capabilities, flags)
    if problem:
        raise PrecisionUnavailableError(
            f"{path}: this model runs with INFERENCE_PRECISION_HINT=bf16, which needs a CPU with bf16 units "
            f"(AVX512_BF16 or AMX-BF16), and this one has none: {problem}. Load the FP32 or INT8 file instead, "
            "or pass precision_hint='f32' (--precision-hint f32) to run this one in f32"
        )


def effective_hint(path: str | Path, requested: str | None) -> str:
    """The hint to compile with: the caller's, else the model card's, else f32."""
    return (requested or card_precision_hint(path) or "f32").lower()
