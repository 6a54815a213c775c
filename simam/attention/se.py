"""Squeeze-and-Excitation channel attention.

Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from simam.attention.common import (
    activation,
    broadcast_over_space,
    check_attention_input,
    reduced_channels,
)


class SqueezeExcite(nn.Module):
    """SE block (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

    Squeeze: average each channel over all spatial positions. Excite: FC C -> C/r, ReLU,
    FC C/r -> C, sigmoid. Scale: multiply every channel of the input by its gate.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the bottleneck ratio of the two FC layers; 16 in the paper. The hidden width
            is ``max(1, C // r)``.
        bias: whether the FC layers have biases. Default ``False``: the SimAM paper's ImageNet
            table (Table 3, SE +2.515M on ResNet-50) counts 2 C^2 / r per block, i.e. FC layers
            without bias, and that is the comparison this course reproduces. Hu et al.'s own models
            have biases (``bias=True``, 2 C^2 / r + C + C / r parameters per block).
        rd_ratio: the hidden width as a fraction of C, ``round(C * rd_ratio)``, in place of
            ``reduction`` (timm's name; its EfficientNet and MobileNetV3 blocks pass it).
        act_layer: the bottleneck's activation class; ``None`` for the paper's ReLU.
        device, dtype: where and in which type to create the parameters, as for ``torch.nn`` layers.

    Works on any number of spatial dimensions: (N, C, L), (N, C, H, W), (N, C, D, H, W), ...
    Parameters: 2 C h (+ h + C with bias), h = max(1, C // r).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        bias: bool = False,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, rd_ratio)
        self.channels = channels
        self.reduce = nn.Linear(channels, hidden, bias=bias, device=device, dtype=dtype)
        self.act = activation(act_layer)
        self.expand = nn.Linear(hidden, channels, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.channels, type(self).__name__)
        squeezed = x.mean(dim=tuple(range(2, x.dim())))
        gate = torch.sigmoid(self.expand(self.act(self.reduce(squeezed))))
        return x * broadcast_over_space(gate, x)
