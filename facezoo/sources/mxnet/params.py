"""Reading and writing MXNet ``.params`` files (NDArray lists) without MXNet.

Layout (little-endian)::

    u64 0x112 (list magic) | u64 reserved | u64 count | count x record
    | u64 name count | name count x (u64 length, bytes)

Record versions:

* V2 ``0xF993FAC9`` / V3 ``0xF993FACA``: u32 magic, i32 storage type (0 = dense), i32 ndim,
  ndim x i64 dims, i32 dev_type, i32 dev_id, i32 type flag, raw C-order data.
* V1 ``0xF993FAC8``: like V2 without the storage type.
* pre-V1: the first u32 is ndim, followed by ndim x u32 dims, then context, type flag, data.

V3 records use NumPy shape semantics: ndim 0 is a scalar (one element). In the older versions
ndim 0 marks an "empty" NDArray that has no context, type or data; such a record cannot be
turned into an array and is reported as an error.

The reader is hardened against hostile files: every size, ndim and count is checked against
the bytes left in the file before anything is allocated, so a corrupt or malicious file ends in
:class:`MXNetFormatError` (naming file, byte offset and problem) and never in an allocation
larger than the file.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from facezoo.errors import FacezooError

__all__ = [
    "MXNetFormatError",
    "LIST_MAGIC",
    "V1_MAGIC",
    "V2_MAGIC",
    "V3_MAGIC",
    "TYPE_FLAGS",
    "load_params",
    "parse_params",
    "save_params",
    "dump_params",
    "split_arg_aux",
]


class MXNetFormatError(FacezooError):
    """An MXNet file (``.params`` or ``-symbol.json``) is malformed or unsupported.

    ``path`` is the file at fault (or None), ``offset`` the byte offset for binary files.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, offset: int | None = None):
        self.path = None if path is None else str(path)
        self.offset = offset
        self.reason = message
        prefix = ""
        if self.path is not None:
            prefix = f"{self.path}: "
        if offset is not None:
            prefix += f"at byte offset {offset}: "
        super().__init__(prefix + message)


LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA

#: MXNet type flag -> little-endian numpy dtype
TYPE_FLAGS: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
}
_FLAG_OF_DTYPE = {dt.newbyteorder("<"): flag for flag, dt in TYPE_FLAGS.items()}

_MAX_NDIM = 32
_VERSION_OF_MAGIC = {V1_MAGIC: 1, V2_MAGIC: 2, V3_MAGIC: 3}
_MAGIC_OF_VERSION = {1: V1_MAGIC, 2: V2_MAGIC, 3: V3_MAGIC}


class _Reader:
    """Bounds-checked little-endian cursor over a buffer."""

    def __init__(self, buf, path: str):
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.path = path

    def error(self, message: str, offset: int | None = None) -> MXNetFormatError:
        return MXNetFormatError(message, path=self.path, offset=self.pos if offset is None else offset)

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.left:
            raise self.error(f"truncated file: {what} needs {n} bytes but only {self.left} are left")

    def _unpack(self, fmt: str, n: int, what: str):
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return self._unpack("<I", 4, what)

    def i32(self, what: str) -> int:
        return self._unpack("<i", 4, what)

    def u64(self, what: str) -> int:
        return self._unpack("<Q", 8, what)

    def i64(self, what: str) -> int:
        return self._unpack("<q", 8, what)

    def read_bytes(self, n: int, what: str) -> bytes:
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw

    def read_array(self, dtype: np.dtype, count: int, dims: list[int], what: str) -> np.ndarray:
        """A native-endian copy of ``count`` items at the cursor; no view of the buffer survives."""
        nbytes = count * dtype.itemsize
        self.need(nbytes, what)
        native = dtype.newbyteorder("=")
        if count == 0:
            arr = np.empty(dims, dtype=native)
        else:
            view = None
            try:
                view = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
                arr = view.reshape(dims).astype(native, copy=True)
            finally:
                del view
        self.pos += nbytes
        return arr


