"""What a benchmark ran on: the figures mean nothing without the machine and the versions."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from facezoo.mindspore_context import plan as onednn_plan


# CPU features that decide which kernels the libraries pick.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16")
LIBRARIES = ("facezoo", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "mindspore", "opencv-python-headless")


@dataclass(frozen=True)
class MachineInfo:
    name: str  # slug used for result file names
    cpu_model: str
    logical_cpus: int
    usable_cpus: int  # what this process may run on (affinity, containers)
    memory_gib: float
    isa: list[str]
    virtualized: bool
    os: str
    python: str
    libraries: dict[str, str]
    gpus: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # variables that change kernel choice
    date: str = ""


def describe_machine(name: str | None = None) -> MachineInfo:
    cpuinfo = _read("/proc/cpuinfo")
    model = _first(r"^model name\s*:\s*(.+)$", cpuinfo) or platform.processor() or platform.machine()
    flags = set((_first(r"^flags\s*:\s*(.+)$", cpuinfo) or "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = _first(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"))
    gpus = _gpus()
    return MachineInfo(
        name=name or _slug(model, usable, gpus),
        cpu_model=model,
        logical_cpus=os.cpu_count() or usable,
        usable_cpus=usable,
        memory_gib=round(int(memory) / 2**20, 1) if memory else 0.0,
        isa=[flag for flag in ISA_FLAGS if flag in flags],
        virtualized="hypervisor" in flags,
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        libraries=library_versions(),
        gpus=gpus,
        environment={
            **{k: v for k, v in os.environ.items() if k in ("ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")},
            "mindspore_onednn": onednn_plan(set(flags))[1],
        },
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.strip()]


def _slug(model: str, cpus: int, gpus: list[str]) -> str:
    words = re.sub(r"\((R|TM)\)|CPU|Processor|@.*$", " ", model, flags=re.IGNORECASE)
    base = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-") or "machine"
    gpu = "-" + re.sub(r"[^a-z0-9]+", "-", gpus[0].split(",")[0].lower()).strip("-") if gpus else ""
    return f"{base}-{cpus}cpu{gpu}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None
