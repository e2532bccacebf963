"""MobileFaceNet as mindface (mindspore-lab) defines it (arcface_torch style, width scale 2).

Blocks: ConvBlock = conv (no bias) + BN + PReLU; LinearBlock = conv + BN; DepthWise = ConvBlock 1x1
(in -> groups), ConvBlock 3x3 depthwise (carries the stride), LinearBlock 1x1 (groups -> out), with
an optional residual add; Residual = a chain of residual DepthWise blocks. The head GDC is a 7x7
depthwise LinearBlock, flatten, Dense 512 -> 512 (no bias), BatchNorm1d.

Naming. The body lives in a CellList that is created empty and then filled with ``append`` /
``extend``. MindSpore names the parameters of such list items by the list's own indexing and never
adds the attribute name, so the bare network's ``Parameter.name`` values are ``0.layers.0.weight``,
``0.layers.1.layers.0.weight``, ... exactly as in ``mindface_mobilefacenet.params.tsv``. The
attribute path of the same tensors (what ``Cell.parameters_and_names()`` yields, and what
``_backbone.``-prefixed training checkpoints hold after stripping the prefix) is ``layers.0.layers.0
.weight``, ``layers.1.layers.0.weight``, ... (``mindface_mobilefacenet.attrpath.params.tsv``). The
checkpoint loader accepts both.

Input 112x112 RGB, normalized outside as (x - 127.5) / 127.5. construct returns the 512-d embedding.
"""

from __future__ import annotations

from mindspore import nn

from facezoo.sources.mindspore.architectures import StandinPolicy, register_architecture

BN_EPS = 1e-5


def _conv(in_channels, out_channels, kernel, stride, padding, groups):
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                     pad_mode="pad" if padding else "valid", padding=padding, group=groups, has_bias=False)


class ConvBlock(nn.Cell):
    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.SequentialCell([
            _conv(in_c, out_c, kernel, stride, padding, groups),
            nn.BatchNorm2d(out_c, eps=BN_EPS),
            nn.PReLU(out_c),
        ])

    def construct(self, x):
        return self.layers(x)


class LinearBlock(nn.Cell):
    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.SequentialCell([
            _conv(in_c, out_c, kernel, stride, padding, groups),
            nn.BatchNorm2d(out_c, eps=BN_EPS),
        ])

    def construct(self, x):
        return self.layers(x)


class DepthWise(nn.Cell):
    def __init__(self, in_c, out_c, groups, stride=1, residual=False):
        super().__init__()
        self.residual = residual
        self.layers = nn.SequentialCell([
            ConvBlock(in_c, groups, 1, 1, 0),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups),
            LinearBlock(groups, out_c, 1, 1, 0),
        ])

    def construct(self, x):
        out = self.layers(x)
        if self.residual:
            out = out + x
        return out


class Residual(nn.Cell):
    def __init__(self, channels, num_block, groups):
        super().__init__()
        self.layers = nn.SequentialCell(
            [DepthWise(channels, channels, groups, 1, residual=True) for _ in range(num_block)]
        )

    def construct(self, x):
        return self.layers(x)


class GDC(nn.Cell):
    """Global depthwise conv head: 7x7 depthwise LinearBlock -> flatten -> Dense -> BatchNorm1d."""

    def __init__(self, embedding_size=512):
        super().__init__()
        self.layers = nn.SequentialCell([
            LinearBlock(512, 512, 7, 1, 0, groups=512),
            nn.Flatten(),
            nn.Dense(512, embedding_size, has_bias=False),
            nn.BatchNorm1d(embedding_size, eps=BN_EPS),
        ])

    def construct(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Cell):
    def __init__(self, num_features=512, blocks=(1, 4, 6, 2), scale=2):
        super().__init__()
        width = 64 * scale
        # Created empty and filled afterwards: this is what gives the upstream `0.layers.N` names.
        self.layers = nn.CellList()
        self.layers.append(ConvBlock(3, width, 3, 2, 1))
        self.layers.append(ConvBlock(width, width, 3, 1, 1, groups=64))
        self.layers.extend([
            DepthWise(width, width, groups=128, stride=2),
            Residual(width, num_block=blocks[1], groups=128),
            DepthWise(width, 2 * width, groups=256, stride=2),
            Residual(2 * width, num_block=blocks[2], groups=256),
            DepthWise(2 * width, 2 * width, groups=512, stride=2),
            Residual(2 * width, num_block=blocks[3], groups=256),
        ])
        self.conv_sep = ConvBlock(2 * width, 512, 1, 1, 0)
        self.features = GDC(num_features)

    def construct(self, x):
        for layer in self.layers:
            x = layer(x)
        x = self.conv_sep(x)
        return self.features(x)


def residual_branch_gammas(net) -> set[str]:
    """The gamma of every residual DepthWise block's last BatchNorm."""
    return {cell.layers[2].layers[1].gamma.name for _, cell in net.cells_and_names()
            if isinstance(cell, DepthWise) and cell.residual}


@register_architecture(
    "mobilefacenet",
    training_heads=("fc.weight", "mp_weight"),
    standin=StandinPolicy(smooth_kernels=0.7, branch_gamma=(0.1, 0.3), branch_gammas=residual_branch_gammas,
                          layout="mindface"),
    source="mindspore-lab/mindface recognition",
)
def mobilefacenet() -> MobileFaceNet:
    return MobileFaceNet()
