"""MobileNetV2 of Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018, in the CIFAR variant that the SimAM reference code trains.

The layers of the paper's Table 2: a 3x3 convolution with 32 channels, seventeen inverted residual
blocks in seven stages, a 1x1 convolution to 1280 channels, global average pooling and a linear
classifier. For 32x32 inputs two strides change from 2 to 1, the stem's and the first block of the
24-channel stage, so the network downsamples 8 times (32 -> 4) instead of 32 times (32 -> 1). This
is the convention of Kuang Liu's widely used pytorch-cifar code, which the SimAM reference code
follows; the strides of the remaining stages are Sandler et al.'s.

Also as in the reference code: ReLU instead of the paper's ReLU6 (no difference in parameters), an
expansion convolution in every block (also where the expansion factor is 1), and a residual
addition in every stride-1 block, through a 1x1 convolution + BN where the channel count changes
(Sandler et al. add a residual only where input and output shapes match). Those four projection
shortcuts (16, 24, 96 and 320 output channels) add 59,152 parameters: 2.297M in all for 10
classes, where the published 2.2M (3.4M for ImageNet, less the 1000-class classifier) counts none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import ResolvedAttention, resolve_attention
from simam.models.layers import AttentionAtPlace, conv1x1, conv3x3

# (expansion factor t, output channels c, blocks n, stride s of the first block), Sandler et al.
# Table 2, with s = 1 instead of 2 for the 24-channel stage (CIFAR variant)
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(AttentionAtPlace, nn.Module):
    """1x1 expansion-BN-ReLU, 3x3 depthwise-BN-ReLU, 1x1 linear projection-BN,
    plus a shortcut at stride 1.

    ``"after_conv"`` puts the attention after the depthwise convolution, before its BN (SimAM's
    place); ``"end_of_branch"`` after the last BN (the place of SE, CBAM, ECA, GC).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: int,
        stride: int,
        attention: ResolvedAttention,
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = conv1x1(in_channels, hidden)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.depthwise = conv3x3(hidden, hidden, stride, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = conv1x1(hidden, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.add_attention(attention, hidden, out_channels)
        self.residual = stride == 1
        if self.residual and in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv1x1(in_channels, out_channels), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.expand(x)), inplace=True)
        out = F.relu(self.bn2(self.after_conv(self.depthwise(out))), inplace=True)
        out = self.at_end(self.bn3(self.project(out)))
        return out + self.shortcut(x) if self.residual else out


class MobileNetV2(nn.Module):
    """CIFAR MobileNetV2 (width multiplier 1) with an attention module in every
    inverted residual block.

    Args:
        num_classes: outputs of the classifier.
        attention: a name of :func:`simam.attention.create_attention` (``"none"``: plain network), a
            module class or a partial.
        place: where each block puts it, one of :data:`simam.attention.PLACES`; None: the paper's.
        **attention_kwargs: passed to every attention module (``lambda_`` for SimAM, ...).
    """

    def __init__(
        self,
        num_classes: int = 10,
        attention: str | Callable[..., nn.Module] = "none",
        place: str | None = None,
        **attention_kwargs: Any,
    ) -> None:
        super().__init__()
        resolved = resolve_attention(attention, place, **attention_kwargs)
        self.stem = nn.Sequential(conv3x3(3, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        blocks, channels = [], 32
        for expansion, out_channels, count, first_stride in STAGES:
            for index in range(count):
                stride = first_stride if index == 0 else 1
                blocks.append(InvertedResidual(channels, out_channels, expansion, stride, resolved))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            conv1x1(channels, 1280), nn.BatchNorm2d(1280), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.blocks(self.stem(x)))
        return self.classifier(features.mean(dim=(2, 3)))
