"""The one place facezoo starts MindSpore.

The first call of :func:`mindspore` quiets MindSpore's logging (unless the user set GLOG_v),
applies the oneDNN decision (:mod:`facezoo.sources.mindspore.onednn`), imports MindSpore and puts
it in GRAPH mode: the only mode facezoo uses, and the one that works with numpy 2 (PyNative and
eager ops given scalars do not, with MindSpore 2.10). Every facezoo module that needs MindSpore
gets it from here; nothing is done at import.
"""

from __future__ import annotations

import os
import threading

_LOCK = threading.Lock()
_STATE: dict = {}


def mindspore(device: str = "CPU"):
    """The mindspore module, started the facezoo way, in GRAPH mode on ``device``."""
    with _LOCK:
        if "module" not in _STATE:
            from facezoo.sources.mindspore.onednn import cap_if_it_helps

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
