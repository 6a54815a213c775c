"""Efficient Channel Attention.

Wang, Wu, Zhu, Li, Zuo and Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from simam.attention.common import (
    broadcast_over_space,
    check_attention_input,
    check_channel_count,
    check_odd_kernel_size,
)


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """ECA's adaptive kernel size: t = |(log2(C) + b) / gamma| rounded to an odd number.

    The rounding is to the nearest odd number, with ties (t an even integer) going up; since every
    real t in [2m, 2m + 2) has 2m + 1 as its nearest odd number, that is ``2 * floor(t / 2) + 1``
    (the same as truncating t and adding one if the result is even). With the published gamma = 2,
    b = 1: C = 64 -> 3 (t = 3.5), C = 128 -> 5 (t = 4), C = 256..1024 -> 5, C = 2048 -> 7 (t = 6).
    """
    check_channel_count(channels)
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    t = abs((math.log2(channels) + b) / gamma)
    return 2 * math.floor(t / 2) + 1


class ECA(nn.Module):
    """ECA block (Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
    Networks", CVPR 2020).

    Average each channel over all spatial positions, run a 1-D convolution of odd size k (no bias,
    zero padding) across the channel axis, sigmoid, and multiply every channel of the input by its
    gate. No dimensionality reduction; each gate sees the k channels centred on
    its own.

    Args:
        channels: C, the number of input (and output) channels.
        kernel_size: k, an odd number; ``None`` picks it from C with :func:`eca_kernel_size`.
        gamma, b: the constants of the adaptive rule (2 and 1 in the paper).
        rd_ratio, act_layer: accepted and ignored, so that ECA fills timm's squeeze-excite slot
            (whose blocks pass them): ECA has neither a bottleneck nor an activation before its
            gate.
        device, dtype: where and in which type to create the parameters, as for ``torch.nn`` layers.

    Works on any number of spatial dimensions. Parameters: k.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2,
        b: float = 1,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_channel_count(channels)
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels, gamma, b)
        check_odd_kernel_size(kernel_size)
        self.channels = channels
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=kernel_size // 2, bias=False, device=device, dtype=dtype
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.channels, type(self).__name__)
        pooled = x.mean(dim=tuple(range(2, x.dim())))
        gate = torch.sigmoid(self.conv(pooled.unsqueeze(1)).squeeze(1))
        return x * broadcast_over_space(gate, x)
