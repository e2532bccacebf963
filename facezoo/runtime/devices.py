"""Which backends and devices this machine has, and what to install for the others."""

from __future__ import annotations

import functools

from facezoo.runtime.errors import BackendError, DeviceUnavailableError

DEVICES = ("CPU", "GPU", "Ascend", "AUTO")

INSTALL_HINTS = {
    ("onnxruntime", "CPU"): "pip install 'facezoo[cpu]' (onnxruntime), or 'facezoo[gpu]' (onnxruntime-gpu, CPU included)",
    ("onnxruntime", "GPU"): "pip install 'facezoo[gpu]' (onnxruntime-gpu) instead of 'facezoo[cpu]' (pip uninstall "
    "onnxruntime first: the two wheels share one module) on a machine with an NVIDIA GPU, CUDA and cuDNN",
    ("onnxruntime", "Ascend"): "an onnxruntime build with the CANN execution provider and the Ascend CANN toolkit",
    ("openvino", "GPU"): "an Intel GPU with its OpenCL/Level Zero driver (OpenVINO's GPU plugin is Intel-only)",
    ("openvino", "Ascend"): "OpenVINO has no Ascend plugin: use --backend mindspore or onnxruntime",
    ("mindspore", "GPU"): "the MindSpore GPU (CUDA) build instead of the CPU wheel",
    ("mindspore", "Ascend"): "the MindSpore Ascend build with the CANN toolkit on an Ascend machine",
}

ORT_PROVIDER_FOR_DEVICE = {
    "CPU": "CPUExecutionProvider",
    "GPU": "CUDAExecutionProvider",
    "Ascend": "CANNExecutionProvider",
}


BACKEND_NAMES = ("onnxruntime", "openvino", "mindspore")


def available_devices() -> dict[str, tuple[str, ...]]:
    """Devices each installed backend can use here (only the CPU is certain everywhere)."""
    return {name: devices_for(name) for name in BACKEND_NAMES}


@functools.lru_cache(maxsize=None)
def devices_for(backend: str) -> tuple[str, ...]:
    """Probe one backend only: importing MindSpore costs seconds, so probe lazily."""
    try:
        if backend == "onnxruntime":
            import onnxruntime as ort

            providers = set(ort.get_available_providers())
            return tuple(d for d, p in ORT_PROVIDER_FOR_DEVICE.items() if p in providers)
        if backend == "openvino":
            import openvino as ov

            devices = ov.Core().available_devices
            return tuple(d for d in ("CPU", "GPU") if any(x.split(".")[0] == d for x in devices))
        if backend == "mindspore":
            from facezoo.mindspore_context import mindspore

            ms = mindspore()
            return tuple(d for d in ("CPU", "GPU", "Ascend") if _mindspore_has(ms, d))
    except ImportError:
        return ()
    return ()


def _mindspore_has(ms, device: str) -> bool:
    if device == "CPU":
        return True
    try:
        return bool(ms.hal.is_available(device))
    except Exception:  # builds without that device raise rather than answer False
        return False


def describe_availability() -> str:
    parts = [f"{backend}: {', '.join(devices) or 'none'}" for backend, devices in available_devices().items()]
    return "; ".join(parts)


def unavailable_message(backend: str, device: str) -> str:
    hint = INSTALL_HINTS.get((backend, device), "")
    message = f"{backend} cannot use device {device} on this machine (available here: {describe_availability()})"
    return f"{message}; to use it: {hint}" if hint else message


def pick_device(backend: str, device: str) -> str:
    """The concrete device: as asked, or for AUTO the best this backend has."""
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    have = devices_for(backend)
    if device == "AUTO":
        for candidate in ("GPU", "Ascend", "CPU"):
            if candidate in have:
                return candidate
        raise DeviceUnavailableError(unavailable_message(backend, "CPU"))
    if device not in have:
        raise DeviceUnavailableError(unavailable_message(backend, device))
    return device
