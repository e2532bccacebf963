"""Reading MindSpore checkpoints and loading their backbone into a facezoo network.

Upstream checkpoints are training checkpoints, in several layouts:

- bare parameter names (arcface, LightCNN);
- every key prefixed ``network.`` (sphereface), optimizer state as ``moments.network.*``;
- backbone keys prefixed ``_backbone.`` (mindface), with the head's parameters unprefixed; for r100
  the head's ``fc.weight`` (classes x 512) has the same stripped name as the backbone's
  ``fc.weight`` (512 x 25088); for MobileFaceNet the backbone keys use the attribute path
  (``layers.N...``) while the bare network names its parameters ``0.layers.N...``;
- optimizer state (``moments.*``, ``accum.*``, ``stat.*``, ``learning_rate``, ``global_step``,
  ``momentum``, loss-scale scalars) and training heads (``mp_weight``, ``fc6.weight``, ``fc2.*``).

``load_backbone`` strips the prefixes explicitly, matches every network parameter by name AND
shape (preferring ``_backbone.`` over ``network.`` over bare keys), fills the network and returns
a ``LoadReport`` of what it loaded and what it ignored, and why. A missing or mis-shaped backbone
parameter is a ``CheckpointError`` naming the key and both shapes.

``scan_checkpoint`` walks the file's protobuf wire format (record headers; tensor bytes are not
read) and ``read_checkpoint`` reads the tensors itself from the same walk, never through
``mindspore.load_checkpoint``: MindSpore 2.10 parses some malformed files without complaint (a
tensor shorter than its dims say), crashes the process on others (negative dims), and refuses a
checkpoint larger than the machine's *free* memory, page cache not counted (seen here: a 437 MB
stand-in refused with 18 GB available, right after downloading it filled the cache).
"""

from __future__ import annotations

import math
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.errors import CheckpointError

# --------------------------------------------------------------------------------------------
# Structural scan of the checkpoint protobuf:
#   Checkpoint { repeated Value value = 1; }
#   Value { string tag = 1; TensorProto tensor = 2; MapTensorProto maptensor = 3; }
#   TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3; }
# MindSpore writes a large tensor as several consecutive Values with the same tag and full dims,
# each holding a slice of the bytes, and may append "crc_num" + 10 bytes.

_ITEMSIZE: dict[str, float | None] = {
    "Int8": 1, "UInt8": 1, "Int16": 2, "UInt16": 2, "Int32": 4, "UInt32": 4, "Int64": 8, "UInt64": 8,
    "Float16": 2, "Float32": 4, "Float64": 8, "Bool": 1, "BFloat16": 2, "Int4": 0.5, "str": None,
}
_CRC_TRAILER = 17
_NUMPY_DTYPE = {
    "Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
    "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64, "Float16": np.float16, "Float32": np.float32,
    "Float64": np.float64, "Bool": np.bool_,
}


