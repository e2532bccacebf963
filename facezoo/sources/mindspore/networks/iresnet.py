"""iResNet (insightface ArcFace backbone) as the MindSpore arcface port and mindface define it.

Parameter names, shapes and order follow the upstream checkpoints exactly (see
``shared/reference/mindspore/arcface_iresnet100_ms1mv2.params.tsv``): inside a block the
attributes are created in the order bn1, conv1, bn2, prelu, conv2, bn3, downsample, and a
MindSpore BatchNorm holds moving_mean, moving_variance, gamma, beta in that order.

Computation (per block): bn1 -> conv1 3x3 -> bn2 -> PReLU -> conv2 3x3 (carries the stride)
-> bn3, plus the identity or a 1x1 strided conv + BN downsample. Stem: conv 3x3 s1 -> BN ->
PReLU. Head: BN -> dropout (identity at inference) -> flatten (NCHW, 512*7*7) -> Dense ->
BatchNorm1d. construct returns the 512-d embedding tensor (not L2-normalized).
"""

from __future__ import annotations

from mindspore import nn

from facezoo.sources.mindspore.architectures import StandinPolicy, register_architecture

BN_EPS = 1e-5


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, pad_mode="pad", padding=1, has_bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, pad_mode="valid", has_bias=False)


class IBasicBlock(nn.Cell):
    """Pre-activation-style basic block of iResNet."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.has_downsample = downsample
        if downsample:
            self.downsample = nn.SequentialCell(
                [_conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes, eps=BN_EPS)]
            )

    def construct(self, x):
        identity = x
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.has_downsample:
            identity = self.downsample(x)
        out = out + identity  # never `+=`: MindSpore exports that as InplaceAddExt, which ONNX rejects
        return out


class IResNet(nn.Cell):
    """iResNet backbone; ``layers`` = blocks per stage (iresnet100: 3, 13, 30, 3)."""

    fc_scale = 7 * 7

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512, dropout: float = 0.0):
        super().__init__()
        self.inplanes = 64
        self.conv1 = _conv3x3(3, self.inplanes)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=BN_EPS)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(64, layers[0], stride=2)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(512, eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(512 * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.SequentialCell:
        downsample = stride != 1 or self.inplanes != planes
        cells = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        cells += [IBasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def construct(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.prelu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.bn2(x)
        x = self.dropout(x)
        x = self.flatten(x)
        x = self.fc(x)
        x = self.features(x)
        return x


def residual_branch_gammas(net) -> set[str]:
    """The gamma of every block's last BatchNorm (its residual branch's output scale)."""
    return {cell.bn3.gamma.name for _, cell in net.cells_and_names() if isinstance(cell, IBasicBlock)}


@register_architecture(
    "iresnet100",
    # `fc.weight` counts as the head only when it is not the backbone's (mindface r100's collision)
    training_heads=("mp_weight", "fc.weight"),
    standin=StandinPolicy(smooth_kernels=0.7, branch_gamma=(0.1, 0.3), branch_gammas=residual_branch_gammas,
                          layout="arcface", layouts_by_model={"mindface-arcface-r100": "mindface"}),
    source="MindSpore models research/cv/arcface; mindspore-lab/mindface (r100)",
)
def iresnet100() -> IResNet:
    """The ArcFace / mindface r100 backbone: 112x112 RGB in, 512-d embedding out."""
    return IResNet((3, 13, 30, 3))


def iresnet_tiny() -> IResNet:
    """One block per stage: the same names pattern, for fast tests."""
    return IResNet((1, 1, 1, 1))


__all__ = ["IBasicBlock", "IResNet", "iresnet100", "iresnet_tiny"]
