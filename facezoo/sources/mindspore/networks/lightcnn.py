"""LightCNN-9 as the MindSpore model zoo (research/cv/LightCNN) defines it.

Max-Feature-Map (MFM): a conv (or dense) layer with twice the wanted channels, then the
element-wise maximum of its two channel halves. Names follow ``lightcnn9.params.tsv``:
``features.N.filter.*``, ``features.N.conv_a.filter.*`` / ``features.N.conv.filter.*`` for the
groups, ``fc1.filter.*`` (8192 -> 2x256) and ``fc2.*`` (256 -> 79077 classes).

Input 1x128x128 gray, normalized outside as x / 255. construct returns the tuple
``(logits, feature)``: 79077 class scores and the 256-d feature; the registry's
``output.index: 1`` picks the feature as the embedding.
"""

from __future__ import annotations

from mindspore import nn, ops

from facezoo.sources.mindspore.architectures import StandinPolicy, register_architecture

NUM_CLASSES = 79077


class MFM(nn.Cell):
    """Max-Feature-Map over a conv (``conv=True``) or a dense layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, conv: bool = True):
        super().__init__()
        self.out_channels = out_channels
        if conv:
            self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride=stride,
                                    pad_mode="pad" if padding else "valid", padding=padding, has_bias=True)
        else:
            self.filter = nn.Dense(in_channels, 2 * out_channels)

    def construct(self, x):
        x = self.filter(x)
        first, second = ops.split(x, self.out_channels, axis=1)
        return ops.maximum(first, second)


class Group(nn.Cell):
    """1x1 MFM (``conv_a``) followed by a kxk MFM (``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.conv_a = MFM(in_channels, in_channels, 1, 1, 0)
        self.conv = MFM(in_channels, out_channels, kernel_size, stride, padding)

    def construct(self, x):
        return self.conv(self.conv_a(x))


def _pool() -> nn.MaxPool2d:
    # upstream: 2x2 stride 2, ceil mode; every feature map here has an even size, so floor == ceil
    return nn.MaxPool2d(kernel_size=2, stride=2, pad_mode="valid")


class LightCNN9(nn.Cell):
    """LightCNN-9: returns (logits, feature)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.SequentialCell([
            MFM(1, 48, 5, 1, 2),
            _pool(),
            Group(48, 96, 3, 1, 1),
            _pool(),
            Group(96, 192, 3, 1, 1),
            _pool(),
            Group(192, 128, 3, 1, 1),
            Group(128, 128, 3, 1, 1),
            _pool(),
        ])
        self.flatten = nn.Flatten()
        self.fc1 = MFM(8 * 8 * 128, 256, conv=False)
        self.dropout = nn.Identity()  # upstream F.dropout(training=self.training): identity at inference
        self.fc2 = nn.Dense(256, num_classes)

    def construct(self, x):
        x = self.features(x)
        x = self.flatten(x)
        feature = self.fc1(x)
        logits = self.fc2(self.dropout(feature))
        return logits, feature


@register_architecture(
    "lightcnn9",
    training_heads=("fc2.weight", "fc2.bias"),
    optional_params=("fc2.weight", "fc2.bias"),  # the 79077-class logits: not on the embedding's path
    standin=StandinPolicy(normalize_layers=True, embedding_bias="fc1.filter.bias", layout="lightcnn"),
    source="MindSpore models research/cv/LightCNN",
)
def lightcnn9() -> LightCNN9:
    return LightCNN9()


#: checkpoint keys that belong to the training head; here they are also the network's 1st output
TRAINING_HEAD = ("fc2.weight", "fc2.bias")
