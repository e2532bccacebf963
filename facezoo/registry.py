"""The model registry: model_zoo.yml loaded into typed, validated specs.

One table drives everything: the downloader, the converters, the checker and the
benchmarks read a model's facts from its entry here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from facezoo.errors import FacezooError, RegistryError
from facezoo.formats import FORMATS
from facezoo.gates import GATES, default_cosine_thresholds
from facezoo.tasks import TASKS

PACKAGED_ZOO = Path(__file__).with_name("model_zoo.yml")
ZOO_ENV = "FACEZOO_ZOO"

CHANNEL_ORDERS = ("RGB", "BGR", "GRAY")
#: Archives the downloader unpacks (facezoo.downloader.unpack, by the same rules for each).
ARCHIVE_KINDS = ("zip", "tar", "tar.gz")
LAYOUTS = ("NCHW", "NHWC")
#: Every precision facezoo converts to (one per accuracy gate); FP32/FP16 by default, INT8 and BF16
#: (made from the FP32 artifacts, see facezoo.quantization) when asked for.
PRECISIONS = tuple(GATES)
DEFAULT_PRECISIONS = ("FP32", "FP16")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model as published: where it lives and what it must hash to."""

    name: str
    sha256: str | None = None  # None only for files a user supplies by hand (no sources)
    size: int | None = None
    sources: list[str] = field(default_factory=list)
    unpack: str | None = None  # one of ARCHIVE_KINDS: extract into the model folder after verification
    members: list[str] = field(default_factory=list)  # paths an archive must yield

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.sha256 is None:
            if self.sources:
                problems.append(("sha256", "required for a file with sources"))
        elif not _SHA256.match(self.sha256):
            problems.append(("sha256", "expected 64 hex characters (lower case)"))
        if "/" in self.name or "\\" in self.name or self.name in ("", ".", ".."):
            problems.append(("name", "must be a plain file name, without folders"))
        if self.size is not None and self.size < 0:
            problems.append(("size", "must not be negative"))
        if self.unpack is not None and self.unpack not in ARCHIVE_KINDS:
            problems.append(("unpack", f"expected one of {', '.join(ARCHIVE_KINDS)}"))
        return problems


@dataclass(frozen=True)
class InputContract:
    """What the ORIGINAL network expects: the upstream preprocessing, spelled out.

    ``shape`` is in the order of ``layout`` (NHWC: N, H, W, C), as the original file declares it.
    ``normalization: inside`` means the original graph normalizes raw pixels itself (mean and
    std then only document it; they may be omitted).
    """

    shape: list[int]
    channel_order: str
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    layout: str = "NCHW"
    name: str = "data"
    normalization: str = "outside"  # "outside": the caller normalizes; "inside": the graph does
    #: the file fixes H×W but its graph runs at any size (YuNet: multiples of 32): converted artifacts
    #: take any H×W; ``shape`` then names the size the file declares
    dynamic_size: bool = False
    #: the original takes images with H and W swapped (MTCNN: Caffe weights); the converted graph swaps
    transpose_hw: bool = False

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.layout not in LAYOUTS:
            problems.append(("layout", f"expected one of {', '.join(LAYOUTS)}"))
        order = "N,H,W,C" if self.layout == "NHWC" else "N,C,H,W"
        if len(self.shape) != 4 or any(d <= 0 for d in self.shape):
            problems.append(("shape", f"expected 4 positive dimensions {order}"))
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(("channel_order", f"expected one of {', '.join(CHANNEL_ORDERS)}"))
        channels = self.channels if len(self.shape) == 4 else 0
        if self.channel_order == "GRAY" and channels != 1:
            problems.append(("shape", "GRAY input must have 1 channel"))
        if self.channel_order in ("RGB", "BGR") and channels != 3:
            problems.append(("shape", f"{self.channel_order} input must have 3 channels"))
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, channels):
                problems.append((key, f"expected 1 or {channels} values"))
        if any(s == 0 for s in self.std):
            problems.append(("std", "must not contain 0"))
        if self.normalization not in ("outside", "inside"):
            problems.append(("normalization", "expected 'outside' or 'inside'"))
        return problems

    @property
    def height(self) -> int:
        return self.shape[1] if self.layout == "NHWC" else self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[2] if self.layout == "NHWC" else self.shape[3]

    @property
    def channels(self) -> int:
        return self.shape[3] if self.layout == "NHWC" else self.shape[1]

    @property
    def batch(self) -> int:
        """The batch the registry entry declares (1 for most; a fixed-batch export may say 2)."""
        return self.shape[0]


