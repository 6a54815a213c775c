"""Wide residual networks of Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016.

WRN-d-k: a 3x3 convolution with 16 channels, three stages of n = (d - 4) / 6 pre-activation blocks
with 16k, 32k and 64k channels at 32x32, 16x16 and 8x8, then BN, ReLU, global average pooling and
a linear classifier. Each block is BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 plus a shortcut (their
Fig. 1d with dropout between the convolutions). WRN-16-8 has 11.0M parameters and WRN-28-10
36.5M, as published.

Shortcuts are those of the original code, which the SimAM reference code follows: identity where a
block keeps the shape, else a 1x1 convolution with the block's stride (no BN) applied to the
block's input after its BN and ReLU. Every attention module, SimAM included, goes after the second
convolution, at the end of the branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import ResolvedAttention, resolve_attention
from simam.models.layers import conv1x1, conv3x3, make_stages


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, then the attention module, plus the shortcut.

    No BN follows the second convolution inside the block, so both places of
    :data:`simam.attention.PLACES` are this one."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        dropout: float,
        attention: ResolvedAttention,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.attention = attention.build(out_channels)
        self.keeps_shape = stride == 1 and in_channels == out_channels
        self.shortcut = (
            nn.Identity() if self.keeps_shape else conv1x1(in_channels, out_channels, stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x), inplace=True)
        out = self.conv1(activated)
        out = self.conv2(self.dropout(F.relu(self.bn2(out), inplace=True)))
        return self.attention(out) + self.shortcut(x if self.keeps_shape else activated)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` with an attention module in every block.

    Args:
        depth: 6n + 4 (16, 28, 40, ...).
        widen_factor: k, the width multiplier of the three stages.
        num_classes: outputs of the classifier.
        dropout: dropout probability between the two convolutions of a block (0.3, the value of
            Zagoruyko and Komodakis's CIFAR runs and of the SimAM reference code's WRN-28-10).
        attention: a name of :func:`simam.attention.create_attention` (``"none"``: plain WRN), a
            module class or a partial.
        place: one of :data:`simam.attention.PLACES` or None;
            both are the same place in a WRN block.
        **attention_kwargs: passed to every attention module (``lambda_`` for SimAM, ...).
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        dropout: float = 0.3,
        attention: str | Callable[..., nn.Module] = "none",
        place: str | None = None,
        **attention_kwargs: Any,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"a wide ResNet has depth 6n + 4, got {depth}")
        blocks_per_stage = (depth - 4) // 6

        resolved = resolve_attention(attention, place, **attention_kwargs)
        self.stem = conv3x3(3, 16)
        self.stages, channels = make_stages(
            lambda channels, width, stride: WideBasicBlock(
                channels, width, stride, dropout, resolved
            ),
            (16 * widen_factor, 32 * widen_factor, 64 * widen_factor),
            blocks_per_stage,
        )
        self.bn = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.bn(self.stages(self.stem(x))), inplace=True)
        return self.classifier(features.mean(dim=(2, 3)))
