"""Stand-in MindSpore checkpoints: the real key layout of each upstream file, seeded weights.

``write_standin(spec, folder, seed=...)`` writes ``spec.conversion.checkpoint`` holding every
parameter of the model's network, named and arranged as the upstream training checkpoint is
(the layout comes from the architecture's spec, :mod:`facezoo.sources.mindspore.architectures`):

============================== ===============================================================
layout                         keys
============================== ===============================================================
``bare``                       the network's parameter names, nothing else
``arcface``                    bare names, ``mp_weight`` (85742 x 512), ``moments.<name>`` for a
                               few parameters, ``learning_rate``, ``momentum``, ``global_step``
``sphereface``                 ``network.<name>`` for everything incl. ``network.fc6.weight``
                               (512 x 10574), ``moments.network.<name>`` for a few parameters
``lightcnn``                   bare names incl. ``fc2.*``
``mindface``                   ``_backbone.<attribute path>`` (MobileFaceNet: ``layers.N...``),
                               plus the head's unprefixed ``fc.weight`` (1000 x 512), which for
                               r100 collides with ``_backbone.fc.weight`` after stripping
============================== ===============================================================

Weights: He-normal convolutions and dense layers from a numpy RNG seeded by (seed, parameter
name), realistic random BN gamma/beta and PReLU slopes. Then the network itself, in MindSpore's
GRAPH mode, runs once over synthetic faces preprocessed as the model's registry entry says, with
calibration cells wrapped around its layers:

- every BatchNorm normalizes its input with the batch's own statistics and records them as its
  moving mean / variance; they are then moved off as a trained network's are on new data
  (:class:`TrainedStatistics`): a few channels of each BN that follows a convolution or dense
  layer carry almost no signal (moving variance ~1e-4..1e-3, amplified back by the BN), the
  moving mean sits away from the batch mean and the variance is off by a random factor;
- in networks without BatchNorm (``normalize_layers``) every convolution / dense output is scaled
  to unit deviation, the scales are folded into the weights, and the embedding is centred over
  the batch through the spec's ``embedding_bias``.

So activations stay in realistic ranges through the whole depth, any registered architecture gets
stand-ins without code of its own, and the embeddings of different identities differ clearly
more than those of variations of one identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facezoo import faces, preprocessing
from facezoo.errors import FacezooError
from facezoo.registry import InputContract, ModelSpec
from facezoo.sources.mindspore.architectures import ArchitectureSpec, StandinPolicy
from facezoo.sources.mindspore.networks import architecture
from facezoo.mindspore_context import mindspore
from facezoo.sources.standin_statistics import TRAINED, TrainedStatistics, parameter_rng

mindspore()
import mindspore as ms  # noqa: E402  (started above)
from mindspore import nn, ops  # noqa: E402

WRITER_VERSION = "3"  # 3: calibrated by the network itself in MindSpore

ARCFACE_HEAD_CLASSES = 85742  # mp_weight rows of the MS1MV2 arcface training head
SPHEREFACE_CLASSES = 10574  # CASIA-WebFace
MINDFACE_HEAD_CLASSES = 1000  # stand-in size of the mindface head's fc.weight
CALIBRATION_FACES = 16
# Trained PReLU slopes spread over [0, 1]: some units are almost ReLU, some almost linear.
PRELU_SLOPES = (0.0, 1.0)


def layout_for(spec: ModelSpec) -> str:
    """The checkpoint layout a registry entry's stand-in imitates."""
    policy = architecture(spec.architecture).standin
    return policy.layouts_by_model.get(spec.name, policy.layout)


