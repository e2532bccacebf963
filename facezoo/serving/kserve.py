"""The KServe v2 (Open Inference Protocol) REST codec: JSON tensors and the binary extension.

Pure functions from request bytes to arrays and back, so that every malformed body becomes a
BadRequest naming the field at fault, before anything reaches the model. The binary tensor
data extension (what `tritonclient.http` sends by default): the body is
`Inference-Header-Content-Length` bytes of JSON followed by the raw little-endian tensors in
input order, each input saying its size in `parameters.binary_data_size`.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from facezoo.serving.errors import BadRequest, PayloadTooLarge, ServingError
from facezoo.serving.limits import element_count, require_finite, strict_json

HEADER_LENGTH = "Inference-Header-Content-Length"
#: KServe v2 datatypes and their little-endian numpy types (BYTES is not a numeric tensor).
NUMPY_FOR_DATATYPE = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
DATATYPE_FOR_NUMPY = {dtype: name for name, dtype in NUMPY_FOR_DATATYPE.items()}
KNOWN_DATATYPES = (*NUMPY_FOR_DATATYPE, "BYTES", "BF16")


@dataclass(frozen=True)
class TensorSpecV2:
    """What the model takes or gives, as the protocol spells it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequestV2:
    """A decoded infer request: one array per input, and how each output is wanted."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: dict[str, bool | None] | None  # name → binary (None: as binary_output); None: every output
    binary_output: bool  # request parameters.binary_data_output
    parameters: dict = field(default_factory=dict)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding gzip/deflate (tritonclient's request compression), within `limit`."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding: {encoding!r} is not supported; use gzip, deflate or none")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"Content-Encoding: body is not valid {encoding} data: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"body: more than {limit} bytes once decompressed")
    return data


def parse_infer_request(body: bytes, header_length: str | None, model: list[TensorSpecV2], outputs: list[TensorSpecV2],
                        max_rows: int | None = None) -> InferRequestV2:
    """Decode and check an infer request against the model's inputs and outputs.

    Every number a client sends is checked before an array is made: the JSON's depth, each
    shape's element count (in Python integers, against the model's shape, the bytes the body
    holds and ``max_rows``, the most rows a request may bring), and the values (finite).
    """
    json_part, binary = _split(body, header_length)
    document = strict_json(json_part, "body")
    if not isinstance(document, dict):
        raise BadRequest("body: expected a JSON object with an 'inputs' list")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("id: expected a string")
    parameters = _object(document.get("parameters"), "parameters")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequest("parameters.binary_data_output: expected true or false")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("inputs: expected a non-empty list of tensors")
    expected = {spec.name: spec for spec in model}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        where = f"inputs[{index}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where}: expected an object with name, shape, datatype and data")
        name = raw.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"{where}.name: expected a string")
        if name not in expected:
            raise BadRequest(f"{where}.name: unknown input {name!r}; the model takes {', '.join(map(repr, expected))}")
        if name in arrays:
            raise BadRequest(f"{where}.name: input {name!r} is given twice")
        array, used = _tensor(raw, where, expected[name], binary, offset, len(json_part), max_rows)
        offset += used
        arrays[name] = array
    if offset != len(binary):
        raise BadRequest(f"body: {len(binary) - offset} bytes of binary data after the JSON header belong to no input "
                         f"(the binary_data_size values add up to {offset})")
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise BadRequest(f"inputs: missing input {missing[0]!r}")
    return InferRequestV2(request_id, arrays, _requested_outputs(document.get("outputs"), outputs), binary_output, parameters)


def encode_infer_response(model_name: str, request_id: str | None, results: list[tuple[TensorSpecV2, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the length of its JSON header."""
    document: dict = {"model_name": model_name, "model_version": "1"}
    if request_id is not None:
        document["id"] = request_id
    tensors, blobs = [], []
    for spec, array, binary in results:
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ServingError(f"model {model_name!r} gave non-finite values in output {spec.name!r} for finite inputs")
        tensor = {"name": spec.name, "datatype": spec.datatype, "shape": list(array.shape)}
        if binary:
            data = np.ascontiguousarray(array, dtype=NUMPY_FOR_DATATYPE[spec.datatype]).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    document["outputs"] = tensors
    header = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(f"{HEADER_LENGTH}: expected an integer, got {header_length!r}") from None
    if not 0 < length <= len(body):
        raise BadRequest(f"{HEADER_LENGTH}: {length} is outside the body of {len(body)} bytes")
    return body[:length], body[length:]