@dataclass(frozen=True)
class OutputContract:
    """Which output of the original network is the embedding (recognition; a detector's heads are
    its parts' ``outputs``)."""

    dim: int = 0
    name: str = "embedding"  # the original graph's name for it, where it has one
    index: int = 0  # position among the network's outputs
    l2_normalized: bool = False


@dataclass(frozen=True)
class ConvertedContract:
    """What every converted artifact takes and gives: raw pixels in, embedding out."""

    channel_order: str = "BGR"
    input_name: str = "data"
    output_name: str = "embedding"
    pixel_range: list[float] = field(default_factory=lambda: [0.0, 255.0])

    def validate(self) -> list[tuple[str, str]]:
        if self.channel_order not in ("BGR", "GRAY"):
            return [("channel_order", "converted models take BGR or GRAY")]
        return []


@dataclass(frozen=True)
class Conversion:
    """How the converter turns the published files into artifacts."""

    checkpoint: str | None = None  # MindSpore: the .ckpt file name among `files`
    symbol: str | None = None  # MXNet: path of the symbol json inside the model folder
    params: str | None = None  # MXNet: path of the .params file inside the model folder
    output_node: str | None = None  # MXNet: graph node whose output is the embedding
    model: str | None = None  # ONNX: path of the .onnx file inside the model folder
    input: str | None = None  # ONNX: the graph input to feed, when the graph has several
    output: str | None = None  # ONNX: the graph output that is the embedding, when it has several
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    precisions: list[str] = field(default_factory=lambda: list(DEFAULT_PRECISIONS))
    opset: int = 17

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        for fmt in self.formats:
            if fmt not in FORMATS:
                problems.append(("formats", f"unknown format {fmt!r}; expected {', '.join(FORMATS)}"))
        for precision in self.precisions:
            if precision not in PRECISIONS:
                problems.append(("precisions", f"unknown precision {precision!r}"))
        if not 11 <= self.opset <= 21:
            problems.append(("opset", "expected an ONNX opset between 11 and 21"))
        return problems


@dataclass(frozen=True)
class Part:
    """One net of a model that runs several (MTCNN: P-, R- and O-Net; a one-net detector has one).

    Each part becomes one artifact per format and precision, named by :meth:`ModelSpec.artifact_stem`;
    its raw outputs keep the original's names.
    """

    name: str
    model: str  # ONNX: path of the part's .onnx file inside the model folder
    input_shape: list[int]  # as the part's file declares it, in input.layout order
    outputs: list[str]  # the raw heads, by the original graph's names
    input: str | None = None  # the graph input to feed, when the graph has several
    #: False: the file's outputs have no batch axis (rows of its one image, as SCRFD's det_10g):
    #: the original runs one image at a time and the converted graph gets the batch axis
    outputs_batched: bool = True

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if not _NAME.match(self.name):
            problems.append(("name", "letters, digits, '.', '_' and '-' only"))
        if len(self.input_shape) != 4 or any(d <= 0 for d in self.input_shape):
            problems.append(("input_shape", "expected 4 positive dimensions"))
        if not self.outputs:
            problems.append(("outputs", "name at least one output of the graph"))
        return problems


