"""model_card.json: what a converted folder holds, how it was made, and how well it matches.

One typed, versioned :class:`ModelCard`, read and written here and nowhere else. The converter
writes one into every precision folder; the runtime, the checker, the repository export and the
batch job read it.

Versions:

- 1: the cards facezoo 0.1.0 wrote before it knew tasks (no ``card_version``, one ``output``).
  They still load: their task is face recognition and their one output is ``output``.
- 2 (this release): ``card_version``, ``task`` and ``outputs`` (every named output of the task);
  ``output`` is still written, as the first of ``outputs``, for readers of version 1.

A card of a newer version, or one that lacks what a card must hold, is refused with the file, the
field and how to reconvert.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from facezoo.atomic import write_bytes_atomic
from facezoo.downloader.verify import sha256_file
from facezoo.errors import FacezooError
from facezoo.registry import ModelSpec, dump_spec, spec_from_dict
from facezoo.tasks import DEFAULT_TASK, TensorDecl, task_for

CARD_NAME = "model_card.json"
CARD_VERSION = 2
TOOLS = ("facezoo", "mindspore", "onnx", "onnxruntime", "openvino", "nncf", "numpy")


class CardError(FacezooError):
    """A model card cannot be read: not JSON, a field missing or malformed, or a newer version."""


@dataclass(frozen=True)
class CardInput:
    """The converted contract's input: raw pixels, NCHW, with what the model does inside."""

    name: str
    shape: tuple[int, ...]
    layout: str = "NCHW"
    dtype: str = "float32"
    channel_order: str = ""
    pixel_range: tuple[float, float] = (0.0, 255.0)
    preprocessing_inside: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "layout": self.layout, "dtype": self.dtype,
                "channel_order": self.channel_order, "pixel_range": list(self.pixel_range),
                "preprocessing_inside": self.preprocessing_inside}


