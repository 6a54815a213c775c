"""Convolutional Block Attention Module.

Woo, Park, Lee and Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from simam.attention.common import (
    activation,
    check_attention_input,
    check_odd_kernel_size,
    reduced_channels,
)


class ChannelGate(nn.Module):
    """CBAM's channel attention: the average- and the max-pooled channel vectors go through one
    shared MLP (C -> C/r, ReLU, C/r -> C); the two outputs are summed, squashed by a sigmoid and
    scale the channels. Parameters: 2 C h (+ h + C with bias), h = max(1, C // r).
    ``rd_ratio``, ``act_layer``, ``device`` and ``dtype`` as in :class:`CBAM`."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        bias: bool = True,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, rd_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=bias, device=device, dtype=dtype),
            activation(act_layer),
            nn.Linear(hidden, channels, bias=bias, device=device, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM's spatial attention: the channel-wise max and mean maps, concatenated (2 channels),
    a k x k conv 2 -> 1 with 'same' padding, BatchNorm, sigmoid; the map scales every channel.
    Parameters: 2 k^2 (conv) + 2 (BN scale and shift).

    The BatchNorm's running statistics move with momentum 0.01, as in the authors' CBAM code (and
    the SimAM authors' copy of it), not PyTorch's default 0.1: after the same training steps the
    two give different outputs in evaluation mode."""

    def __init__(
        self,
        kernel_size: int = 7,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_odd_kernel_size(kernel_size)
        # No conv bias: the BatchNorm right after subtracts the mean and would cancel it.
        self.conv = nn.Conv2d(
            2, 1, kernel_size, padding=kernel_size // 2, bias=False, device=device, dtype=dtype
        )
        self.norm = nn.BatchNorm2d(1, momentum=0.01, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.norm(self.conv(pooled)))


class CBAM(nn.Module):
    """CBAM (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018): the channel gate,
    then the spatial gate, applied in sequence.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r of the shared MLP; 16 in the paper. The hidden width is ``max(1, C // r)``.
        kernel_size: k of the spatial conv; 7 in the paper (padding 3).
        bias: whether the MLP's two layers have biases. Default ``True``, as in Woo et al.'s
            models; with it the total over ImageNet ResNet-50 is the +2.533M of the SimAM paper's
            Table 3 (without it, 2.517M).
        rd_ratio: the MLP's hidden width as a fraction of C, ``round(C * rd_ratio)``, in place of
            ``reduction`` (timm's name; its EfficientNet and MobileNetV3 blocks pass it).
        act_layer: the MLP's activation class; ``None`` for the paper's ReLU.
        device, dtype: where and in which type to create the parameters, as for ``torch.nn`` layers.

    Input (N, C, H, W) only. In training mode the BatchNorm needs more than one value per batch,
    i.e. N * H * W > 1. Parameters: 2 C h (+ h + C) + 2 k^2 + 2.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        bias: bool = True,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = channels
        factory = {"device": device, "dtype": dtype}
        self.channel_gate = ChannelGate(
            channels, reduction, bias, rd_ratio=rd_ratio, act_layer=act_layer, **factory
        )
        self.spatial_gate = SpatialGate(kernel_size, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.channels, type(self).__name__, require_2d=True)
        return self.spatial_gate(self.channel_gate(x))