def _object(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object")
    return value


def _tensor(raw: dict, where: str, spec: TensorSpecV2, binary: bytes, offset: int, json_bytes: int,
            max_rows: int | None) -> tuple[np.ndarray, int]:
    """One input as an array of the model's shape; returns it and the binary bytes it used."""
    datatype = raw.get("datatype")
    if datatype not in KNOWN_DATATYPES:
        raise BadRequest(f"{where}.datatype: expected one of {', '.join(KNOWN_DATATYPES)}, got {datatype!r}")
    if datatype != spec.datatype:
        raise BadRequest(f"{where}.datatype: input {spec.name!r} is {spec.datatype}, not {datatype}")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise BadRequest(f"{where}.shape: expected a list of integers, got {shape!r}")
    _check_shape(shape, spec, where)
    if max_rows is not None and shape[0] > max_rows:
        raise PayloadTooLarge(f"{where}.shape: {shape[0]} rows in one request, more than the server admits at once "
                              f"(--max-queue {max_rows})")
    count = element_count(shape)
    dtype = NUMPY_FOR_DATATYPE[datatype]
    parameters = _object(raw.get("parameters"), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise BadRequest(f"{where}: has both 'data' and parameters.binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{where}.parameters.binary_data_size: expected a non-negative integer")
        if size != count * dtype.itemsize:
            raise BadRequest(f"{where}.parameters.binary_data_size: {size} bytes, but shape {shape} of {datatype} "
                             f"takes {count * dtype.itemsize}")
        if offset + size > len(binary):
            raise BadRequest(f"{where}.parameters.binary_data_size: {size} bytes, but only {len(binary) - offset} "
                             "bytes of binary data are left in the body")
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).reshape(shape)
        array = array.astype(dtype.newbyteorder("="), copy=False)
        require_finite(array, f"{where} (binary data)")
        return array, size
    if "data" not in raw:
        raise BadRequest(f"{where}.data: missing (give 'data', or binary data with parameters.binary_data_size)")
    if count > json_bytes // 2:  # a JSON number and its comma take at least two bytes
        raise BadRequest(f"{where}.shape: {shape} takes {count} values, more than a JSON body of {json_bytes} bytes "
                         "can hold")
    try:
        array = np.asarray(raw["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"{where}.data: expected {datatype} numbers: {exc}") from None
    if array.size != count:
        raise BadRequest(f"{where}.data: {array.size} values, but shape {shape} takes {count}")
    require_finite(array, f"{where}.data")
    return array.reshape(shape), 0


def _check_shape(shape: list[int], spec: TensorSpecV2, where: str) -> None:
    if len(shape) != len(spec.shape):
        raise BadRequest(f"{where}.shape: {shape} has rank {len(shape)}; input {spec.name!r} is {list(spec.shape)}")
    for axis, (got, want) in enumerate(zip(shape, spec.shape)):
        if got < 1 or (want != -1 and got != want):
            raise BadRequest(f"{where}.shape: {shape} does not fit input {spec.name!r} of shape {list(spec.shape)} "
                             f"(dimension {axis})")


def _requested_outputs(value, outputs: list[TensorSpecV2]) -> dict[str, bool | None] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest("outputs: expected a list")
    known = {spec.name for spec in outputs}
    wanted: dict[str, bool | None] = {}
    for index, raw in enumerate(value):
        where = f"outputs[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise BadRequest(f"{where}.name: expected a string")
        if raw["name"] not in known:
            raise BadRequest(f"{where}.name: unknown output {raw['name']!r}; the model gives {', '.join(map(repr, known))}")
        parameters = _object(raw.get("parameters"), f"{where}.parameters")
        if "classification" in parameters:
            raise BadRequest(f"{where}.parameters.classification: not supported for embedding models")
        binary = parameters.get("binary_data", None)
        if binary is not None and not isinstance(binary, bool):
            raise BadRequest(f"{where}.parameters.binary_data: expected true or false")
        wanted[raw["name"]] = binary  # None: follow binary_data_output
    return wanted