@dataclass(frozen=True)
class CheckpointEntry:
    """One tensor of a checkpoint as its file describes it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # MindSpore's tensor_type string, e.g. "Float32"
    nbytes: int
    chunks: tuple[tuple[int, int], ...] = ()  # (start, stop) of its bytes in the file, in order


class _Malformed(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _Malformed("truncated varint", start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes", start)


def _fields(buf, pos: int, end: int):
    """Yield (field number, wire type, value or (start, stop)) for the message in buf[pos:end]."""
    while pos < end:
        at = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0", at)
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, at
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f"field {number} runs past the end of its message ({length} bytes)", at)
            yield number, wire, (pos, pos + length), at
            pos += length
        elif wire == 1:
            pos += 8
            if pos > end:
                raise _Malformed("truncated fixed64", at)
            yield number, wire, None, at
        elif wire == 5:
            pos += 4
            if pos > end:
                raise _Malformed("truncated fixed32", at)
            yield number, wire, None, at
        else:
            raise _Malformed(f"invalid wire type {wire}", at)


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_tensor(buf, start: int, stop: int) -> tuple[list[int], str | None, list[tuple[int, int]]]:
    dims: list[int] = []
    dtype = None
    content: list[tuple[int, int]] = []
    for number, wire, value, at in _fields(buf, start, stop):
        if number == 1:
            if wire == 0:
                dims.append(_int64(value))
            elif wire == 2:  # packed
                pos, end = value
                while pos < end:
                    item, pos = _varint(buf, pos, end)
                    dims.append(_int64(item))
            else:
                raise _Malformed("dims has the wrong wire type", at)
        elif number == 2:
            if wire != 2:
                raise _Malformed("tensor_type has the wrong wire type", at)
            try:
                dtype = bytes(buf[value[0]:value[1]]).decode("ascii")
            except UnicodeDecodeError:
                raise _Malformed("tensor_type is not text", at) from None
        elif number == 3:
            if wire != 2:
                raise _Malformed("tensor_content has the wrong wire type", at)
            content.append(value)
    return dims, dtype, content


def _scan(buf, size: int) -> list[CheckpointEntry]:
    end = size
    if size >= _CRC_TRAILER and bytes(buf[size - _CRC_TRAILER:size - 10]) == b"crc_num":
        end = size - _CRC_TRAILER
    entries: list[CheckpointEntry] = []
    seen: set[str] = set()
    group: dict | None = None  # the tensor being accumulated over consecutive slices

    def close(group):
        if group is None:
            return
        itemsize = _ITEMSIZE[group["dtype"]]
        dims = group["dims"]
        if itemsize is not None:
            count = math.prod(dims) if dims not in ([], [0]) else 1
            expected = math.ceil(count * itemsize)
            allowed = {expected, 0} if dims == [0] else {expected}
            if group["bytes"] not in allowed:
                raise _Malformed(
                    f"tensor {group['name']!r} declares shape {tuple(dims)} {group['dtype']} "
                    f"({expected} bytes) but holds {group['bytes']} bytes", group["at"])
        shape = () if dims == [0] and group["bytes"] != 0 else tuple(dims)
        entries.append(CheckpointEntry(group["name"], shape, group["dtype"], group["bytes"], tuple(group["chunks"])))

    for number, wire, value, at in _fields(buf, 0, end):
        if number != 1 or wire != 2:
            raise _Malformed(f"unexpected top-level field {number} (wire type {wire})", at)
        tag = None
        tensor = None
        has_map = False
        for vnumber, vwire, vvalue, vat in _fields(buf, value[0], value[1]):
            if vnumber == 1:
                if vwire != 2:
                    raise _Malformed("tag has the wrong wire type", vat)
                try:
                    tag = bytes(buf[vvalue[0]:vvalue[1]]).decode("utf-8")
                except UnicodeDecodeError:
                    raise _Malformed("tag is not UTF-8 text", vat) from None
            elif vnumber == 2:
                if vwire != 2:
                    raise _Malformed("tensor has the wrong wire type", vat)
                tensor = vvalue
            elif vnumber == 3:
                has_map = True
        if not tag:
            raise _Malformed("record without a parameter name", at)
        if tensor is None:
            if not has_map:
                raise _Malformed(f"record {tag!r} holds no tensor", at)
            continue  # a map parameter: not ours to check
        dims, dtype, chunks = _parse_tensor(buf, tensor[0], tensor[1])
        content = sum(stop - start for start, stop in chunks)
        if dtype not in _ITEMSIZE:
            raise _Malformed(f"tensor {tag!r} has unknown type {dtype!r}", at)
        if any(d < 0 for d in dims):
            raise _Malformed(f"tensor {tag!r} has negative dimensions {tuple(dims)}", at)
        if group is not None and group["name"] == tag:
            if group["dims"] != dims or group["dtype"] != dtype:
                raise _Malformed(f"slices of tensor {tag!r} disagree on shape or type", at)
            group["bytes"] += content
            group["chunks"] += chunks
            continue
        close(group)
        if tag in seen:
            raise _Malformed(f"parameter {tag!r} appears twice", at)
        seen.add(tag)
        group = {"name": tag, "dims": dims, "dtype": dtype, "bytes": content, "chunks": list(chunks), "at": at}
    close(group)
    return entries


def _check_file(path: Path) -> int:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    return size


def scan_checkpoint(path: str | os.PathLike) -> list[CheckpointEntry]:
    """The tensors a checkpoint file holds (name, shape, type), checking its structure.

    Reads only record headers. Raises ``CheckpointError`` naming the file for an empty,
    truncated or foreign file.
    """
    path = Path(path)
    size = _check_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
                raise CheckpointError(f"{path}: is a zip archive, not a MindSpore checkpoint (.ckpt protobuf)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                entries = _scan(buf, size)
    except _Malformed as exc:
        raise CheckpointError(
            f"{path}: not a valid MindSpore checkpoint (truncated or corrupt?): {exc} at byte {exc.offset}"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None
    if not entries:
        raise CheckpointError(f"{path}: checkpoint holds no parameters")
    return entries


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint as numpy arrays, in file order (structure checked first).

    Read from the file's own bytes, as MindSpore lays them out (little-endian, C order; strings as
    UTF-8); types numpy has no dtype for (BFloat16, Int4) and map parameters become placeholders
    that the load report lists.
    """
    path = Path(path)
    entries = scan_checkpoint(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for entry in entries:
                arrays[entry.name] = _entry_array(buf, entry)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None
    return arrays


def _entry_array(buf, entry: CheckpointEntry) -> np.ndarray:
    data = b"".join(bytes(buf[start:stop]) for start, stop in entry.chunks)
    if entry.dtype == "str":
        return np.array(data.decode("utf-8", errors="replace"))
    dtype = _NUMPY_DTYPE.get(entry.dtype)
    if dtype is None:
        return np.array(None, dtype=object)
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(entry.shape)


# --------------------------------------------------------------------------------------------
# Matching a checkpoint to a network

#: key prefixes a backbone parameter may carry, best first
BACKBONE_PREFIXES = ("_backbone.", "network.")

_OPTIMIZER_PREFIXES = ("moments.", "accum.", "stat.", "adam_m.", "adam_v.", "mean_grad.", "mean_square.")
_OPTIMIZER_NAMES = frozenset({
    "learning_rate", "global_step", "momentum", "current_iterator_step", "last_overflow_iterator_step",
    "scale_sense", "epoch_num", "step_num", "loss_scale", "beta1_power", "beta2_power", "cur_step_num",
    "cur_epoch_num", "batch_num", "weight_decay",
})

OPTIMIZER_STATE = "optimizer_state"
TRAINING_HEAD = "training_head"
OTHER = "other"


def is_optimizer_state(key: str) -> bool:
    """Whether a checkpoint key is optimizer / loss-scale state rather than a network weight."""
    if key.startswith(_OPTIMIZER_PREFIXES):
        return True
    stripped = _strip(key)[1]
    return stripped in _OPTIMIZER_NAMES


def _strip(key: str) -> tuple[int, str]:
    """(rank of the prefix, key without it); bare keys rank last."""
    for rank, prefix in enumerate(BACKBONE_PREFIXES):
        if key.startswith(prefix):
            return rank, key[len(prefix):]
    return len(BACKBONE_PREFIXES), key


@dataclass
class LoadReport:
    """What ``load_backbone`` did."""

    path: Path
    architecture: str
    loaded: int = 0
    layout: str = "bare"  # "bare", "network.", "_backbone." (the prefix most backbone keys carried)
    naming: str = "parameter"  # "parameter" (Parameter.name) or "attribute" (attribute path) or "mixed"
    ignored: dict[str, list[str]] = field(
        default_factory=lambda: {OPTIMIZER_STATE: [], TRAINING_HEAD: [], OTHER: []}
    )
    left_initialised: list[str] = field(default_factory=list)  # optional network params not in the file
    key_map: dict[str, str] = field(default_factory=dict)  # network Parameter.name -> checkpoint key

    @property
    def optimizer_state(self) -> list[str]:
        return self.ignored[OPTIMIZER_STATE]

    @property
    def training_head(self) -> list[str]:
        return self.ignored[TRAINING_HEAD]

    @property
    def other(self) -> list[str]:
        return self.ignored[OTHER]

    def summary(self) -> str:
        parts = [f"loaded {self.loaded} parameters ({self.layout} layout, {self.naming} names)"]
        labels = {OPTIMIZER_STATE: "optimizer state", TRAINING_HEAD: "training head", OTHER: "other"}
        for reason, keys in self.ignored.items():
            if keys:
                shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
                parts.append(f"ignored {len(keys)} {labels[reason]} key(s): {shown}")
        if self.left_initialised:
            parts.append(
                "not in the checkpoint, left initialised (not used by the embedding): "
                + ", ".join(self.left_initialised)
            )
        return "; ".join(parts)


def match_parameters(net, arrays: dict[str, np.ndarray], *, architecture: str,
                     source: str | os.PathLike = "<checkpoint>") -> tuple[dict[str, np.ndarray], LoadReport]:
    """Map checkpoint arrays onto ``net``'s parameters: ({Parameter.name: array}, report).

    Raises ``CheckpointError`` for a missing or mis-shaped backbone parameter.
    """
    from facezoo.sources.mindspore.networks import architecture as architecture_spec
    from facezoo.sources.mindspore.networks import parameter_table

    source = Path(source)
    report = LoadReport(path=source, architecture=architecture)
    table = parameter_table(net)
    spec = architecture_spec(architecture)
    optional = set(spec.optional_params)
    heads = set(spec.training_heads)

    candidates: dict[str, list[tuple[int, str]]] = {}
    for key in arrays:
        if is_optimizer_state(key):
            report.ignored[OPTIMIZER_STATE].append(key)
            continue
        rank, stripped = _strip(key)
        candidates.setdefault(stripped, []).append((rank, key))

    # the names each network parameter answers to; a name claimed by two parameters is not used
    owners: dict[str, set[str]] = {}
    for pname, path, _ in table:
        for name in {pname, path}:
            owners.setdefault(name, set()).add(pname)

    chosen: dict[str, np.ndarray] = {}
    used: set[str] = set()
    prefix_ranks: list[int] = []
    namings: set[str] = set()
    missing: list[tuple[str, str, tuple[int, ...]]] = []
    for pname, path, shape in table:
        names = [pname] + ([path] if path != pname and owners.get(path) == {pname} else [])
        found = sorted(
            ((rank, key, name) for name in names for rank, key in candidates.get(name, [])),
            key=lambda item: (item[0], item[2] != pname),
        )
        fitting = [item for item in found if tuple(np.shape(arrays[item[1]])) == shape]
        if not fitting:
            if pname in optional:
                report.left_initialised.append(pname)
                continue
            if found:
                key = found[0][1]
                raise CheckpointError(
                    f"{source}: parameter {key!r} has shape {tuple(np.shape(arrays[key]))} in the checkpoint, "
                    f"but the {architecture} network's {pname!r} needs shape {shape}"
                )
            missing.append((pname, path, shape))
            continue
        rank, key, name = fitting[0]
        value = np.asarray(arrays[key])
        if value.dtype.kind != "f":
            raise CheckpointError(
                f"{source}: parameter {key!r} has type {value.dtype}, but the {architecture} network's "
                f"{pname!r} needs floating point values"
            )
        if not np.isfinite(value).all():
            raise CheckpointError(f"{source}: parameter {key!r} holds NaN or infinite values")
        chosen[pname] = np.ascontiguousarray(value, dtype=np.float32)
        report.key_map[pname] = key
        used.add(key)
        prefix_ranks.append(rank)
        if name == pname == path:
            continue
        namings.add("parameter" if name == pname else "attribute")

    if missing:
        pname, path, shape = missing[0]
        also = f" or {path!r}" if path != pname else ""
        more = f" ({len(missing)} network parameters are missing in all)" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{source}: the checkpoint has no parameter {pname!r}{also} (shape {shape}) that the {architecture} "
            f"network needs{more}; looked for the key bare and with the prefixes {', '.join(BACKBONE_PREFIXES)}"
        )

    if prefix_ranks:
        common = max(set(prefix_ranks), key=prefix_ranks.count)
        report.layout = BACKBONE_PREFIXES[common] if common < len(BACKBONE_PREFIXES) else "bare"
    report.naming = "mixed" if len(namings) > 1 else (namings.pop() if namings else "parameter")
    prefixed_layout = report.layout != "bare"
    for key in arrays:
        if key in used or key in report.ignored[OPTIMIZER_STATE]:
            continue
        rank, stripped = _strip(key)
        if stripped in heads or (prefixed_layout and rank == len(BACKBONE_PREFIXES)):
            report.ignored[TRAINING_HEAD].append(key)
        else:
            report.ignored[OTHER].append(key)
    report.loaded = len(chosen)
    return chosen, report


