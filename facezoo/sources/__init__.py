"""Conversion sources: one sub-package per framework a registry entry's ``framework`` names.

Each package defines one Source class and registers it under its framework's name with
:func:`register_source`, together with the writer of its stand-in files. The registry's list of
frameworks is what is registered here. Source modules import their heavy libraries (MindSpore,
onnx) only when a source is opened, so listing the frameworks costs nothing.

A Source is built as ``SourceClass(spec, *files)`` and gives ``source_files``,
``reference(images_bgr) -> embeddings`` (the ORIGINAL model, fed its upstream preprocessing),
``export_onnx(path)`` and ``export_mindir(path, precision)``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from facezoo.errors import FacezooError

#: The sources facezoo ships; each module registers itself when imported.
BUILTIN_SOURCES = (
    "facezoo.sources.mindspore.source",
    "facezoo.sources.mxnet.source",
    "facezoo.sources.onnx.source",
)


@dataclass(frozen=True)
class SourceEntry:
    """A framework facezoo can convert from."""

    framework: str
    source: type
    files: Callable  # (spec, folder, override) -> list of the original's paths
    validate: Callable  # (spec) -> [(field, problem)]: what the framework needs of a registry entry
    standin_writer: str | None  # "module:function" writing stand-in files for this framework
    layouts: tuple[str, ...]  # the input layouts an original of this framework may have
    thresholds: Callable  # (spec) -> {precision: min cosine} of the model's architecture, if it has its own


_REGISTERED: dict[str, SourceEntry] = {}


def register_source(framework: str, *, files: Callable, validate: Callable = lambda spec: [],
                    standin_writer: str | None = None, layouts: tuple[str, ...] = ("NCHW",),
                    thresholds: Callable = lambda spec: {}):
    """Class decorator: ``@register_source("onnx", files=..., validate=..., standin_writer="module:function")``."""

    def register(cls: type) -> type:
        _REGISTERED[framework] = SourceEntry(framework, cls, files, validate, standin_writer, layouts, thresholds)
        return cls

    return register


def _load_builtins() -> None:
    for module in BUILTIN_SOURCES:
        importlib.import_module(module)


def frameworks() -> tuple[str, ...]:
    """Every framework a registry entry may name."""
    _load_builtins()
    return tuple(_REGISTERED)


def source_for(framework: str) -> SourceEntry:
    _load_builtins()
    try:
        return _REGISTERED[framework]
    except KeyError:
        raise FacezooError(
            f"no conversion source for framework {framework!r}; known: {', '.join(_REGISTERED)}"
        ) from None


__all__ = ["BUILTIN_SOURCES", "SourceEntry", "frameworks", "register_source", "source_for"]