# --------------------------------------------------------------------------------------------
# weights


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (parameter_rng(seed, name).standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def _smooth_profile(k: int) -> np.ndarray:
    axis = np.arange(k) - (k - 1) / 2.0
    g = np.exp(-(axis ** 2) / (2 * (k / 3.0) ** 2))
    profile = np.outer(g, g)
    return (profile / np.sqrt((profile ** 2).mean())).astype(np.float32)  # unit mean square


def initial_weights(net, seed: int = 0, policy: StandinPolicy | None = None) -> dict[str, np.ndarray]:
    """Seeded random values for every parameter of ``net``, by ``Parameter.name``."""
    policy = policy or StandinPolicy()
    branch = policy.branch_gammas(net) if policy.branch_gamma and policy.branch_gammas else set()
    weights: dict[str, np.ndarray] = {}
    for param in net.get_parameters():
        name, shape = param.name, tuple(param.shape)
        rng = parameter_rng(seed, name)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = rng.uniform(*(policy.branch_gamma if name in branch else (0.6, 1.4)), shape)
        elif leaf == "beta":
            value = rng.normal(0.0, 0.1, shape)
        elif leaf == "moving_mean":
            value = np.zeros(shape)
        elif leaf == "moving_variance":
            value = np.ones(shape)
        elif leaf == "w" and len(shape) == 1:  # PReLU slopes
            value = rng.uniform(*PRELU_SLOPES, shape)
        elif leaf == "bias":
            value = rng.normal(0.0, 0.01, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape, dtype=np.float32)
            if len(shape) == 4 and shape[2] == shape[3] > 1 and policy.smooth_kernels:
                amplitude = rng.standard_normal(shape[:2], dtype=np.float32)[:, :, None, None]
                share = np.float32(policy.smooth_kernels)
                value = np.sqrt(share) * amplitude * _smooth_profile(shape[2]) + np.sqrt(1 - share) * value
            weights[name] = (value * np.float32(np.sqrt(2.0 / fan_in))).astype(np.float32)
            continue
        else:
            value = rng.normal(0.0, 0.01, shape)
        weights[name] = np.asarray(value, dtype=np.float32)
    return weights


# --------------------------------------------------------------------------------------------
# calibration, by the network itself


class _BatchStatistics(nn.Cell):
    """A BatchNorm that takes its moving statistics from its input's batch statistics, moved off by
    per-channel ``shift`` (in deviations) and ``factor`` as trained ones are, records them and
    normalizes with them: the BNs after it calibrate on what the network will really compute."""

    def __init__(self, bn, shift: np.ndarray, factor: np.ndarray):
        super().__init__(auto_prefix=False)
        self.bn = bn
        self.spatial = isinstance(bn, nn.BatchNorm2d)
        self.shift = ms.Tensor(shift.astype(np.float32))
        self.factor = ms.Tensor(factor.astype(np.float32))

    def construct(self, x):
        axes = (0, 2, 3) if self.spatial else (0,)
        shape = (1, -1, 1, 1) if self.spatial else (1, -1)
        batch_mean = ops.mean(x, axes)
        centred = x - ops.reshape(batch_mean, shape)
        batch_variance = ops.mean(centred * centred, axes)
        mean = batch_mean + self.shift * ops.sqrt(batch_variance)
        variance = batch_variance * self.factor
        ops.assign(self.bn.moving_mean, mean)
        ops.assign(self.bn.moving_variance, variance)
        scale = self.bn.gamma / ops.sqrt(variance + self.bn.eps)
        return (x - ops.reshape(mean, shape)) * ops.reshape(scale, shape) + ops.reshape(self.bn.beta, shape)


class _UnitScale(nn.Cell):
    """A convolution / dense layer whose output is divided by its deviation (recorded)."""

    def __init__(self, layer):
        super().__init__(auto_prefix=False)
        self.layer = layer
        self.scale = ms.Parameter(ms.Tensor(np.ones(1, np.float32)), name=f"calibration_scale_{id(layer)}",
                                  requires_grad=False)

    def construct(self, x):
        y = self.layer(x)
        mean = ops.mean(y)
        deviation = ops.sqrt(ops.mean((y - mean) * (y - mean))) + 1e-6
        ops.assign(self.scale, ops.reshape(deviation, (1,)))
        return y / deviation


def _children(net):
    """(parent, key, child) of every cell, depth first in definition order."""
    for _, parent in net.cells_and_names():
        for key, child in list(parent._cells.items()):
            if child is not None:
                yield parent, key, child


def _replace(parent, key, cell) -> None:
    parent._cells[key] = cell
    if isinstance(parent, nn.SequentialCell):
        parent.cell_list = list(parent._cells.values())


def _bn_producers(net) -> list[tuple[object, object]]:
    """(BatchNorm, the convolution / dense layer right before it) where the layer feeds it directly.

    Found by definition order (the leaf cell just before the BN), checked by channel count: what
    facezoo's networks, like most, are built as.
    """
    leaves = [child for _, _, child in _children(net) if not child._cells]
    pairs = []
    for before, cell in zip(leaves, leaves[1:]):
        if isinstance(cell, (nn.BatchNorm2d, nn.BatchNorm1d)) and isinstance(before, (nn.Conv2d, nn.Dense)):
            out = before.out_channels if isinstance(before, nn.Conv2d) else before.out_channels
            if out == cell.moving_mean.shape[0]:
                pairs.append((cell, before))
    return pairs


def _quiet_channels(net, weights: dict, statistics: TrainedStatistics, seed: int) -> None:
    """A few output channels of each BN's producer scaled down (in ``weights``), so they carry almost no signal."""
    for bn, producer in _bn_producers(net):
        channels = bn.moving_mean.shape[0]
        rng = parameter_rng(seed, f"{bn.moving_variance.name}/quiet")
        count = max(1, int(round(statistics.quiet_fraction * channels)))
        chosen = rng.choice(channels, size=count, replace=False)
        low, high = np.log10(statistics.quiet_scale[0]), np.log10(statistics.quiet_scale[1])
        scale = np.ones(channels, np.float32)
        scale[chosen] = 10.0 ** rng.uniform(low, high, count)
        name = producer.weight.name
        weights[name] = (weights[name] * scale.reshape((-1,) + (1,) * (weights[name].ndim - 1))).astype(np.float32)
        if producer.has_bias:
            weights[producer.bias.name] = (weights[producer.bias.name] * scale).astype(np.float32)


def _load(net, weights: dict) -> None:
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in weights.items()})


