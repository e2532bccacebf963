"""One registered spec per MindSpore architecture, declared beside its network.

A network file defines the ``nn.Cell`` and registers its builder::

    @register_architecture("mobilefacenet", training_heads=("fc.weight",), standin=StandinPolicy(...))
    def mobilefacenet() -> nn.Cell: ...

and a registry entry names it as ``architecture: mobilefacenet``. The spec holds everything the
rest of facezoo needs to know about the architecture: how to build it, what a checkpoint of it
may hold besides the network (training heads, parameters it may lack), how its stand-in weights
are made and which checkpoint layout the stand-ins imitate, and cosine thresholds of its own.
The built-in networks register themselves when :mod:`facezoo.sources.mindspore.networks` is
imported (:func:`facezoo.sources.mindspore.networks.architecture` looks an architecture up); a
user's network registers itself the same way, from any module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class StandinPolicy:
    """How an architecture's stand-in weights are made (see facezoo.sources.mindspore.standin)."""

    # Networks without BatchNorm: each convolution / dense output scaled to unit deviation on the
    # calibration faces, and the embedding centred through this bias (None: not centred).
    normalize_layers: bool = False
    embedding_bias: str | None = None
    # Random deep BN networks are chaotic: partly smooth kernels and quiet residual branches (as
    # trained ResNets have) keep variations of one face close.
    smooth_kernels: float = 0.0  # share of a kxk kernel's variance in a smooth (Gaussian) profile
    branch_gamma: tuple[float, float] | None = None  # gamma range of each residual branch's last BN
    branch_gammas: Callable | None = None  # (net) -> names of those gammas
    layout: str = "bare"  # the checkpoint layout stand-ins imitate (standin.LAYOUT_WRITERS)
    layouts_by_model: dict[str, str] = field(default_factory=dict)  # registry entries whose upstream file differs


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    build: Callable  # () -> nn.Cell in inference mode
    training_heads: tuple[str, ...] = ()  # checkpoint keys (prefix stripped) that belong to the training head
    optional_params: tuple[str, ...] = ()  # network parameters a checkpoint may lack (not on the embedding's path)
    standin: StandinPolicy = field(default_factory=StandinPolicy)
    check_thresholds: dict[str, float] = field(default_factory=dict)  # min cosine per precision, below the registry's
    source: str = ""  # where the architecture comes from (upstream repository)


_ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register_architecture(name: str, **fields):
    """Decorator for a network builder: registers ``ArchitectureSpec(name, build=builder, **fields)``."""

    def register(builder: Callable) -> Callable:
        _ARCHITECTURES[name] = ArchitectureSpec(name=name, build=builder, **fields)
        return builder

    return register


def registered() -> dict[str, ArchitectureSpec]:
    """The architectures registered so far (the built-in ones once their network files are imported:
    ``facezoo.sources.mindspore.networks.architecture`` looks them up after importing them)."""
    return dict(_ARCHITECTURES)


__all__ = ["ArchitectureSpec", "StandinPolicy", "register_architecture", "registered"]
