"""Stand-in MindSpore checkpoints: the real key layout of each upstream file, seeded weights.

``write_standin(spec, folder, seed=...)`` writes ``spec.conversion.checkpoint`` holding every
parameter of the model's network, named and arranged as the upstream training checkpoint is:

============================== ===============================================================
layout                         keys
============================== ===============================================================
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
name), realistic random BN gamma/beta and PReLU slopes. Then one calibration pass over synthetic
faces, preprocessed as the model's registry entry says, runs the network in numpy (MindSpore's CPU
convolutions are far too slow for this) and

- sets every BatchNorm's moving mean / variance from the batch statistics of its input, then
  moves them off as a trained network's are on new data (:class:`TrainedStatistics`): a few
  channels per BN carry almost no signal (moving variance ~1e-4..1e-3, amplified back by the BN),
  the moving mean sits away from the batch mean and the variance is off by a random factor;
- in the networks without BatchNorm (sphere20a, LightCNN-9) rescales each conv / dense layer so
  that its output has unit standard deviation, and centres the embedding layer over the batch.

So activations stay in realistic ranges through the whole depth, and the embeddings of different
identities differ clearly more than those of variations of one identity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from facezoo import faces, preprocessing
from facezoo.errors import FacezooError
from facezoo.registry import InputContract, ModelSpec
from facezoo.standins.statistics import TRAINED, TrainedStatistics

WRITER_VERSION = "2"  # 2: trained BN statistics, PReLU slopes over [0, 1]

#: registry entry name -> checkpoint layout; other MindSpore entries get their architecture's default
LAYOUTS = {
    "arcface": "arcface",
    "sphereface": "sphereface",
    "lightcnn": "lightcnn",
    "mindface-arcface-mobilefacenet": "mindface",
    "mindface-arcface-r100": "mindface",
}
DEFAULT_LAYOUTS = {"iresnet100": "arcface", "sphere20a": "sphereface", "lightcnn9": "lightcnn",
                   "mobilefacenet": "mindface"}

ARCFACE_HEAD_CLASSES = 85742  # mp_weight rows of the MS1MV2 arcface training head
SPHEREFACE_CLASSES = 10574  # CASIA-WebFace
MINDFACE_HEAD_CLASSES = 1000  # stand-in size of the mindface head's fc.weight
CALIBRATION_FACES = 16


@dataclass(frozen=True)
class _Policy:
    normalize_layers: bool  # rescale conv / dense outputs to unit std (networks without BatchNorm)
    center_embedding: bool  # subtract the batch mean at the embedding layer
    smooth_kernels: float = 0.0  # share of a kxk kernel's variance in a smooth (Gaussian) profile
    branch_gamma: tuple[float, float] | None = None  # gamma range of a residual branch's last BN


# Random deep BN networks are chaotic: tiny input changes scatter the embedding. Partly smooth
# kernels and quiet residual branches (as trained ResNets have) keep variations of one face close;
# measured on synthetic pairs: verification accuracy 0.84 -> 0.97 (MobileFaceNet), 0.98 -> 0.998 (r100).
# The BN-less networks do best with plain He kernels.
_POLICIES = {
    "iresnet100": _Policy(False, False, smooth_kernels=0.7, branch_gamma=(0.1, 0.3)),
    "mobilefacenet": _Policy(False, False, smooth_kernels=0.7, branch_gamma=(0.1, 0.3)),
    "sphere20a": _Policy(True, True),
    "lightcnn9": _Policy(True, True),
}
# Trained PReLU slopes spread over [0, 1]: some units are almost ReLU, some almost linear.
PRELU_SLOPES = (0.0, 1.0)




def layout_for(spec: ModelSpec) -> str:
    layout = LAYOUTS.get(spec.name) or DEFAULT_LAYOUTS.get(spec.architecture)
    if layout is None:
        raise FacezooError(f"no stand-in checkpoint layout for model {spec.name!r} ({spec.architecture})")
    return layout


# --------------------------------------------------------------------------------------------
# weights


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (_rng(seed, name).standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def _branch_gammas(net) -> set[str]:
    """Parameter names of the gamma of every residual branch's last BatchNorm."""
    from facezoo.sources.mindspore.networks.iresnet import IBasicBlock
    from facezoo.sources.mindspore.networks.mobilefacenet import DepthWise

    names = set()
    for _, cell in net.cells_and_names():
        if isinstance(cell, IBasicBlock):
            names.add(cell.bn3.gamma.name)
        elif isinstance(cell, DepthWise) and cell.residual:
            names.add(cell.layers[2].layers[1].gamma.name)
    return names


