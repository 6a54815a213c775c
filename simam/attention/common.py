"""Input checks, the hidden-width rule and the squeeze-excite slot's arguments that the attention
modules share."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from simam.checks import check_feature_map


def check_channel_count(channels: int, name: str = "channels") -> None:
    """Raise unless ``channels`` is an integer >= 1."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {channels!r}")


def check_odd_kernel_size(kernel_size: int) -> None:
    """Raise unless ``kernel_size`` is an odd integer >= 1: only an odd kernel with padding
    ``kernel_size // 2`` keeps the output the size of its input."""
    is_integer = isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
    if not is_integer or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")


def reduced_channels(channels: int, reduction: int, rd_ratio: float | None = None) -> int:
    """The hidden width of a bottleneck: ``channels // reduction``, but never below 1.

    Floor division keeps the published counts exact (every ResNet width is a multiple of 16); the
    floor at 1 keeps the module usable on tiny feature maps such as C < 16.

    ``rd_ratio`` is timm's way to say the same thing, a fraction of the channels: when given, it
    replaces ``reduction`` and the width is ``max(1, round(channels * rd_ratio))``. timm's
    EfficientNet and MobileNetV3 blocks pass it to whatever fills their squeeze-excite slot.
    """
    check_channel_count(channels)
    if rd_ratio is not None:
        if (
            isinstance(rd_ratio, bool)
            or not isinstance(rd_ratio, (int, float))
            or not 0 < rd_ratio <= 1
        ):
            raise ValueError(f"rd_ratio must be a number in (0, 1], got {rd_ratio!r}")
        return max(1, round(channels * rd_ratio))
    check_channel_count(reduction, "reduction")
    return max(1, channels // reduction)


def activation(act_layer: Callable[[], nn.Module] | None) -> nn.Module:
    """The bottleneck's activation: ``nn.ReLU()`` as the papers have it, or ``act_layer()``, the
    block's own activation that timm's EfficientNet and MobileNetV3 pass to their squeeze-excite
    slot (``nn.SiLU`` in EfficientNet)."""
    if act_layer is None:
        return nn.ReLU()
    if not callable(act_layer):
        raise TypeError(
            f"act_layer must be a module class or a callable returning a module, got {act_layer!r}"
        )
    return act_layer()


def check_attention_input(
    x: torch.Tensor, channels: int, module: str, require_2d: bool = False
) -> None:
    """Raise a clear error unless ``x`` is a floating (N, C, *spatial) tensor with C ==
    ``channels``; with ``require_2d`` (modules built from 2-D convs), exactly (N, C, H, W)."""
    if require_2d and isinstance(x, torch.Tensor) and x.dim() != 4:
        raise ValueError(
            f"{module} expects input of shape (N, C, H, W), got shape {tuple(x.shape)}"
        )
    check_feature_map(x)
    if x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for {channels} channels, got input with {x.shape[1]} channels "
            f"(shape {tuple(x.shape)})"
        )


def broadcast_over_space(gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-channel gate of shape (N, C) as (N, C, 1, ..., 1), broadcastable against ``x``."""
    return gate.view(*gate.shape, *([1] * (x.dim() - 2)))
