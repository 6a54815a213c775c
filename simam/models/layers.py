"""What the CIFAR networks share: initialised convolutions and their stages. Where attention goes
in a block is :func:`simam.attention.resolve_attention`'s to say."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from simam.attention import ResolvedAttention


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A 3x3 convolution, padding 1, no bias (a BN follows), He-initialised
    (see :func:`he_init`)."""
    return he_init(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 convolution, no bias, He-initialised (see :func:`he_init`)."""
    return he_init(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False))


def he_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Draw the weights from N(0, 2 / fan_out), fan_out = out_channels * kernel area
    (He et al. 2015).

    The networks initialise each of their own convolutions this way when they create it, and never
    walk over all modules afterwards, so an attention module keeps its own initialisation (GC's
    zero-initialised last convolution, for one). BN layers keep PyTorch's weight 1, bias 0 (also the
    last BN of each residual branch: no zero-init, as in the reference code), linear layers
    PyTorch's default.
    """
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def count_blocks_per_stage(depth: int, convolutions_per_block: int, family: str) -> int:
    """n for a three-stage CIFAR network of ``depth`` = 3 n ``convolutions_per_block`` + 2 layers
    (the stem and the classifier make the 2); a clear error for any other depth."""
    layers_per_stage = 3 * convolutions_per_block
    if depth < layers_per_stage + 2 or (depth - 2) % layers_per_stage:
        raise ValueError(f"{family} has depth {layers_per_stage}n + 2, got {depth}")
    return (depth - 2) // layers_per_stage


def make_stages(
    block: Callable[[int, int, int], nn.Module],
    widths: Sequence[int],
    blocks_per_stage: int,
    expansion: int = 1,
    in_channels: int = 16,
) -> tuple[nn.Sequential, int]:
    """The stages of a CIFAR network and the channel count they end with.

    ``block(in_channels, width, stride)`` builds one block that outputs ``width * expansion``
    channels; each stage has ``blocks_per_stage`` of them, and the first block of every stage but
    the first halves the resolution (stride 2).
    """
    stages, channels = [], in_channels
    for stage, width in enumerate(widths):
        blocks = []
        for index in range(blocks_per_stage):
            blocks.append(block(channels, width, 2 if stage > 0 and index == 0 else 1))
            channels = width * expansion
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), channels


class AttentionAtPlace:
    """What a block with one attention module at one of two places shares (mixed into an
    ``nn.Module``): the module, stored as ``attention``, and the two points of ``forward`` where
    it may act. Exactly one of :meth:`after_conv` and :meth:`at_end` applies it; the other passes
    its input through."""

    attention: nn.Module
    attention_after_conv: bool

    def add_attention(
        self, attention: ResolvedAttention, channels_after_conv: int, channels_at_end: int
    ) -> None:
        """Build the block's attention module for the channel count at its place."""
        self.attention_after_conv = attention.after_conv
        self.attention = attention.build(
            channels_after_conv if attention.after_conv else channels_at_end
        )

    def after_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Right after the block's 3x3 convolution, before the BN that follows it."""
        return self.attention(x) if self.attention_after_conv else x

    def at_end(self, x: torch.Tensor) -> torch.Tensor:
        """At the end of the residual branch, before the shortcut is added."""
        return x if self.attention_after_conv else self.attention(x)