@dataclass(frozen=True)
class DetectionSettings:
    """A detector's decoding defaults; None: the architecture's own (facezoo.tasks.detectors)."""

    score_threshold: float | None = None
    nms_threshold: float | None = None
    top_k: int | None = None
    min_face: int | None = None  # MTCNN's smallest face in pixels

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        for key in ("score_threshold", "nms_threshold"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                problems.append((key, "expected a value in [0, 1]"))
        for key in ("top_k", "min_face"):
            value = getattr(self, key)
            if value is not None and value < 1:
                problems.append((key, "expected a positive integer"))
        return problems


@dataclass(frozen=True)
class PublishedAccuracy:
    """A number the model's authors published, with where and how it was measured."""

    dataset: str
    metric: str
    value: float
    source: str = ""
    protocol: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    name: str
    description: str
    task_type: str
    framework: str
    architecture: str
    license: str
    files: list[ModelFile]
    input: InputContract
    output: OutputContract = field(default_factory=OutputContract)
    converted: ConvertedContract = field(default_factory=ConvertedContract)
    conversion: Conversion = field(default_factory=Conversion)
    accuracy: list[PublishedAccuracy] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    gflops: float | None = None
    mparams: float | None = None
    verification_threshold: float | None = None  # cosine threshold for same/different
    # min cosine to the original per precision; a key the entry leaves out takes facezoo.gates' value
    check_thresholds: dict[str, float] = field(default_factory=default_cosine_thresholds)
    how_to_obtain: str = ""  # for files without a public URL
    parts: list[Part] = field(default_factory=list)  # a model of several nets (detectors); empty: one graph
    detection: DetectionSettings = field(default_factory=DetectionSettings)

    def __post_init__(self) -> None:
        given = dict(self.check_thresholds)
        object.__setattr__(self, "_given_thresholds", given)  # what the entry itself says
        object.__setattr__(self, "check_thresholds", {**default_cosine_thresholds(), **given})

    def thresholds(self, architecture: dict[str, float] | None = None) -> dict[str, float]:
        """Min cosine per precision: the entry's own, else its architecture's, else the gates'.

        The architecture's thresholds come from its source (``facezoo.sources.thresholds_for``
        asks it and calls this), so reading the registry never loads a network.
        """
        return {**default_cosine_thresholds(), **(architecture or {}), **self._given_thresholds}

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if not _NAME.match(self.name):
            problems.append(("name", "letters, digits, '.', '_' and '-' only"))
        if self.task_type not in TASKS:
            problems.append(("task_type", f"expected one of {', '.join(TASKS)}"))
        if self.framework not in FRAMEWORKS:
            problems.append(("framework", f"expected one of {', '.join(FRAMEWORKS)}"))
        if not self.files:
            problems.append(("files", "at least one file is required"))
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            problems.append(("files", "file names must be unique"))
        if self.framework in FRAMEWORKS:
            rules = FRAMEWORKS[self.framework]
            problems += rules.check(self)
            if self.input.layout in LAYOUTS and self.input.layout not in rules.layouts:
                problems.append(("input.layout", f"{self.framework} models take {', '.join(rules.layouts)} input"))
        for precision, threshold in self.check_thresholds.items():
            if precision not in GATES:
                problems.append((f"check_thresholds.{precision}", f"unknown precision; expected {', '.join(GATES)}"))
            elif not 0.0 < threshold <= 1.0:
                problems.append((f"check_thresholds.{precision}", "a cosine threshold must lie in (0, 1]"))
        if self.verification_threshold is not None and not -1.0 <= self.verification_threshold <= 1.0:
            problems.append(("verification_threshold", "a cosine threshold must lie in [-1, 1]"))
        part_names = [p.name for p in self.parts]
        if len(set(part_names)) != len(part_names):
            problems.append(("parts", "part names must be unique"))
        if self.task_type in TASKS:
            problems += TASKS[self.task_type].check_entry(self)
        if (self.input.channel_order == "GRAY") != (self.converted.channel_order == "GRAY"):
            problems.append(("converted.channel_order", "GRAY models stay GRAY, colour models become BGR"))
        if not all(f.sources for f in self.files) and not self.how_to_obtain:
            problems.append(("how_to_obtain", "required when a file has no sources"))
        return problems

    def artifact_stem(self, part: str = "") -> str:
        """The file name (without suffix) of one part's artifacts: the model's name for a model of
        one net, ``NAME-PART`` for each net of a model of several."""
        return self.name if len(self.parts) <= 1 or not part else f"{self.name}-{part}"

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise RegistryError(f"model {self.name!r} has no part {name!r}; its parts: "
                            f"{', '.join(p.name for p in self.parts) or 'none'}")

    def file(self, name: str) -> ModelFile:
        for model_file in self.files:
            if model_file.name == name:
                return model_file
        raise RegistryError(f"model {self.name!r} has no file {name!r}")

    def matches(self, pattern: str) -> bool:
        pattern = pattern.lower()
        return any(fnmatch.fnmatchcase(n.lower(), pattern) for n in [self.name, *self.aliases])


def _mindspore_entry(spec: ModelSpec) -> list[tuple[str, str]]:
    if spec.conversion.checkpoint not in [f.name for f in spec.files]:
        return [("conversion.checkpoint", "must name one of the model's files")]
    return []


def _mxnet_entry(spec: ModelSpec) -> list[tuple[str, str]]:
    return [(f"conversion.{key}", "required for MXNet models")
            for key in ("symbol", "params", "output_node") if not getattr(spec.conversion, key)]


def _onnx_entry(spec: ModelSpec) -> list[tuple[str, str]]:
    members = [m for f in spec.files for m in f.members]
    models = [(f"parts[{i}].model", p.model) for i, p in enumerate(spec.parts)] or [("conversion.model", spec.conversion.model)]
    for field_name, model in models:
        if not model:
            return [(field_name, "required for ONNX models: the .onnx file to convert")]
        if model not in [f.name for f in spec.files] and model not in members:
            return [(field_name, "must name one of the model's files or a member of its archive")]
        if not model.endswith(".onnx"):
            return [(field_name, "expected a .onnx file")]
    return []


@dataclass(frozen=True)
class FrameworkRules:
    """What an entry of one source framework must say; the framework's Source (facezoo.sources)
    registers under the same name and is refused for a name not in this table."""

    layouts: tuple[str, ...]  # the input layouts an original of this framework may have
    check: Callable[[ModelSpec], list[tuple[str, str]]]  # (field, problem) for what the framework needs


FRAMEWORKS: dict[str, FrameworkRules] = {
    "mindspore": FrameworkRules(("NCHW",), _mindspore_entry),
    "mxnet": FrameworkRules(("NCHW",), _mxnet_entry),
    "onnx": FrameworkRules(("NCHW", "NHWC"), _onnx_entry),
}


@dataclass(frozen=True)
class Zoo:
    """All models of one registry file."""

    path: Path
    models: list[ModelSpec]

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def get(self, name: str) -> ModelSpec:
        for model in self.models:
            if name.lower() in [n.lower() for n in [model.name, *model.aliases]]:
                return model
        raise RegistryError(
            f"{self.path}: no model named {name!r}; known models: {', '.join(self.names())}"
        )

    def select(self, patterns: str | list[str]) -> list[ModelSpec]:
        """Models matching comma-separated fnmatch patterns, in registry order."""
        if isinstance(patterns, str):
            patterns = [patterns]
        wanted = [p.strip() for item in patterns for p in item.split(",") if p.strip()]
        chosen: list[ModelSpec] = []
        for pattern in wanted:
            hits = [m for m in self.models if m.matches(pattern)]
            if not hits:
                raise RegistryError(
                    f"{self.path}: no model matches {pattern!r}; known models: {', '.join(self.names())}"
                )
            chosen.extend(m for m in hits if m not in chosen)
        return chosen


def default_zoo_path() -> Path:
    return Path(os.environ.get(ZOO_ENV) or PACKAGED_ZOO)


def load_zoo(path: str | os.PathLike | None = None) -> Zoo:
    """Read and validate a registry file; every problem names file, model and field."""
    zoo_path = Path(path) if path else default_zoo_path()
    try:
        text = zoo_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{zoo_path}: cannot read registry: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{zoo_path}: not valid YAML: {exc}") from None
    return parse_zoo(document, zoo_path)


def published_hashes(spec: ModelSpec) -> dict[str, str | None]:
    """sha256 of each of the model's files as the packaged registry publishes them.

    A registry copy (stand-ins, a mirror) may pin other hashes; a model the packaged registry
    does not know keeps its own.
    """
    try:
        published = load_zoo(PACKAGED_ZOO).get(spec.name)
    except FacezooError:
        published = spec
    return {f.name: f.sha256 for f in published.files}


def parse_zoo(document: Any, zoo_path: Path) -> Zoo:
    where = str(zoo_path.name if zoo_path == PACKAGED_ZOO else zoo_path)
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise RegistryError(f"{where}: expected a mapping with a 'models' list")
    unknown = set(document) - {"version", "models"}
    if unknown:
        raise RegistryError(f"{where}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    models = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(document["models"]):
        label = entry.get("name") if isinstance(entry, dict) else None
        context = f"{where}: model {label!r}" if label else f"{where}: models[{index}]"
        spec = _build(ModelSpec, entry, "", context)
        problems = _validate_tree(spec, "")
        if problems:
            field_path, message = problems[0]
            raise RegistryError(f"{context}: {field_path}: {message}")
        for alias in {n.lower() for n in [spec.name, *spec.aliases]}:
            if alias in seen:
                raise RegistryError(f"{context}: name {alias!r} is already used by model {seen[alias]!r}")
            seen[alias] = spec.name
        models.append(spec)
    return Zoo(path=zoo_path, models=models)


def _validate_tree(obj: Any, prefix: str) -> list[tuple[str, str]]:
    """Run each dataclass's validate() and prefix its field paths."""
    problems: list[tuple[str, str]] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            if dataclasses.is_dataclass(item):
                sub = f"{prefix}{f.name}" + (f"[{i}]" if i is not None else "") + "."
                problems += _validate_tree(item, sub)
    if hasattr(obj, "validate"):
        problems = [(prefix + p, m) for p, m in obj.validate()] + problems
    return problems


def _build(cls: type, data: Any, path: str, context: str) -> Any:
    """Construct a dataclass from plain YAML data, checking keys and types."""
    if not isinstance(data, dict):
        raise RegistryError(f"{context}: {path or 'entry'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise RegistryError(f"{context}: {path}{sorted(unknown)[0]}: unknown key")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RegistryError(f"{context}: {path}{name}: required key is missing")
            continue
        kwargs[name] = _coerce(hints[name], data[name], f"{path}{name}", context)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, path: str, context: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path, context)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{path}.", context)
    if origin is list:
        if not isinstance(value, list):
            raise RegistryError(f"{context}: {path}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{path}[{i}]", context) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RegistryError(f"{context}: {path}: expected a mapping, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, f"{path}.{k}", context) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RegistryError(f"{context}: {path}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RegistryError(f"{context}: {path}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RegistryError(f"{context}: {path}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise RegistryError(f"{context}: {path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"registry field type {hint!r} is not supported")  # programming error


def spec_from_dict(entry: Any, context: str) -> ModelSpec:
    """One entry from plain data (a model card's copy of it), validated like a registry file's."""
    spec = _build(ModelSpec, entry, "", context)
    problems = _validate_tree(spec, "")
    if problems:
        field_path, message = problems[0]
        raise RegistryError(f"{context}: {field_path}: {message}")
    return spec


def dump_spec(spec: ModelSpec) -> dict[str, Any]:
    """The entry as plain data (for `facezoo info --json`)."""
    return dataclasses.asdict(spec)