@dataclass(frozen=True)
class ModelCard:
    model: str
    architecture: str
    precision: str
    task: str
    files: dict[str, dict]  # file name -> {"sha256", "bytes"}, every file of the folder but the card
    input: CardInput
    outputs: tuple[TensorDecl, ...]
    source: dict  # framework, files (name -> sha256), original_input, original (a file not in a download folder)
    entry: dict | None  # the registry entry the folder was made from, whole
    tools: dict[str, str] = field(default_factory=dict)
    validation: list[dict] = field(default_factory=list)  # the converter's checks (facezoo.validation records)
    created: str = ""
    card_version: int = CARD_VERSION
    inference_precision_hint: str | None = None  # BF16: what OpenVINO is asked to run in
    quantization: dict | None = None  # INT8: the gated ladder's record
    mindir: str | None = None  # INT8: why there is no MINDIR
    bf16_gate: dict | None = None  # BF16: the gate's verdict
    derived_from: str | None = None  # INT8/BF16: the precision folder the files were made from
    #: a model of several nets (detectors): part → {"file_stem", "input_shape" (-1: any), "outputs"}
    parts: dict | None = None
    size_policy: str | None = None  # detectors: how a photo meets each net's input
    #: FP32: precisions asked for and not published (INT8, BF16) -> why, with the best candidate's numbers
    not_published: dict | None = None
    extra: dict = field(default_factory=dict)  # fields this release does not know, kept as they were

    def part_of(self, path: Path) -> str:
        """Which part a file of the folder is ("" for a model of one graph)."""
        stem = Path(path).stem
        for part, facts in (self.parts or {}).items():
            if facts.get("file_stem") == stem:
                return part
        return ""

    @property
    def original_path(self) -> Path | None:
        """Where the original file lives when it is not in a download folder (``convert --onnx``)."""
        path = (self.source.get("original") or {}).get("path")
        return Path(path) if path else None

    def spec(self, where: str = "") -> ModelSpec | None:
        """The registry entry the folder was made from, validated like a registry file's."""
        if self.entry is None:
            return None
        return spec_from_dict(self.entry, f"{where or 'model card'}: entry")

    def as_json(self) -> dict:
        document = {
            "card_version": self.card_version,
            "model": self.model,
            "architecture": self.architecture,
            "precision": self.precision,
            "task": self.task,
            "files": self.files,
            "input": self.input.as_dict(),
            "outputs": [output.as_dict() for output in self.outputs],
            "output": _legacy_output(self.outputs[0]) if self.outputs else None,
            "source": self.source,
            "entry": self.entry,
            "tools": self.tools,
            "validation": self.validation,
            "created": self.created,
        }
        for name in ("inference_precision_hint", "quantization", "mindir", "bf16_gate", "derived_from", "parts",
                     "size_policy", "not_published"):
            if getattr(self, name) is not None:
                document[name] = getattr(self, name)
        return {**document, **self.extra}

    @classmethod
    def from_json(cls, document: Any, where: str) -> "ModelCard":
        if not isinstance(document, dict):
            raise _refused(where, "expected a JSON object")
        version = document.get("card_version", 1)
        if not isinstance(version, int) or version < 1:
            raise _refused(where, f"card_version: expected a positive integer, got {version!r}")
        if version > CARD_VERSION:
            raise CardError(f"{where}: written by a newer facezoo (card_version {version}; this release reads "
                            f"1 to {CARD_VERSION}): upgrade facezoo, or reconvert with this one "
                            f"(`facezoo convert {document.get('model', 'MODEL')}`)")
        try:
            contract = document["input"]
            outputs = (document["outputs"] if version >= 2 else [document["output"]])
            known = {f.name for f in dataclasses.fields(cls)} | {"output"}
            return cls(
                model=_text(document, "model"),
                architecture=str(document.get("architecture", "")),
                precision=_text(document, "precision"),
                task=str(document.get("task", DEFAULT_TASK)) if version >= 2 else DEFAULT_TASK,
                files=dict(document.get("files") or {}),
                input=CardInput(
                    name=str(contract["name"]), shape=tuple(int(d) for d in contract["shape"]),
                    layout=str(contract.get("layout", "NCHW")), dtype=str(contract.get("dtype", "float32")),
                    channel_order=str(contract.get("channel_order", "")),
                    pixel_range=tuple(float(v) for v in contract.get("pixel_range", (0.0, 255.0))),
                    preprocessing_inside=str(contract.get("preprocessing_inside", "")),
                ),
                outputs=tuple(_output(o) for o in outputs),
                source=dict(document.get("source") or {}),
                entry=document.get("entry"),
                tools=dict(document.get("tools") or {}),
                validation=list(document.get("validation") or []),
                created=str(document.get("created", "")),
                card_version=CARD_VERSION,
                inference_precision_hint=document.get("inference_precision_hint"),
                quantization=document.get("quantization"),
                mindir=document.get("mindir"),
                bf16_gate=document.get("bf16_gate"),
                derived_from=document.get("derived_from"),
                parts=document.get("parts"),
                size_policy=document.get("size_policy"),
                not_published=document.get("not_published"),
                extra={k: v for k, v in document.items() if k not in known},
            )
        except KeyError as exc:
            raise _refused(where, f"{exc.args[0]}: required field is missing") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise _refused(where, f"malformed field: {exc}") from None


def _refused(where: str, problem: str) -> CardError:
    return CardError(f"{where}: not a model card facezoo can read ({problem}); reconvert the model with "
                     "`facezoo convert NAME` to write a new one")


def _text(document: dict, key: str) -> str:
    value = document[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


def _output(data: dict) -> TensorDecl:
    attributes = {k: v for k, v in data.items() if k not in ("name", "shape", "dtype")}
    return TensorDecl(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data.get("dtype", "float32")),
                      attributes)


def _legacy_output(output: TensorDecl) -> dict:
    """The version 1 ``output`` field: name, shape and the attributes."""
    return {"name": output.name, "shape": list(output.shape), **output.attributes}


