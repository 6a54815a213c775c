"""Global context block.

Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
ICCV Workshops 2019; extended as "Global Context Networks", IEEE TPAMI 2020.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from simam.attention.common import activation, check_attention_input, reduced_channels


class GlobalContext(nn.Module):
    """GC block (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
    Beyond", ICCVW 2019).

    Context modelling: a 1x1 conv C -> 1 gives one logit per position, a softmax over the H W
    positions turns them into weights, and the context is the weighted sum of x over positions
    (one C-vector per sample). Transform: 1x1 conv C -> h, LayerNorm over (h, 1, 1), ReLU, 1x1 conv
    h -> C. Fusion: the transformed context is added to every position of x.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: the inverse of the paper's bottleneck ratio r = 1/16, so 16 by default;
            the hidden width is h = ``max(1, C // reduction)``. With h = 1 the LayerNorm maps its
            single value to its shift, so the block adds a constant that ignores the context: use
            C >= 2 * reduction for a block that attends.
        rd_ratio: the hidden width as a fraction of C, ``round(C * rd_ratio)``, in place of
            ``reduction`` (timm's name; its EfficientNet and MobileNetV3 blocks pass it).
        act_layer: the transform's activation class; ``None`` for the paper's ReLU.
        device, dtype: where and in which type to create the parameters, as for ``torch.nn`` layers.

    The last conv starts at zero, so a freshly built block is the identity (as in the paper); the
    gradient then reaches only that conv until it moves away from zero. The context conv has no
    bias: a constant added to every logit leaves the softmax unchanged, so it would never learn.

    Input (N, C, H, W) only. Parameters: C (context) + C h + h (conv) + 2 h (LayerNorm)
    + h C + C (conv) = 2 C h + 3 h + 2 C.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, rd_ratio)
        factory = {"device": device, "dtype": dtype}
        self.channels = channels
        self.context_logits = nn.Conv2d(channels, 1, kernel_size=1, bias=False, **factory)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, **factory),
            nn.LayerNorm([hidden, 1, 1], **factory),
            activation(act_layer),
            nn.Conv2d(hidden, channels, kernel_size=1, **factory),
        )
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_attention_input(x, self.channels, type(self).__name__, require_2d=True)
        weights = self.context_logits(x).flatten(1).softmax(dim=1).view_as(x[:, 0])
        context = torch.einsum("nchw,nhw->nc", x, weights)
        return x + self.transform(context[:, :, None, None])