def load_backbone(net, ckpt_path: str | os.PathLike, *, architecture: str) -> LoadReport:
    """Fill ``net`` (a facezoo network of ``architecture``) from a MindSpore checkpoint."""
    import mindspore as ms

    path = Path(ckpt_path)
    arrays = read_checkpoint(path)
    chosen, report = match_parameters(net, arrays, architecture=architecture, source=path)
    del arrays
    parameters = {name: ms.Parameter(ms.Tensor(value), name=name) for name, value in chosen.items()}
    not_loaded, _ = ms.load_param_into_net(net, parameters, strict_load=True)
    leftover = sorted(set(not_loaded) - set(report.left_initialised))
    if leftover:  # cannot happen unless MindSpore disagrees with the name table
        raise CheckpointError(f"{path}: MindSpore left network parameters unloaded: {', '.join(leftover[:5])}")
    for param in net.get_parameters():
        if param.name in chosen and tuple(param.shape) != chosen[param.name].shape:
            raise CheckpointError(f"{path}: parameter {param.name!r} did not take its checkpoint value")
    return report


__all__ = [
    "BACKBONE_PREFIXES",
    "CheckpointEntry",
    "LoadReport",
    "is_optimizer_state",
    "load_backbone",
    "match_parameters",
    "read_checkpoint",
    "scan_checkpoint",
]