def _read_record(r: _Reader, index: int) -> np.ndarray:
    start = r.pos
    first = r.u32(f"record {index} header")
    version = _VERSION_OF_MAGIC.get(first)
    if version is None:
        # pre-V1: the first u32 is ndim
        if first > _MAX_NDIM:
            raise r.error(
                f"record {index}: unknown NDArray magic 0x{first:08X} (not V1/V2/V3, and too large to be a "
                f"legacy ndim <= {_MAX_NDIM})",
                start,
            )
        ndim = first
        r.need(4 * ndim, f"record {index} shape ({ndim} u32 dims)")
        dims = [r.u32(f"record {index} dim") for _ in range(ndim)]
        if ndim == 0:
            raise r.error(f"record {index}: empty (shapeless) NDArray has no data and is not supported", start)
    else:
        if version >= 2:
            stype_at = r.pos
            stype = r.i32(f"record {index} storage type")
            if stype != 0:
                kind = {1: "row_sparse", 2: "csr"}.get(stype, "unknown")
                raise r.error(
                    f"record {index}: storage type {stype} ({kind}) is not dense; only dense arrays are supported",
                    stype_at,
                )
        ndim_at = r.pos
        ndim = r.i32(f"record {index} ndim")
        if ndim < 0 or ndim > _MAX_NDIM:
            if version == 3 and ndim == -1:
                raise r.error(f"record {index}: NDArray of unknown shape (ndim -1) has no data", ndim_at)
            raise r.error(f"record {index}: invalid ndim {ndim} (must be 0..{_MAX_NDIM})", ndim_at)
        if ndim == 0 and version < 3:
            raise r.error(f"record {index}: empty (shapeless) NDArray has no data and is not supported", ndim_at)
        r.need(8 * ndim, f"record {index} shape ({ndim} i64 dims)")
        dims = []
        for _ in range(ndim):
            dim_at = r.pos
            d = r.i64(f"record {index} dim")
            if d < 0:
                raise r.error(f"record {index}: negative dimension {d}", dim_at)
            dims.append(d)
    r.i32(f"record {index} dev_type")
    r.i32(f"record {index} dev_id")
    flag_at = r.pos
    flag = r.i32(f"record {index} type flag")
    dtype = TYPE_FLAGS.get(flag)
    if dtype is None:
        raise r.error(f"record {index}: unknown type flag {flag} (known: {sorted(TYPE_FLAGS)})", flag_at)
    count = 1
    for d in dims:
        count *= d
    nbytes = count * dtype.itemsize
    if nbytes > r.left:
        raise r.error(
            f"record {index}: shape {tuple(dims)} of {dtype.name} declares {nbytes} bytes of data but only "
            f"{r.left} bytes are left in the file",
        )
    # A zero-size array: its other dims are still bounded so numpy never sees an absurd shape.
    if count == 0:
        nonzero = 1
        for d in dims:
            nonzero *= max(d, 1)
        if nonzero * dtype.itemsize > max(r.size, 1) * 64:
            raise r.error(f"record {index}: absurd shape {tuple(dims)} for an empty array")
    data_at = r.pos
    try:
        return r.read_array(dtype, count, dims, f"record {index} data")
    except ValueError as exc:  # pragma: no cover - guarded above
        raise r.error(f"record {index}: cannot build array of shape {tuple(dims)}: {exc}", data_at) from None


def parse_params(buf, path: str | os.PathLike = "<bytes>") -> dict[str, np.ndarray]:
    """Parse the bytes of a ``.params`` file (any buffer) into ``{name: array}``."""
    path = str(path)
    r = _Reader(buf, path)
    if r.size == 0:
        raise r.error("empty file, not an MXNet .params file")
    magic = r.u64("list magic")
    if magic != LIST_MAGIC:
        raise r.error(f"unknown magic 0x{magic:X}, expected NDArray list magic 0x{LIST_MAGIC:X}", 0)
    r.u64("reserved field")
    count_at = r.pos
    count = r.u64("array count")
    # the smallest possible record is a pre-V1 record of 1 empty dim: 4 + 4 + 8 + 4 = 20 bytes
    if count * 20 > r.left:
        raise r.error(f"array count {count} cannot fit in the {r.left} bytes left in the file", count_at)
    arrays = [_read_record(r, i) for i in range(count)]
    names_at = r.pos
    n_names = r.u64("name count")
    if n_names != count:
        raise r.error(
            f"name count {n_names} does not match array count {count}"
            + (" (unnamed NDArray lists are not supported)" if n_names == 0 else ""),
            names_at,
        )
    names: list[str] = []
    for i in range(n_names):
        len_at = r.pos
        length = r.u64(f"length of name {i}")
        if length > r.left:
            raise r.error(f"name {i} declares {length} bytes but only {r.left} are left (truncated names)", len_at)
        raw = r.read_bytes(length, f"name {i}")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise r.error(f"name {i} is not valid UTF-8", len_at + 8) from None
        names.append(name)
    if r.left:
        raise r.error(f"{r.left} bytes of trailing garbage after the names")
    out: dict[str, np.ndarray] = {}
    for name, arr in zip(names, arrays):
        if name in out:
            raise MXNetFormatError(f"duplicate array name {name!r}", path=path, offset=names_at)
        out[name] = arr
    return out


