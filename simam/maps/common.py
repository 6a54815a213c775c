"""What the map functions share: running a network in evaluation mode and finding its device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode, then give every submodule back its own train/eval flag.

    Eval mode makes each image's map independent of the others in the batch (BN uses its running
    statistics) and deterministic (no dropout). Flags are restored per module, not with one
    ``model.train(...)``, so a network with some parts frozen in eval mode keeps them that way.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model without either)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_images(images: torch.Tensor) -> None:
    """Raise a clear error unless ``images`` is a floating batch (N, C, H, W) with N >= 1."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point() or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            "images must be a non-empty floating-point batch (N, C, H, W), normalised as for "
            f"training; got dtype {images.dtype} and shape {tuple(images.shape)}"
        )
