"""Stand-in MXNet model zips: the real insightface r34 symbol, seeded weights, real layout.

``write_standin(spec, folder, seed=...)`` writes ``spec.files[0].name`` (for
``face-recognition-resnet34-arcface``: ``model-r34-arcface-ms1m-refine-v1.zip``), a zip holding

* ``model-r34-amf/model-symbol.json``: the REAL symbol file of insightface LResNet34E-IR,
  byte for byte (shipped as package data, sha256 :data:`SYMBOL_SHA256`);
* ``model-r34-amf/model-0000.params``: a V2 NDArray list with exactly the 276 ``arg:``/``aux:``
  keys, shapes and order of the real file (the table ships as package data), float32.

(The member paths are the registry entry's ``conversion.symbol`` / ``conversion.params``.)

``scale="tiny"`` writes the same graph with every width divided by 8 (the layout of the
reference ``tiny-r34`` that real MXNet ran): same node and parameter names, 0.5 M parameters,
for fast tests. :func:`write_model_folder` writes the two files unzipped.

Weights: He-normal convolutions, a fan-in-scaled dense layer, realistic BatchNorm gamma/beta
and PReLU slopes, all from a NumPy RNG seeded by (seed, parameter name). Then one calibration
pass over synthetic faces (:mod:`facezoo.faces`, raw RGB 0..255 as the graph takes them) runs the
graph with the NumPy executor's operators and sets every BatchNorm's moving mean / variance from
the statistics of its input on that batch, moved off as a trained network's are (a few quiet
channels with variance ~1e-4..1e-3, shifted means, scaled variances), so activations keep about unit scale through the depth
(FP16 then behaves as on trained weights), the embedding ``fc1`` is centred with unit spread,
and different identities differ clearly more than variations of one identity. ``fc1`` has
``fix_gamma=True``: its stored gamma is deliberately not 1 (as in the reference tiny-r34), so a
converter that ignored ``fix_gamma`` would be caught.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from facezoo import faces, preprocessing
from facezoo.errors import FacezooError
from facezoo.sources.standin_statistics import TRAINED, parameter_rng
from facezoo.registry import ModelSpec

WRITER_VERSION = "2"  # 2: trained BN statistics, PReLU slopes over [0, 1]

DATA = Path(__file__).with_name("data")
SYMBOL_FILE = DATA / "model-r34-amf-symbol.json"
PARAMS_TABLE = DATA / "model-r34-amf.params.tsv"
SYMBOL_SHA256 = "2ceb791a55bb7419bf821e285274921d3a24efdc43894a46d91be056d294285e"
ARCHITECTURE = "lresnet34e-ir"
DEFAULT_SYMBOL = "model-r34-amf/model-symbol.json"
DEFAULT_PARAMS = "model-r34-amf/model-0000.params"
SCALES = {"full": 1, "tiny": 8}
CALIBRATION_FACES = 16
CHUNK = 4  # images per executor call during calibration (bounds the im2col memory)
ZIP_DATE = (2018, 1, 26, 12, 0, 0)  # fixed: same seed, same bytes


# --------------------------------------------------------------------------- layout facts ----
def _divisor(scale: str) -> int:
    if scale not in SCALES:
        raise FacezooError(f"unknown stand-in scale {scale!r}; expected one of {', '.join(SCALES)}")
    return SCALES[scale]


def symbol_bytes(scale: str = "full") -> bytes:
    """The symbol file: the real one (``full``), or it with every width divided (``tiny``)."""
    divisor = _divisor(scale)
    data = SYMBOL_FILE.read_bytes()
    if hashlib.sha256(data).hexdigest() != SYMBOL_SHA256:
        raise FacezooError(f"{SYMBOL_FILE} is damaged: its sha256 is not {SYMBOL_SHA256}")
    if divisor == 1:
        return data
    doc = json.loads(data)
    for node in doc["nodes"]:
        for key in ("attrs", "attr", "param"):
            attrs = node.get(key)
            if not isinstance(attrs, dict):
                continue
            for width in ("num_filter", "num_hidden"):
                if width in attrs:
                    value = int(attrs[width])
                    if value % divisor:
                        raise FacezooError(f"{node['name']}: {width} {value} does not divide by {divisor}")
                    attrs[width] = str(value // divisor)
    return (json.dumps(doc, indent=2) + "\n").encode()


def param_table(scale: str = "full") -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` of every record of the real ``model-0000.params``, in file order.

    ``tiny`` divides every width (each dimension of 64 or more) by 8; kernel sizes and the 3
    input channels stay.
    """
    divisor = _divisor(scale)
    rows = []
    for line in PARAMS_TABLE.read_text(encoding="utf-8").splitlines()[1:]:
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        if dtype != "float32":
            raise FacezooError(f"{PARAMS_TABLE}: {key} has dtype {dtype}, expected float32")
        dims = tuple(int(d) for d in shape.split("x"))
        rows.append((key, tuple(d // divisor if d >= 64 else d for d in dims)))
    return rows


# -------------------------------------------------------------------------------- weights ----
def initial_weights(scale: str = "full", seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded, uncalibrated values for every key (``arg:``/``aux:``), in file order."""
    out: dict[str, np.ndarray] = {}
    for key, shape in param_table(scale):
        name = key.split(":", 1)[1]
        r = parameter_rng(seed, key)
        if name.endswith("_weight") and len(shape) == 4:  # convolution: He normal
            fan_in = int(np.prod(shape[1:]))
            value = r.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif name.endswith("_weight"):  # the dense embedding layer: unit gain on unit inputs
            value = r.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(1.0 / shape[1]))
        elif name.endswith("_bias"):
            value = r.normal(0.0, 0.02, shape)
        elif name.endswith("_moving_mean"):
            value = np.zeros(shape)
        elif name.endswith("_moving_var"):
            value = np.ones(shape)
        elif name.endswith("_gamma") and "relu" in name:  # PReLU slopes: trained ones spread over [0, 1]
            value = r.uniform(0.0, 1.0, shape)
        elif name.endswith("_gamma"):
            # the last BN of a residual branch starts small, as in trained ResNets
            value = r.uniform(0.2, 0.6, shape) if name.endswith("_bn3_gamma") else r.uniform(0.6, 1.4, shape)
            if name == "fc1_gamma":  # fix_gamma=True: ignored at inference, deliberately not 1
                value = r.uniform(0.5, 1.5, shape)
        elif name.endswith("_beta"):
            value = r.normal(0.0, 0.1, shape)
        else:
            raise FacezooError(f"no stand-in rule for parameter {key}")
        out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def calibration_images(size: tuple[int, int] = (112, 112), count: int = CALIBRATION_FACES) -> np.ndarray:
    """BGR uint8 calibration faces: ``count`` identities, a few variations."""
    ids = np.arange(count) + 7000
    return faces.face_batch(ids, ids % 4, size)


def calibrate(graph, weights: dict[str, np.ndarray], x: np.ndarray, data_name: str = "data",
              statistics=TRAINED, seed: int = 0) -> None:
    """Run ``graph`` on ``x`` in order, setting each BatchNorm's moving statistics from its input's
    batch statistics before it runs (``weights`` keyed ``arg:``/``aux:``, updated in place).

    With ``statistics`` (the default), they are then moved off as a trained network's are
    (:class:`facezoo.sources.standin_statistics.TrainedStatistics`: quiet channels, shifted means, scaled
    variances); ``statistics=None`` matches them exactly.
    """
    from facezoo.sources.mxnet import ops as executor_ops

    ctx = executor_ops._Ctx(np.dtype(np.float32))
    params = {k.split(":", 1)[1]: v for k, v in weights.items()}
    keys = {k.split(":", 1)[1]: k for k in weights}
    needed = graph.ancestors(graph.heads, executor_ops._skip_inputs)
    last_use: dict[int, int] = {}
    uses: dict[int, int] = {}
    for i in needed:
        for src, _ in graph.nodes[i].inputs:
            last_use[src] = i
            uses[src] = uses.get(src, 0) + 1
    values: dict[int, list[np.ndarray]] = {}
    batched: set[int] = set()
    for i in needed:
        node = graph.nodes[i]
        if node.is_variable:
            if node.name == data_name:
                values[i] = [np.asarray(x, np.float32)]
                batched.add(i)
            else:
                values[i] = [params[node.name]]
            continue
        skip = executor_ops._skip_inputs(node)
        entries = [(src, out) for pos, (src, out) in enumerate(node.inputs) if pos not in skip]
        if node.op == "BatchNorm":
            (src, out) = entries[0]
            producer = graph.nodes[src]
            if statistics is not None and uses.get(src) == 1 and producer.op in ("Convolution", "FullyConnected"):
                _quiet_channels(graph, producer, values[src], params, weights, keys, statistics, seed, node.name)
            h = values[src][out].astype(np.float64)
            axes = tuple(a for a in range(h.ndim) if a != 1)
            mean = h.mean(axis=axes)
            var = h.var(axis=axes)
            if statistics is not None:
                r = parameter_rng(seed, f"{node.name}/trained")
                mean = mean + r.normal(0.0, statistics.mean_shift, mean.shape) * np.sqrt(var)
                var = var * np.exp(r.normal(0.0, statistics.variance_spread, var.shape))
            for (vsrc, _), value in zip(entries[3:5], (mean, var)):
                var_name = graph.nodes[vsrc].name
                params[var_name][...] = value.astype(np.float32)
                weights[keys[var_name]] = params[var_name]
        fn = executor_ops._OPS[node.op]
        split = [src in batched for src, _ in entries]
        n = len(x)
        outs: list[list[np.ndarray]] = []
        for start in range(0, n, CHUNK):
            args = [values[src][out][start : start + CHUNK] if b else values[src][out]
                    for (src, out), b in zip(entries, split)]
            outs.append(fn(node, args, ctx))
        if node.op == "BatchNorm":
            values[i] = [np.concatenate([o[0] for o in outs])]
        else:
            values[i] = [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
        batched.add(i)
        for src, _ in node.inputs:
            if last_use.get(src) == i and graph.nodes[src].name != data_name:
                values.pop(src, None)


def _quiet_channels(graph, producer, outputs: list[np.ndarray], params, weights, keys, statistics, seed: int,
                    label: str) -> None:
    """Scale a few output channels of ``producer`` (conv / dense feeding only this BN) down, in its
    weight, its bias and its already computed output, so their variance is tiny."""
    names = [graph.nodes[src].name for src, _ in producer.inputs[1:]]
    weight = params[names[0]]
    channels = weight.shape[0]
    r = parameter_rng(seed, f"{label}/quiet")
    count = max(1, int(round(statistics.quiet_fraction * channels)))
    chosen = r.choice(channels, size=count, replace=False)
    scale = np.ones(channels, np.float32)
    low, high = np.log10(statistics.quiet_scale[0]), np.log10(statistics.quiet_scale[1])
    scale[chosen] = 10.0 ** r.uniform(low, high, count)
    for name in names:
        value = params[name]
        value *= scale.reshape((-1,) + (1,) * (value.ndim - 1))
        weights[keys[name]] = value
    outputs[0] = (outputs[0] * scale.reshape((1, -1) + (1,) * (outputs[0].ndim - 2))).astype(np.float32)


def standin_params(scale: str = "full", seed: int = 0, *, count: int = CALIBRATION_FACES,
                   channel_order: str = "RGB", statistics=TRAINED) -> dict[str, np.ndarray]:
    """Calibrated stand-in parameters (``arg:``/``aux:`` keys in the real file order)."""
    from facezoo.sources.mxnet.symbol import parse_symbol

    graph = parse_symbol(json.loads(symbol_bytes(scale)))
    weights = initial_weights(scale, seed)
    images = calibration_images(count=count)
    x = preprocessing.to_model_input(images, channel_order)  # raw 0..255: the graph normalizes itself
    calibrate(graph, weights, x, statistics=statistics, seed=seed)
    return weights


def write_model_folder(folder: Path, *, scale: str = "full", seed: int = 0,
                       symbol_name: str = "model-symbol.json", params_name: str = "model-0000.params",
                       channel_order: str = "RGB") -> tuple[Path, Path]:
    """The unzipped stand-in: ``folder/model-symbol.json`` and ``folder/model-0000.params``."""
    from facezoo.sources.mxnet.params import dump_params

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbol_path, params_path = folder / symbol_name, folder / params_name
    symbol_path.write_bytes(symbol_bytes(scale))
    params_path.write_bytes(dump_params(standin_params(scale, seed, channel_order=channel_order)))
    return symbol_path, params_path


def _zip_info(name: str, directory: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3  # unix
    info.external_attr = ((0o40755 << 16) | 0x10) if directory else (0o100644 << 16)
    info.compress_type = zipfile.ZIP_STORED if directory else zipfile.ZIP_DEFLATED
    return info


def write_standin(spec: ModelSpec, folder: Path, *, seed: int = 0, scale: str = "full") -> list[Path]:
    """Write the stand-in zip of an MXNet registry entry (LResNet34E-IR layout) into ``folder``."""
    if spec.framework != "mxnet":
        raise FacezooError(f"model {spec.name!r} is not an MXNet model")
    if spec.architecture != ARCHITECTURE:
        raise FacezooError(
            f"no MXNet stand-in for architecture {spec.architecture!r} of {spec.name!r} (only {ARCHITECTURE})"
        )
    if not spec.files or spec.files[0].unpack != "zip":
        raise FacezooError(f"model {spec.name!r}: expected its first file to be a zip")
    symbol_member = spec.conversion.symbol or DEFAULT_SYMBOL
    params_member = spec.conversion.params or DEFAULT_PARAMS
    members = spec.files[0].members or [symbol_member, params_member]
    for member in (symbol_member, params_member):
        if member not in members:
            raise FacezooError(f"model {spec.name!r}: {member} is not among the zip members {members}")
    from facezoo.sources.mxnet.params import dump_params

    symbol = symbol_bytes(scale)
    params = dump_params(standin_params(scale, seed, channel_order=spec.input.channel_order))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.files[0].name
    tmp = folder / f".{spec.files[0].name}.partial"
    directories = sorted({m.rsplit("/", 1)[0] + "/" for m in members if "/" in m})
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for directory in directories:
                zf.writestr(_zip_info(directory, directory=True), b"")
            for member, data in sorted(((params_member, params), (symbol_member, symbol)), key=lambda m: m[0]):
                zf.writestr(_zip_info(member), data, compresslevel=1)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return [path]


def read_standin_members(path: Path) -> dict[str, bytes]:
    """The files of a stand-in zip (for tests and tools)."""
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}


__all__ = [
    "ARCHITECTURE",
    "PARAMS_TABLE",
    "SCALES",
    "SYMBOL_FILE",
    "SYMBOL_SHA256",
    "WRITER_VERSION",
    "calibrate",
    "calibration_images",
    "initial_weights",
    "param_table",
    "read_standin_members",
    "standin_params",
    "symbol_bytes",
    "write_model_folder",
    "write_standin",
]
