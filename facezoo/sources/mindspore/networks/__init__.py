"""MindSpore definitions of the registry's network architectures.

Each network file registers its builder and spec with ``@register_architecture`` (see
:mod:`facezoo.sources.mindspore.architectures`); ``build_network(name)`` builds the bare inference
network.

Parameter names, shapes and order of every network equal the upstream checkpoints'
(``Parameter.name``; see ``shared/reference/mindspore/*.params.tsv``), so
``[(p.name, p.shape) for p in net.get_parameters()]`` is the tsv, training heads excepted:

- ``iresnet100``: all of ``arcface_iresnet100_ms1mv2.params.tsv`` (= ``mindface_iresnet100``).
- ``sphere20a``: the tsv minus ``fc6.weight`` (the A-Softmax training head; ignored by the loader).
- ``lightcnn9``: all of ``lightcnn9.params.tsv``; ``fc2`` (79077 classes) is the first output.
- ``mobilefacenet``: ``mindface_mobilefacenet.params.tsv`` (``0.layers.N...``) as ``Parameter.name``;
  ``parameters_and_names()`` yields the attribute-path naming of the ``.attrpath`` tsv.

Output convention: ``construct`` returns a single tensor (iresnet100, sphere20a, mobilefacenet:
the embedding) or a tuple (lightcnn9: ``(logits, feature)``). The registry's ``output.index``
picks the embedding; ``network_output(outputs, index)`` applies that rule and
``EmbeddingNet(net, index)`` wraps a network so that it returns the embedding alone (for export).
"""

from __future__ import annotations

from typing import Any

from facezoo.mindspore_context import mindspore

mindspore()  # the networks subclass nn.Cell: MindSpore is started the facezoo way before it loads
from mindspore import nn  # noqa: E402

from facezoo.errors import RegistryError  # noqa: E402
from facezoo.sources.mindspore.architectures import ArchitectureSpec, registered  # noqa: E402

# Each network file registers its architecture (facezoo.sources.mindspore.architectures).
from facezoo.sources.mindspore.networks import iresnet, lightcnn, mobilefacenet, sphereface  # noqa: E402, F401


def architecture(name: str) -> ArchitectureSpec:
    """The registered spec of an architecture: a built-in network, or a user's registered anywhere."""
    known = registered()
    try:
        return known[name]
    except KeyError:
        raise RegistryError(
            f"unknown network architecture {name!r}; known architectures: {', '.join(known)}"
        ) from None


def known_architectures() -> tuple[str, ...]:
    return tuple(registered())


def build_network(name: str):
    """A fresh network of the architecture, in inference mode (randomly initialised)."""
    net = architecture(name).build()
    net.set_train(False)
    return net


def network_output(outputs: Any, index: int = 0) -> Any:
    """The embedding among a network's outputs: ``outputs[index]`` for a tuple, else the tensor.

    A single tensor is output 0; asking it for another index is an error.
    """
    if isinstance(outputs, (tuple, list)):
        if not 0 <= index < len(outputs):
            raise IndexError(f"output index {index} out of range for a network with {len(outputs)} outputs")
        return outputs[index]
    if index != 0:
        raise IndexError(f"output index {index} out of range for a network with a single output")
    return outputs


class EmbeddingNet(nn.Cell):
    """Wraps a network so that construct returns only output ``index`` (the embedding).

    Created without auto prefix: the wrapped network's parameter names stay unchanged.
    """

    def __init__(self, net: nn.Cell, index: int = 0):
        super().__init__(auto_prefix=False)
        self.net = net
        self.index = index

    def construct(self, x):
        out = self.net(x)
        if isinstance(out, tuple):
            return out[self.index]
        return out


def parameter_table(net: nn.Cell) -> list[tuple[str, str, tuple[int, ...]]]:
    """``(Parameter.name, attribute path, shape)`` of every parameter, in checkpoint order."""
    return [(p.name, path, tuple(p.shape)) for path, p in net.parameters_and_names()]


__all__ = [
    "EmbeddingNet",
    "architecture",
    "build_network",
    "known_architectures",
    "network_output",
    "parameter_table",
]