def _mismatch(bn, statistics: TrainedStatistics | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel shift (in deviations) and variance factor of a trained BN's moving statistics."""
    channels = bn.moving_mean.shape[0]
    if statistics is None:
        return np.zeros(channels), np.ones(channels)
    rng = parameter_rng(seed, f"{bn.moving_variance.name}/trained")
    return (rng.normal(0.0, statistics.mean_shift, channels),
            np.exp(rng.normal(0.0, statistics.variance_spread, channels)))


def _calibrate(net, x: np.ndarray, policy: StandinPolicy, statistics: TrainedStatistics | None, seed: int) -> dict:
    """One GRAPH-mode pass with calibration cells in place; the calibrated values, by name."""
    names = {id(p): p.name for p in net.get_parameters()}
    wrapped = []
    for parent, key, child in list(_children(net)):
        if isinstance(child, (nn.BatchNorm2d, nn.BatchNorm1d)):
            wrapper = _BatchStatistics(child, *_mismatch(child, statistics, seed))
        elif policy.normalize_layers and isinstance(child, (nn.Conv2d, nn.Dense)):
            wrapper = _UnitScale(child)
        else:
            continue
        _replace(parent, key, wrapper)
        wrapped.append((parent, key, child, wrapper))
    try:
        net(ms.Tensor(x))
    finally:
        for parent, key, child, _ in wrapped:
            _replace(parent, key, child)
    weights = {names[id(p)]: p.asnumpy().copy() for p in net.get_parameters() if id(p) in names}
    for _, _, child, wrapper in wrapped:
        if isinstance(wrapper, _UnitScale):
            scale = np.float32(wrapper.scale.asnumpy()[0])
            weights[child.weight.name] = weights[child.weight.name] / scale
            if child.has_bias:
                weights[child.bias.name] = weights[child.bias.name] / scale
    return weights


def _centre_embedding(arch: ArchitectureSpec, weights: dict, x: np.ndarray, index: int) -> None:
    """Subtract the batch mean of the embedding from its bias (each block of it, for max-out heads)."""
    net = arch.build()
    net.set_train(False)
    _load(net, weights)
    outputs = net(ms.Tensor(x))
    embedding = (outputs[index] if isinstance(outputs, (tuple, list)) else outputs).asnumpy()
    mean = embedding.mean(axis=0)
    bias = weights[arch.standin.embedding_bias]
    blocks = bias.size // mean.size
    weights[arch.standin.embedding_bias] = (bias - np.tile(mean, blocks)).astype(np.float32)


def preprocess(images_bgr: np.ndarray, contract: InputContract) -> np.ndarray:
    """BGR uint8 crops -> the ORIGINAL network's input (channel order, mean/std of the registry)."""
    x = preprocessing.to_model_input(images_bgr, contract.channel_order)
    mean = np.asarray(contract.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(contract.std, np.float32).reshape(1, -1, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def calibration_images(contract: InputContract, count: int = CALIBRATION_FACES) -> np.ndarray:
    ids = np.arange(count) + 5000
    return faces.face_batch(ids, ids % 3, (contract.height, contract.width))


def standin_weights(net, arch: str | ArchitectureSpec, contract: InputContract, *, seed: int = 0,
                    count: int = CALIBRATION_FACES, statistics: TrainedStatistics | None = TRAINED,
                    output_index: int = 0) -> dict[str, np.ndarray]:
    """Calibrated stand-in values for every parameter of ``net`` (by ``Parameter.name``).

    ``statistics=None`` leaves every BN exactly matched to the calibration batch (an idealised
    network); the default gives the BN statistics of a trained one (:class:`TrainedStatistics`).
    """
    spec = architecture(arch) if isinstance(arch, str) else arch
    policy = spec.standin
    weights = initial_weights(net, seed, policy)
    if statistics is not None:
        _quiet_channels(net, weights, statistics, seed)
    _load(net, weights)
    x = preprocess(calibration_images(contract, count), contract)
    weights = _calibrate(net, x, policy, statistics, seed)
    if policy.embedding_bias:
        _centre_embedding(spec, weights, x, output_index)
    return weights


# --------------------------------------------------------------------------------------------
# checkpoint layouts


def _few(names: list[str], count: int = 6) -> list[str]:
    """A handful of parameters for the stand-in optimizer state: small ones, first and last."""
    small = [n for n in names if not n.endswith((".weight", ".moving_mean", ".moving_variance"))]
    return list(dict.fromkeys(small[:count // 2] + small[-(count - count // 2):]))


def _scalar(value, dtype) -> np.ndarray:
    return np.asarray(value, dtype=dtype)


def checkpoint_entries(net, weights: dict[str, np.ndarray], layout: str, *,
                       seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(key, value) pairs of the checkpoint in ``layout``, in file order."""
    from facezoo.sources.mindspore.networks import parameter_table

    table = parameter_table(net)
    names = [pname for pname, _, _ in table]
    entries: list[tuple[str, np.ndarray]] = []
    if layout == "arcface":
        entries += [(name, weights[name]) for name in names]
        entries.append(("mp_weight", _normal(seed, "mp_weight", (ARCFACE_HEAD_CLASSES, 512), 0.01)))
        entries += [(f"moments.{n}", _normal(seed, f"moments.{n}", weights[n].shape, 1e-4)) for n in _few(names)]
        entries += [("learning_rate", _scalar(0.001, np.float32)), ("momentum", _scalar(0.9, np.float32)),
                    ("global_step", np.array([181952], np.int32))]
    elif layout == "sphereface":
        entries += [(f"network.{n}", weights[n]) for n in names]
        entries.append(("network.fc6.weight", _normal(seed, "fc6.weight", (512, SPHEREFACE_CLASSES), 0.02)))
        entries += [(f"moments.network.{n}", _normal(seed, f"moments.network.{n}", weights[n].shape, 1e-4))
                    for n in _few(names)]
    elif layout in ("lightcnn", "bare"):
        entries += [(name, weights[name]) for name in names]
    elif layout == "mindface":
        entries += [(f"_backbone.{path}", weights[pname]) for pname, path, _ in table]
        entries.append(("fc.weight", _normal(seed, "head.fc.weight", (MINDFACE_HEAD_CLASSES, 512), 0.01)))
    else:
        raise FacezooError(f"unknown stand-in checkpoint layout {layout!r}")
    return entries


def save_entries(entries: list[tuple[str, np.ndarray]], path: Path) -> None:
    data = [{"name": key, "data": ms.Tensor(np.ascontiguousarray(value))} for key, value in entries]
    ms.save_checkpoint(data, str(path))


def write_standin(spec: ModelSpec, folder: Path, *, seed: int = 0) -> list[Path]:
    """Write the stand-in checkpoint of a MindSpore registry entry into ``folder``."""
    if spec.framework != "mindspore" or not spec.conversion.checkpoint:
        raise FacezooError(f"model {spec.name!r} is not a MindSpore checkpoint model")
    layout = layout_for(spec)
    arch = architecture(spec.architecture)
    net = arch.build()
    net.set_train(False)
    weights = standin_weights(net, arch, spec.input, seed=seed, output_index=spec.output.index)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.conversion.checkpoint
    save_entries(checkpoint_entries(net, weights, layout, seed=seed), path)
    return [path]


__all__ = [
    "WRITER_VERSION",
    "calibration_images",
    "checkpoint_entries",
    "initial_weights",
    "layout_for",
    "preprocess",
    "standin_weights",
    "write_standin",
]