def _smooth_profile(k: int) -> np.ndarray:
    axis = np.arange(k) - (k - 1) / 2.0
    g = np.exp(-(axis ** 2) / (2 * (k / 3.0) ** 2))
    profile = np.outer(g, g)
    return (profile / np.sqrt((profile ** 2).mean())).astype(np.float32)  # unit mean square


def initial_weights(net, seed: int = 0, architecture: str | None = None) -> dict[str, np.ndarray]:
    """Seeded random values for every parameter of ``net``, by ``Parameter.name``."""
    policy = _POLICIES.get(architecture or "", _Policy(False, False))
    branch = _branch_gammas(net) if policy.branch_gamma else set()
    weights: dict[str, np.ndarray] = {}
    for param in net.get_parameters():
        name, shape = param.name, tuple(param.shape)
        rng = _rng(seed, name)
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
# numpy forward (with calibration)


def _conv2d(x: np.ndarray, w: np.ndarray, b, stride: int, pad: tuple[int, int, int, int], groups: int) -> np.ndarray:
    top, bottom, left, right = pad
    if any(pad):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    if groups == 1:
        if kh == kw == 1:
            xs = x[:, :, ::stride, ::stride][:, :, :ho, :wo]
            y = np.matmul(w.reshape(o, c), xs.reshape(n, c, ho * wo)).reshape(n, o, ho, wo)
        else:
            win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :ho, :wo]
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
            y = (cols @ w.reshape(o, -1).T).reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
    elif cg == 1 and o == c == groups:  # depthwise
        y = np.zeros((n, o, ho, wo), np.float32)
        for i in range(kh):
            for j in range(kw):
                y += x[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] * w[None, :, 0, i, j, None, None]
    else:
        win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :ho, :wo]
        win = win.reshape(n, groups, c // groups, ho, wo, kh, kw)
        y = np.einsum("ngchwij,gocij->ngohw", win, w.reshape(groups, o // groups, cg, kh, kw),
                      optimize=True).reshape(n, o, ho, wo)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if b is not None:
        y += b[None, :, None, None]
    return y


class _Forward:
    """Runs a facezoo network in numpy on ``weights``; with ``calibrate`` it also fits them."""

    def __init__(self, weights: dict[str, np.ndarray], policy: _Policy, calibrate: bool,
                 statistics: TrainedStatistics | None = None, seed: int = 0):
        self.w = weights
        self.policy = policy
        self.calibrate = calibrate
        self.statistics = statistics
        self.seed = seed
        self._producer: tuple[np.ndarray, str, str | None] | None = None  # last conv/dense output

    def __call__(self, cell, x):
        handler = getattr(self, "_" + type(cell).__name__, None)
        if handler is None:
            raise NotImplementedError(f"no numpy forward for {type(cell).__name__}")
        return handler(cell, x)

    # -- fitting helpers
    def _normalize(self, y, weight_name, bias_name):
        if not (self.calibrate and self.policy.normalize_layers):
            return y
        scale = np.float32(1.0 / max(float(y.std()), 1e-6))
        self.w[weight_name] *= scale
        if bias_name is not None:
            self.w[bias_name] *= scale
        return y * scale

    # -- MindSpore layers
    def _Conv2d(self, cell, x):
        pad = cell.padding if cell.pad_mode == "pad" else 0
        pad = (pad,) * 4 if isinstance(pad, int) else tuple(pad)
        stride = cell.stride[0] if isinstance(cell.stride, tuple) else cell.stride
        bias_name = cell.bias.name if cell.has_bias else None
        y = _conv2d(x, self.w[cell.weight.name], self.w[bias_name] if bias_name else None, stride, pad, cell.group)
        y = self._normalize(y, cell.weight.name, bias_name)
        self._producer = (y, cell.weight.name, bias_name)
        return y

    def _Dense(self, cell, x, center=None):
        bias_name = cell.bias.name if cell.has_bias else None
        y = x @ self.w[cell.weight.name].T
        if bias_name:
            y = y + self.w[bias_name]
        y = self._normalize(y.astype(np.float32), cell.weight.name, bias_name)
        center = self.policy.center_embedding if center is None else center
        if self.calibrate and center and bias_name:
            mean = y.mean(axis=0)
            self.w[bias_name] -= mean
            y = y - mean
        self._producer = (y, cell.weight.name, bias_name)
        return y

    def _quiet_channels(self, cell, x):
        """Scale a few channels' producing filters down (in place), so their variance is tiny."""
        stats = self.statistics
        if stats is None or self._producer is None or self._producer[0] is not x or not stats.quiet_fraction:
            return x
        _, weight_name, bias_name = self._producer
        channels = x.shape[1]
        rng = _rng(self.seed, f"{cell.moving_variance.name}/quiet")
        count = max(1, int(round(stats.quiet_fraction * channels)))
        chosen = rng.choice(channels, size=count, replace=False)
        low, high = np.log10(stats.quiet_scale[0]), np.log10(stats.quiet_scale[1])
        scale = np.ones(channels, np.float32)
        scale[chosen] = 10.0 ** rng.uniform(low, high, count)
        self.w[weight_name] = (self.w[weight_name] * scale.reshape((-1,) + (1,) * (self.w[weight_name].ndim - 1))
                               ).astype(np.float32)
        if bias_name is not None:
            self.w[bias_name] = (self.w[bias_name] * scale).astype(np.float32)
        return (x * scale.reshape((1, -1) + (1,) * (x.ndim - 2))).astype(np.float32)

    def _bn(self, cell, x):
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        mean_name, var_name = cell.moving_mean.name, cell.moving_variance.name
        if self.calibrate:
            x = self._quiet_channels(cell, x)
            mean = x.mean(axis=axes, dtype=np.float64)
            var = x.var(axis=axes, dtype=np.float64)  # biased, as in the pass
            if self.statistics is not None:
                rng = _rng(self.seed, f"{var_name}/trained")
                mean = mean + rng.normal(0.0, self.statistics.mean_shift, mean.shape) * np.sqrt(var)
                var = var * np.exp(rng.normal(0.0, self.statistics.variance_spread, var.shape))
            self.w[mean_name] = mean.astype(np.float32)
            self.w[var_name] = var.astype(np.float32)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        scale = self.w[cell.gamma.name] / np.sqrt(self.w[var_name] + np.float32(cell.eps))
        shift = self.w[cell.beta.name] - self.w[mean_name] * scale
        return (x * scale.reshape(shape) + shift.reshape(shape)).astype(np.float32)

    _BatchNorm2d = _bn
    _BatchNorm1d = _bn

    def _PReLU(self, cell, x):
        slope = self.w[cell.w.name].reshape((1, -1) + (1,) * (x.ndim - 2))
        return np.where(x >= 0, x, x * slope).astype(np.float32)

    def _Flatten(self, cell, x):
        return x.reshape(x.shape[0], -1)

    def _Identity(self, cell, x):
        return x

    _Dropout = _Identity

    def _MaxPool2d(self, cell, x):
        k = cell.kernel_size if isinstance(cell.kernel_size, int) else cell.kernel_size[-1]
        s = cell.stride if isinstance(cell.stride, int) else cell.stride[-1]
        if k != s or x.shape[2] % k or x.shape[3] % k:
            raise NotImplementedError("numpy max pooling handles non-overlapping windows that tile the map")
        n, c, h, w = x.shape
        return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))

    def _SequentialCell(self, cell, x):
        for child in cell.cells():
            x = self(child, x)
        return x

    # -- iresnet
    def _IBasicBlock(self, cell, x):
        out = self(cell.bn1, x)
        out = self(cell.conv1, out)
        out = self(cell.bn2, out)
        out = self(cell.prelu, out)
        out = self(cell.conv2, out)
        out = self(cell.bn3, out)
        identity = self(cell.downsample, x) if cell.has_downsample else x
        return out + identity

    def _IResNet(self, cell, x):
        for name in ("conv1", "bn1", "prelu", "layer1", "layer2", "layer3", "layer4", "bn2", "dropout",
                     "flatten", "fc", "features"):
            x = self(getattr(cell, name), x)
        return x

    # -- sphereface
    def _Sphere20a(self, cell, x):
        from facezoo.sources.mindspore.networks.sphereface import _STAGES

        def unit(stage, index, x):
            x = self(getattr(cell, f"conv{stage}_{index}"), x)
            return self(getattr(cell, f"relu{stage}_{index}"), x)

        for stage, _, _, units in _STAGES:
            x = unit(stage, 1, x)
            for a, b in units:
                x = x + unit(stage, b, unit(stage, a, x))
        return self(cell.fc5, self(cell.flatten, x))

    # -- lightcnn
    def _MFM(self, cell, x):
        from mindspore import nn

        if isinstance(cell.filter, nn.Dense):
            y = self._Dense(cell.filter, x, center=False)
        else:
            y = self(cell.filter, x)
        half = cell.out_channels
        first, second = y[:, :half], y[:, half:]
        if self.calibrate and self.policy.center_embedding and isinstance(cell.filter, nn.Dense):
            # centre max(first, second) over the batch: shift both halves by the same amount
            mf, ms_ = first.mean(axis=0), second.mean(axis=0)
            first, second = first - mf, second - ms_
            offset = np.maximum(first, second).mean(axis=0)
            bias = self.w[cell.filter.bias.name]
            bias[:half] -= mf + offset
            bias[half:] -= ms_ + offset
            first, second = first - offset, second - offset
        return np.maximum(first, second)

    def _Group(self, cell, x):
        return self(cell.conv, self(cell.conv_a, x))

    def _LightCNN9(self, cell, x):
        x = self(cell.features, x)
        feature = self(cell.fc1, self(cell.flatten, x))
        logits = self._Dense(cell.fc2, feature, center=False)
        return logits, feature

    # -- mobilefacenet
    def _ConvBlock(self, cell, x):
        return self(cell.layers, x)

    _LinearBlock = _ConvBlock
    _Residual = _ConvBlock
    _GDC = _ConvBlock

    def _DepthWise(self, cell, x):
        out = self(cell.layers, x)
        return out + x if cell.residual else out

    def _MobileFaceNet(self, cell, x):
        for layer in cell.layers:
            x = self(layer, x)
        return self(cell.features, self(cell.conv_sep, x))


