"""Conversion sources: one sub-package per framework a registry entry's ``framework`` names.

Each package defines one Source class and registers it under its framework's name with
:func:`register_source`, together with the writer of its stand-in files. What an entry of the
framework must say is the registry's (``facezoo.registry.FRAMEWORKS``); a source registers only
under a name that table knows. Source modules import their heavy libraries (MindSpore, onnx) only
when a source is opened, so listing the frameworks costs nothing.

A Source is built as ``SourceClass(spec, *files)`` and gives ``source_files``,
``reference(images_bgr) -> {output name: array}`` (the ORIGINAL model, fed its upstream
preprocessing, named as the converted contract names its outputs),
``export_onnx(path)`` and ``export_mindir(path, precision)``. :func:`open_source` opens one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from facezoo.errors import ConversionError, FacezooError
from facezoo.registry import FRAMEWORKS, ModelSpec

#: The sources facezoo ships; each module registers itself when imported.
BUILTIN_SOURCES = (
    "facezoo.sources.mindspore.source",
    "facezoo.sources.mxnet.source",
    "facezoo.sources.onnx",
)


@dataclass(frozen=True)
class SourceEntry:
    """A framework facezoo can convert from."""

    framework: str
    source: Callable  # (spec, *files) -> the original model
    files: Callable  # (spec, folder, override) -> list of the original's paths
    standin_writer: str | None  # "module:function" writing stand-in files for this framework
    thresholds: Callable  # (spec) -> {precision: min cosine} of the model's architecture, if it has its own


_REGISTERED: dict[str, SourceEntry] = {}


def register_source(framework: str, *, files: Callable, standin_writer: str | None = None,
                    thresholds: Callable = lambda spec: {}):
    """Decorator of a Source class (or a function choosing one):
    ``@register_source("onnx", files=..., standin_writer="module:function")``."""
    if framework not in FRAMEWORKS:
        raise FacezooError(f"source for framework {framework!r}: the registry has no rules for it "
                           f"(facezoo.registry.FRAMEWORKS: {', '.join(FRAMEWORKS)})")

    def register(cls: type) -> type:
        _REGISTERED[framework] = SourceEntry(framework, cls, files, standin_writer, thresholds)
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


def source_paths(spec: ModelSpec, folder: Path, override: Path | None = None) -> list[Path]:
    """The original's files: in ``folder`` (the model's download folder), or ``override`` instead."""
    return source_for(spec.framework).files(spec, Path(folder), override)


def open_source(spec: ModelSpec, folder: Path, override: Path | None = None):
    """The original model of ``spec``, from its files in ``folder`` (or ``override``)."""
    paths = source_paths(spec, folder, override)
    for path in paths:
        if not path.is_file():
            raise ConversionError(
                f"{spec.name}: {path} does not exist; run `facezoo download {spec.name}` (or pass --checkpoint)"
            )
    return source_for(spec.framework).source(spec, *paths)


def thresholds_for(spec: ModelSpec) -> dict[str, float]:
    """Min cosine per precision: the entry's own, else its architecture's (asked of its source), else the gates'."""
    return spec.thresholds(source_for(spec.framework).thresholds(spec))


__all__ = ["BUILTIN_SOURCES", "SourceEntry", "frameworks", "open_source", "register_source", "source_for",
           "source_paths", "thresholds_for"]
