"""SphereFace sphere20a in feature mode, as the MindSpore model zoo (official/cv/sphereface) defines it.

Names follow ``sphereface20a.params.tsv``: ``convX_Y.weight`` (3x3, pad 1, no bias) each followed by
its PReLU ``reluX_Y.w``; ``fc5`` (21504 -> 512, with bias). The checkpoint also holds ``fc6.weight``
(512 x 10574, the A-Softmax training head); it is NOT part of this feature network and the
checkpoint loader ignores it as a training head.

Input 112x96 (HxW) BGR, normalized outside as (x - 127.5) / 128. Four stride-2 stages bring it to
7x6; flatten (NCHW order, 512*7*6 = 21504) -> fc5. construct returns the 512-d fc5 tensor.
"""

from __future__ import annotations

from mindspore import nn

from facezoo.sources.mindspore.architectures import StandinPolicy, register_architecture

# (stage, input channels, output channels, residual units as (first conv index, second conv index))
_STAGES = (
    (1, 3, 64, ((2, 3),)),
    (2, 64, 128, ((2, 3), (4, 5))),
    (3, 128, 256, ((2, 3), (4, 5), (6, 7), (8, 9))),
    (4, 256, 512, ((2, 3),)),
)


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, pad_mode="pad", padding=1, has_bias=False)


class Sphere20a(nn.Cell):
    """sphere20a(feature=True): 20 conv layers with PReLU, residual units, fc5 embedding."""

    def __init__(self, embedding_size: int = 512):
        super().__init__()
        for stage, cin, cout, units in _STAGES:
            setattr(self, f"conv{stage}_1", _conv(cin, cout, 2))
            setattr(self, f"relu{stage}_1", nn.PReLU(cout))
            for a, b in units:
                setattr(self, f"conv{stage}_{a}", _conv(cout, cout, 1))
                setattr(self, f"relu{stage}_{a}", nn.PReLU(cout))
                setattr(self, f"conv{stage}_{b}", _conv(cout, cout, 1))
                setattr(self, f"relu{stage}_{b}", nn.PReLU(cout))
        self.flatten = nn.Flatten()
        self.fc5 = nn.Dense(512 * 7 * 6, embedding_size)

    def construct(self, x):
        x = self.relu1_1(self.conv1_1(x))
        x = x + self.relu1_3(self.conv1_3(self.relu1_2(self.conv1_2(x))))

        x = self.relu2_1(self.conv2_1(x))
        x = x + self.relu2_3(self.conv2_3(self.relu2_2(self.conv2_2(x))))
        x = x + self.relu2_5(self.conv2_5(self.relu2_4(self.conv2_4(x))))

        x = self.relu3_1(self.conv3_1(x))
        x = x + self.relu3_3(self.conv3_3(self.relu3_2(self.conv3_2(x))))
        x = x + self.relu3_5(self.conv3_5(self.relu3_4(self.conv3_4(x))))
        x = x + self.relu3_7(self.conv3_7(self.relu3_6(self.conv3_6(x))))
        x = x + self.relu3_9(self.conv3_9(self.relu3_8(self.conv3_8(x))))

        x = self.relu4_1(self.conv4_1(x))
        x = x + self.relu4_3(self.conv4_3(self.relu4_2(self.conv4_2(x))))

        x = self.flatten(x)
        return self.fc5(x)


@register_architecture(
    "sphere20a",
    training_heads=("fc6.weight",),
    standin=StandinPolicy(normalize_layers=True, embedding_bias="fc5.bias", layout="sphereface"),
    source="MindSpore models official/cv/sphereface",
)
def sphere20a() -> Sphere20a:
    return Sphere20a()


#: checkpoint keys of the training head that the feature network leaves out
TRAINING_HEAD = ("fc6.weight",)
