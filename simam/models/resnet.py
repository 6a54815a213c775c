"""The CIFAR ResNets of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
section 4.2.

A 3x3 convolution with 16 channels, three stages of residual blocks at 32x32, 16x16 and 8x8 with
16, 32 and 64 channels (the first block of the second and third stage halves the size with
stride 2), global average pooling and a linear classifier. With basic blocks (two 3x3 convolutions)
and n blocks per stage the depth is 6n + 2: ResNet-20, 32, 44, 56, 110 have n = 3, 5, 7, 9, 18.
ResNet-164 uses bottleneck blocks (1x1, 3x3, 1x1; four times as many output channels) with n = 18,
depth 9n + 2, as in He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.

Shortcuts follow the SimAM reference code: identity where a block keeps the shape, a 1x1
convolution with the block's stride followed by BN (a projection, He et al.'s option B) where it
changes. He et al. used zero-padded identity shortcuts (option A) for their CIFAR ResNets, so the
networks here have a few more parameters than their published sizes (ResNet-20: 0.272M, not 0.270M).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import ResolvedAttention, resolve_attention
from simam.models.layers import (
    AttentionAtPlace,
    conv1x1,
    conv3x3,
    count_blocks_per_stage,
    make_stages,
)


def shortcut_with_bn(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of a block: identity if the shape is kept, else 1x1 convolution + BN."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(AttentionAtPlace, nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (He et al. 2016, Fig. 2 left).

    ``"after_conv"`` puts the attention after the second convolution, before its BN (SimAM's place);
    ``"end_of_branch"`` after that BN (the place of SE, CBAM, ECA, GC).
    """

    expansion = 1
    convolutions = 2

    def __init__(
        self, in_channels: int, planes: int, stride: int, attention: ResolvedAttention
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.add_attention(attention, planes, planes)
        self.shortcut = shortcut_with_bn(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.at_end(self.bn2(self.after_conv(self.conv2(out))))
        return F.relu(out + self.shortcut(x), inplace=True)


class Bottleneck(AttentionAtPlace, nn.Module):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, plus the shortcut, then ReLU
    (He et al. 2016, Fig. 5 right).

    The stride sits on the 3x3 convolution. ``"after_conv"`` puts the attention after the 3x3
    convolution, before its BN (SimAM's place); ``"end_of_branch"`` after the last BN.
    """

    expansion = 4
    convolutions = 3

    def __init__(
        self, in_channels: int, planes: int, stride: int, attention: ResolvedAttention
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.add_attention(attention, planes, out_channels)
        self.shortcut = shortcut_with_bn(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.after_conv(self.conv2(out))), inplace=True)
        out = self.at_end(self.bn3(self.conv3(out)))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    """A CIFAR ResNet of ``depth`` layers with an attention module in every residual block.

    Args:
        depth: 6n + 2 with ``block="basic"`` (20, 32, 44, 56, 110),
            9n + 2 with ``"bottleneck"`` (164).
        num_classes: outputs of the classifier.
        attention: a name of :func:`simam.attention.create_attention` (``"none"``: plain ResNet), a
            module class or a partial.
        block: ``"basic"`` or ``"bottleneck"``.
        place: where each block puts it, one of :data:`simam.attention.PLACES`; None: the paper's.
        **attention_kwargs: passed to every attention module (``lambda_`` for SimAM, ...).

    The pre-activation ResNets (:class:`simam.models.preresnet.PreActResNet`) are built by this same
    constructor: they differ only in their blocks, their stem and the BN and ReLU before the
    pooling.
    """

    blocks: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
    family = "a ResNet"

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        attention: str | Callable[..., nn.Module] = "none",
        block: Literal["basic", "bottleneck"] = "basic",
        place: str | None = None,
        **attention_kwargs: Any,
    ) -> None:
        super().__init__()
        if block not in self.blocks:
            raise ValueError(f"block must be one of {sorted(self.blocks)}, got {block!r}")
        Block = self.blocks[block]
        blocks_per_stage = count_blocks_per_stage(
            depth, Block.convolutions, f"{self.family} with {block} blocks"
        )

        resolved = resolve_attention(attention, place, **attention_kwargs)
        self.stem = self.make_stem()
        self.stages, channels = make_stages(
            lambda channels, planes, stride: Block(channels, planes, stride, resolved),
            (16, 32, 64),
            blocks_per_stage,
            Block.expansion,
        )
        self.add_head_norm(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def make_stem(self) -> nn.Module:
        """A 3x3 convolution with 16 channels, BN and ReLU."""
        return nn.Sequential(conv3x3(3, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True))

    def add_head_norm(self, channels: int) -> None:
        """Layers between the last block and the pooling: none, as every block ends with ReLU."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output, (N, C, 8, 8), which the classifier pools."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))