def numpy_forward(net, architecture: str, weights: dict[str, np.ndarray], x: np.ndarray):
    """The network's outputs for preprocessed input ``x`` (NCHW float32), computed in numpy."""
    return _Forward(weights, _POLICIES[architecture], calibrate=False)(net, np.asarray(x, np.float32))


def preprocess(images_bgr: np.ndarray, contract: InputContract) -> np.ndarray:
    """BGR uint8 crops -> the ORIGINAL network's input (channel order, mean/std of the registry)."""
    x = preprocessing.to_model_input(images_bgr, contract.channel_order)
    mean = np.asarray(contract.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(contract.std, np.float32).reshape(1, -1, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def calibration_images(contract: InputContract, count: int = CALIBRATION_FACES) -> np.ndarray:
    ids = np.arange(count) + 5000
    return faces.face_batch(ids, ids % 3, (contract.height, contract.width))


def standin_weights(net, architecture: str, contract: InputContract, *, seed: int = 0,
                    count: int = CALIBRATION_FACES,
                    statistics: TrainedStatistics | None = TRAINED) -> dict[str, np.ndarray]:
    """Calibrated stand-in values for every parameter of ``net`` (by ``Parameter.name``).

    ``statistics=None`` leaves every BN exactly matched to the calibration batch (an idealised
    network); the default gives the BN statistics of a trained one (:class:`TrainedStatistics`).
    """
    if architecture not in _POLICIES:
        raise FacezooError(f"no stand-in weights for architecture {architecture!r}")
    weights = initial_weights(net, seed, architecture)
    x = preprocess(calibration_images(contract, count), contract)
    _Forward(weights, _POLICIES[architecture], calibrate=True, statistics=statistics, seed=seed)(net, x)
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
    elif layout == "lightcnn":
        entries += [(name, weights[name]) for name in names]
    elif layout == "mindface":
        entries += [(f"_backbone.{path}", weights[pname]) for pname, path, _ in table]
        entries.append(("fc.weight", _normal(seed, "head.fc.weight", (MINDFACE_HEAD_CLASSES, 512), 0.01)))
    else:
        raise FacezooError(f"unknown stand-in checkpoint layout {layout!r}")
    return entries


def save_entries(entries: list[tuple[str, np.ndarray]], path: Path) -> None:
    import mindspore as ms

    data = [{"name": key, "data": ms.Tensor(np.ascontiguousarray(value))} for key, value in entries]
    ms.save_checkpoint(data, str(path))


def write_standin(spec: ModelSpec, folder: Path, *, seed: int = 0) -> list[Path]:
    """Write the stand-in checkpoint of a MindSpore registry entry into ``folder``."""
    from facezoo.sources.mindspore.networks import build_network

    if spec.framework != "mindspore" or not spec.conversion.checkpoint:
        raise FacezooError(f"model {spec.name!r} is not a MindSpore checkpoint model")
    layout = layout_for(spec)
    net = build_network(spec.architecture)
    weights = standin_weights(net, spec.architecture, spec.input, seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.conversion.checkpoint
    save_entries(checkpoint_entries(net, weights, layout, seed=seed), path)
    return [path]


__all__ = [
    "LAYOUTS",
    "WRITER_VERSION",
    "calibration_images",
    "checkpoint_entries",
    "initial_weights",
    "layout_for",
    "numpy_forward",
    "preprocess",
    "standin_weights",
    "write_standin",
]
