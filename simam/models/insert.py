"""Put an attention module of the course into a ResNet you did not write: torchvision's, timm's, or
any network whose residual blocks are built like theirs.

    model = torchvision.models.resnet18(weights="IMAGENET1K_V1")
    simam.insert_attention(model, "simam")       # SimAM after the 3x3 conv of every block

The place follows the SimAM paper's reference code (see :mod:`simam.models.layers`): SimAM right
after the block's 3x3 convolution, before its batch norm; SE, CBAM, ECA and GC at the end of the
residual branch, after its last batch norm and before the addition, where their authors put them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from simam.attention import PLACES, ResolvedAttention, resolve_attention

Position = Literal["paper", "after_conv", "end_of_branch"]

_BLOCK_LAYOUT = (
    "a residual block with 3x3 convolution conv2 and batch norm bn2 (basic) or conv1..conv3 and "
    "bn1..bn3 (bottleneck), and a downsample attribute, as in torchvision's and timm's ResNets"
)


def residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """``(name, block, is_bottleneck)`` for every module of ``model`` that :func:`insert_attention`
    recognises as a residual block (``_BLOCK_LAYOUT``)."""
    found = []
    for name, block in model.named_modules():
        if not hasattr(block, "downsample") or not all(
            hasattr(block, f) for f in ("conv1", "bn1", "conv2", "bn2")
        ):
            continue
        bottleneck = hasattr(block, "conv3")
        if bottleneck and not hasattr(block, "bn3"):
            continue
        convs = [_unwrap(block.conv1), _unwrap(block.conv2)] + (
            [_unwrap(block.conv3)] if bottleneck else []
        )
        if not all(isinstance(conv, nn.Conv2d) for conv in convs) or convs[1].kernel_size != (3, 3):
            continue
        found.append((name, block, bottleneck))
    return found


def _unwrap(layer: nn.Module) -> nn.Module:
    """The layer itself, or the layer that an earlier insertion wrapped with its attention."""
    return layer[0] if isinstance(layer, nn.Sequential) and len(layer) == 2 else layer


def _already_attends(block: nn.Module) -> bool:
    """Whether a layer of ``block`` was wrapped by an earlier insertion,
    or timm filled its ``se`` slot."""
    wrapped = any(
        isinstance(getattr(block, f, None), nn.Sequential) for f in ("conv2", "bn2", "bn3")
    )
    se = getattr(block, "se", None)
    return wrapped or (se is not None and not isinstance(se, nn.Identity))


def insert_attention(
    model: nn.Module,
    attention: str | type[nn.Module] | Callable[..., nn.Module],
    position: Position = "paper",
    **kwargs: Any,
) -> nn.Module:
    """Insert ``attention`` into every residual block of ``model``, in place, and return ``model``.

    Args:
        model: a torchvision or timm ResNet (``resnet18``, ``resnet50``, ``resnext50_32x4d``,
            ``wide_resnet50_2``, timm's ``resnet26``, ...) or any network whose residual blocks
            are laid out like theirs: ``conv1``, ``bn1``, ``conv2`` (3x3), ``bn2`` (and ``conv3``,
            ``bn3`` in a bottleneck) and a ``downsample`` attribute.
        attention: a name of :func:`simam.attention.list_attentions`, a module class or a
            partial, as for :func:`simam.create_attention`; built once per block with the block's
            channel count, on the device and in the dtype of its weights (given as ``device`` and
            ``dtype`` where the class takes them, else by moving the module built).
        position: ``"paper"`` puts SimAM (and any :class:`~simam.SimAM`) right after ``conv2``,
            before its batch norm, and every other module after the branch's last batch norm;
            ``"after_conv"`` and ``"end_of_branch"`` choose one of the two for any module.
        kwargs: passed to every attention module (``lambda_=0.1`` for SimAM on ImageNet).

    The layer the attention follows becomes ``nn.Sequential(layer, attention)``, so its parameters
    move from ``conv2.weight`` to ``conv2.0.weight`` in the state dict: load pretrained weights
    first, then insert. Raises ``ValueError`` if ``model`` has no block it recognises, or if a block
    already has attention (an earlier insertion, or timm's ``se`` slot filled).
    """
    if position != "paper" and position not in PLACES:
        raise ValueError(
            f"position must be 'paper', 'after_conv' or 'end_of_branch', got {position!r}"
        )
    resolved = resolve_attention(attention, None if position == "paper" else position, **kwargs)
    blocks = residual_blocks(model)
    if not blocks:
        raise ValueError(
            f"found no residual block in {type(model).__name__} to put attention into; "
            f"expected {_BLOCK_LAYOUT}"
        )
    attending = [name for name, block, _ in blocks if _already_attends(block)]
    if attending:
        raise ValueError(
            f"{len(attending)} blocks already have attention (first: {attending[0]!r}); "
            "insert into a network built without it"
        )
    for _, block, bottleneck in blocks:
        conv = block.conv3 if bottleneck else block.conv2
        if resolved.after_conv:
            module = _build(
                resolved, attention, block.conv2.out_channels, conv.weight.device, conv.weight.dtype
            )
            block.conv2 = nn.Sequential(block.conv2, module)
        else:
            last_norm = "bn3" if bottleneck else "bn2"
            module = _build(
                resolved, attention, conv.out_channels, conv.weight.device, conv.weight.dtype
            )
            setattr(block, last_norm, nn.Sequential(getattr(block, last_norm), module))
    return model


def _build(
    resolved: ResolvedAttention,
    attention: str | Callable[..., nn.Module],
    channels: int,
    device: torch.device,
    dtype: torch.dtype,
) -> nn.Module:
    """The attention module for ``channels`` channels on ``device`` in ``dtype``: made there by a
    builder that takes ``device`` and ``dtype``, as the course's modules and timm's do, or moved
    there after a plain module class builds it."""
    if _takes_factory_arguments(attention):
        return resolved.build(channels, device=device, dtype=dtype)
    return resolved.build(channels).to(device=device, dtype=dtype)


def _takes_factory_arguments(attention: str | Callable[..., nn.Module]) -> bool:
    """Whether ``attention`` (a name, a module class or a partial) accepts ``device``
    and ``dtype``."""
    if isinstance(attention, str):
        return True
    try:
        parameters = inspect.signature(attention).parameters.values()
    except (TypeError, ValueError):  # no signature to read: build plainly, then move
        return False
    return any(p.kind is p.VAR_KEYWORD for p in parameters) or {"device", "dtype"} <= {
        p.name for p in parameters
    }
