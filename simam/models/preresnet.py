"""Pre-activation CIFAR ResNets of He et al., "Identity Mappings in Deep Residual Networks",
ECCV 2016.

The layout of :mod:`simam.models.resnet` (a 3x3 convolution with 16 channels, three stages with 16,
32, 64 channels, depth 6n + 2 with basic blocks or 9n + 2 with bottlenecks), but every residual
branch starts with BN and ReLU and ends with a convolution (Fig. 4e of that paper), nothing follows
the addition, and one BN and ReLU after the last block feed the pooling and the classifier.
PreResNet-20, 56, 110 use basic blocks (n = 3, 9, 18), PreResNet-164 bottlenecks (n = 18).

Shortcuts follow the SimAM reference code: identity where a block keeps the shape, else a 1x1
convolution with the block's stride (no BN, as usual in pre-activation networks), applied to the
block's input as it comes, before the branch's BN and ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import ResolvedAttention
from simam.models.layers import AttentionAtPlace, conv1x1, conv3x3
from simam.models.resnet import ResNet


def shortcut_without_bn(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of a block: identity if the shape is kept, else a 1x1 convolution (no BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv1x1(in_channels, out_channels, stride)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the shortcut.

    Every attention module, SimAM included, goes after the second convolution, which is both the
    end of the branch and the place right after the 3x3 convolution: no BN follows that convolution
    inside the block, so both places of :data:`simam.attention.PLACES` are this one.
    """

    expansion = 1
    convolutions = 2

    def __init__(
        self, in_channels: int, planes: int, stride: int, attention: ResolvedAttention
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.attention = attention.build(planes)
        self.shortcut = shortcut_without_bn(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x), inplace=True))
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        return self.attention(out) + self.shortcut(x)


class PreActBottleneck(AttentionAtPlace, nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1, plus the shortcut.

    The stride sits on the 3x3 convolution. ``"after_conv"`` puts the attention right after the 3x3
    convolution, before the BN that follows it (SimAM's place); ``"end_of_branch"`` after the last
    convolution, at the end of the branch (the place of SE, CBAM, ECA, GC).
    """

    expansion = 4
    convolutions = 3

    def __init__(
        self, in_channels: int, planes: int, stride: int, attention: ResolvedAttention
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.add_attention(attention, planes, out_channels)
        self.shortcut = shortcut_without_bn(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x), inplace=True))
        out = self.after_conv(self.conv2(F.relu(self.bn2(out), inplace=True)))
        out = self.at_end(self.conv3(F.relu(self.bn3(out), inplace=True)))
        return out + self.shortcut(x)


class PreActResNet(ResNet):
    """A pre-activation CIFAR ResNet of ``depth`` layers with an attention module in every block.

    Args:
        depth: 6n + 2 with ``block="basic"`` (20, 56, 110), 9n + 2 with ``"bottleneck"`` (164).
        num_classes: outputs of the classifier.
        attention: a name of :func:`simam.attention.create_attention` (``"none"``: plain network).
        block: ``"basic"`` or ``"bottleneck"``.
        place: where each block puts it, one of :data:`simam.attention.PLACES`; None: the paper's.
        **attention_kwargs: passed to every attention module (``lambda_`` for SimAM, ...).

    :class:`~simam.models.resnet.ResNet`'s constructor with pre-activation blocks, a stem that is a
    bare convolution (the first block's BN and ReLU follow it), and BN and ReLU after the last
    block.
    """

    blocks: dict[str, type[nn.Module]] = {"basic": PreActBasicBlock, "bottleneck": PreActBottleneck}
    family = "a pre-activation ResNet"

    def make_stem(self) -> nn.Module:
        return conv3x3(3, 16)

    def add_head_norm(self, channels: int) -> None:
        self.bn = nn.BatchNorm2d(channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.stages(self.stem(x))), inplace=True)