def load_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an MXNet ``.params`` file into ``{"arg:name" | "aux:name": array}`` (keys as stored).

    Arrays are fresh, writable, native-endian copies; the file is memory-mapped while reading.
    Raises :class:`MXNetFormatError` for any malformed content and ``OSError`` if unreadable.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise MXNetFormatError("empty file, not an MXNet .params file", path=path, offset=0)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return parse_params(mm, path)


def split_arg_aux(params: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split ``load_params`` output into ``(arg_params, aux_params)`` with prefixes removed.

    Keys without an ``arg:``/``aux:`` prefix (as written by Gluon) count as arg params.
    """
    args: dict[str, np.ndarray] = {}
    auxs: dict[str, np.ndarray] = {}
    for key, value in params.items():
        if key.startswith("aux:"):
            auxs[key[4:]] = value
        elif key.startswith("arg:"):
            args[key[4:]] = value
        else:
            args[key] = value
    return args, auxs


def _record_bytes(arr: np.ndarray, version: int) -> bytes:
    arr = np.asarray(arr)
    le = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    flag = _FLAG_OF_DTYPE.get(le)
    if flag is None:
        known = [d.name for d in TYPE_FLAGS.values()]
        raise ValueError(f"dtype {arr.dtype} has no MXNet type flag (supported: {known})")
    if arr.ndim == 0 and version != 3:
        raise ValueError(f"0-d arrays can only be written as V3 records, not version {version}")
    if arr.ndim > _MAX_NDIM:
        raise ValueError(f"ndim {arr.ndim} > {_MAX_NDIM}")
    parts = []
    if version == 0:
        parts.append(struct.pack("<I", arr.ndim))
        if any(d >= 2**32 for d in arr.shape):
            raise ValueError("pre-V1 records hold u32 dims")
        parts.append(struct.pack(f"<{arr.ndim}I", *arr.shape))
    else:
        parts.append(struct.pack("<I", _MAGIC_OF_VERSION[version]))
        if version >= 2:
            parts.append(struct.pack("<i", 0))
        parts.append(struct.pack("<i", arr.ndim))
        parts.append(struct.pack(f"<{arr.ndim}q", *arr.shape))
    parts.append(struct.pack("<iii", 1, 0, flag))  # cpu(0), type flag
    parts.append(np.ascontiguousarray(arr, dtype=TYPE_FLAGS[flag]).tobytes())
    return b"".join(parts)


def dump_params(arrays: Mapping[str, np.ndarray], version: int = 2) -> bytes:
    """Serialize ``{name: array}`` in the MXNet ``.params`` format.

    ``version``: 2 (what MXNet 1.x writes), 3, 1, or 0 for the pre-V1 legacy layout.
    """
    if version not in (0, 1, 2, 3):
        raise ValueError(f"version must be 0 (pre-V1), 1, 2 or 3, not {version!r}")
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for arr in arrays.values():
        parts.append(_record_bytes(arr, version))
    parts.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def save_params(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], version: int = 2) -> None:
    """Write ``{name: array}`` to ``path`` in the MXNet ``.params`` format (see :func:`dump_params`).

    Names are written as given: use ``arg:``/``aux:`` prefixes for files MXNet's
    ``load_checkpoint`` would read.
    """
    data = dump_params(arrays, version)
    Path(path).write_bytes(data)