def _plain(value):
    """numpy scalars and paths in records (quantization results) as JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------- reading and writing


def read_card(folder: Path) -> ModelCard | None:
    """The card of a converted folder; None where there is none."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _refused(str(path), f"not readable JSON: {exc}") from None
    return ModelCard.from_json(document, str(path))


def card_beside(path: Path) -> ModelCard | None:
    """The card of the folder a converted file lies in."""
    return read_card(Path(path).parent)


def write_card(folder: Path, card: ModelCard) -> Path:
    """Write ``folder/model_card.json`` atomically."""
    text = json.dumps(card.as_json(), indent=2, default=_plain) + "\n"
    return write_bytes_atomic(Path(folder) / CARD_NAME, text.encode("utf-8"))


def folder_files(folder: Path) -> dict[str, dict]:
    """sha256 and size of every file of a converted folder but its card (and hidden files)."""
    return {path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in sorted(Path(folder).iterdir())
            if path.is_file() and path.name != CARD_NAME and not path.name.startswith(".")}


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def new_card(folder: Path, spec: ModelSpec, precision: str, sources: list[Path], validation: list[dict],
             original: dict | None = None, **fields) -> ModelCard:
    """The card of a folder just converted from ``spec``: its files as they are now, the converted
    contract, where the original came from, the tools and the validation records.

    ``original`` describes where the original file lives when it is not in a download folder
    (``convert --onnx FILE``): `facezoo check` finds it there. ``fields`` are the precision's own
    (an INT8 folder's quantization record, a BF16 folder's inference hint and gate).
    """
    channels, height, width = spec.input.channels, spec.input.height, spec.input.width
    if fields.get("parts"):  # a model of several nets: the card's input is its first net's
        _, channels, height, width = next(iter(fields["parts"].values()))["input_shape"]
    inside = []
    if spec.input.channels == 3 and spec.input.channel_order != spec.converted.channel_order:
        inside.append(f"{spec.converted.channel_order} → {spec.input.channel_order} channel swap")
    if spec.input.normalization == "outside":
        inside.append(f"normalization (x - {spec.input.mean}) / {spec.input.std}")
    if spec.input.layout != "NCHW":
        inside.append(f"NCHW → {spec.input.layout} transpose")
    return ModelCard(
        model=spec.name,
        architecture=spec.architecture,
        precision=precision,
        task=spec.task_type,
        files=folder_files(folder),
        input=CardInput(spec.converted.input_name, (-1, channels, height, width), "NCHW", "float32",
                        spec.converted.channel_order, tuple(spec.converted.pixel_range),
                        (", ".join(inside) + " inside the model") if inside else "none needed"),
        outputs=task_for(spec).outputs(spec),
        source={
            "framework": spec.framework,
            "files": {path.name: sha256_file(path) for path in sources},
            "original_input": {
                "channel_order": spec.input.channel_order,
                "layout": spec.input.layout,
                "normalization": spec.input.normalization,
                "mean": spec.input.mean,
                "std": spec.input.std,
            },
            **({"original": original} if original else {}),
        },
        entry=dump_spec(spec),
        tools=tool_versions(),
        validation=validation,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **fields,
    )


def converted_entry(converted_dir: Path, model: str) -> tuple[ModelSpec, Path | None] | None:
    """The registry entry a converted folder was made from, and where its original lives when
    that is not a download folder (``convert --onnx FILE``); None if no card records one."""
    folder = Path(converted_dir) / model
    for card_folder in sorted(folder.iterdir()) if folder.is_dir() else []:
        card = read_card(card_folder) if card_folder.is_dir() else None
        if card is None or card.entry is None:
            continue
        return card.spec(str(card_folder / CARD_NAME)), card.original_path
    return None


__all__ = ["CARD_NAME", "CARD_VERSION", "CardError", "CardInput", "ModelCard", "card_beside", "converted_entry",
           "folder_files", "new_card", "read_card", "tool_versions", "write_card"]
