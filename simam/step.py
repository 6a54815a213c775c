"""One training step as the trainer takes it: the optimiser a configuration trains with, and one
SGD step on a batch under the configured mixed precision. :mod:`simam.train` repeats it in its loop;
``python -m simam.bench train`` times it against a plain PyTorch loop."""

from __future__ import annotations

import torch
from torch import nn

from simam.config import Config
from simam.device import autocast


def make_optimizer(model: nn.Module, config: Config) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter, or only on the weights of convolutions
    and linear layers (the parameters with more than one dimension) if ``norm_bias_decay`` is
    off."""
    params = list(model.parameters())
    decayed = [p for p in params if p.ndim > 1 or config.norm_bias_decay]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}]
    if len(decayed) < len(params):
        groups.append({"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def train_step(
    forward: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: str | None,
) -> torch.Tensor:
    """One SGD step on a batch; returns its loss, detached and left on the device (no sync)."""
    with autocast(images.device, amp_dtype):
        loss = criterion(forward(images), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the scaler is a pass-through unless float16 needs it
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()
