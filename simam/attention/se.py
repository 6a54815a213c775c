"""Squeeze-and-Excitation channel attention.

Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from simam.attention.common import broadcast_over_space, check_attention_input, reduced_channels


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

    Works on any number of spatial dimensions: (N, C, L), (N, C, H, W), (N, C, D, H, W), ...
    Parameters: 2 C h (+ h + C with bias), h = max(1, C // r).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.channels = channels
        self.reduce = nn.Linear(channels, hidden, bias=bias)
        self.expand = nn.Linear(hidden, channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.channels, type(self).__name__)
        squeezed = x.mean(dim=tuple(range(2, x.dim())))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(squeezed))))
        return x * broadcast_over_space(gate, x)
