"""Build any of the course's CIFAR networks by name:
``create_model("resnet56", attention="simam")``."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from simam.models.mobilenetv2 import MobileNetV2
from simam.models.preresnet import PreActResNet
from simam.models.resnet import ResNet
from simam.models.wide_resnet import WideResNet

_MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet20": partial(ResNet, 20),
    "resnet32": partial(ResNet, 32),
    "resnet44": partial(ResNet, 44),
    "resnet56": partial(ResNet, 56),
    "resnet110": partial(ResNet, 110),
    "resnet164": partial(ResNet, 164, block="bottleneck"),
    "preresnet20": partial(PreActResNet, 20),
    "preresnet56": partial(PreActResNet, 56),
    "preresnet110": partial(PreActResNet, 110),
    "preresnet164": partial(PreActResNet, 164, block="bottleneck"),
    "wrn16_8": partial(WideResNet, 16, 8),
    "wrn28_10": partial(WideResNet, 28, 10),
    "mobilenetv2": MobileNetV2,
}


def _key(name: str) -> str:
    """Names match ignoring case, ``-`` and ``_``: "WRN-28-10" is "wrn28_10"."""
    return re.sub(r"[-_\s]", "", name.lower())


_BY_KEY = {_key(name): name for name in _MODELS}


def list_models() -> list[str]:
    """The names :func:`create_model` knows: ResNets, pre-activation ResNets, WRNs, MobileNetV2."""
    return list(_MODELS)


def create_model(
    name: str,
    attention: str | Callable[..., nn.Module] = "none",
    num_classes: int = 10,
    place: str | None = None,
    **attention_kwargs: Any,
) -> nn.Module:
    """The CIFAR network ``name`` with the attention module ``attention`` in every block.

    ``attention`` is any name of :func:`simam.attention.list_attentions`, a module class or a
    partial (``functools.partial(simam.SimAM, lambda_=0.1)``); ``attention_kwargs`` go to every
    attention module (``create_model("resnet20", "simam", lambda_=1e-4)``). ``place``: where every
    block puts it, ``"after_conv"`` or ``"end_of_branch"`` (:data:`simam.attention.PLACES`); None,
    the default, is the paper's place for that module.
    """
    if not isinstance(name, str) or _key(name) not in _BY_KEY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(_MODELS)}")
    return _MODELS[_BY_KEY[_key(name)]](
        num_classes=num_classes, attention=attention, place=place, **attention_kwargs
    )


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_flops_per_image(model: nn.Module, image_shape: tuple[int, ...] = (3, 32, 32)) -> float:
    """FLOPs of one training image through ``model``, forward and backward, as PyTorch's
    ``FlopCounterMode`` counts them: convolutions and matrix products only (not the elementwise
    work of batch norm, activations or SimAM), so a lower bound. Leaves ``model`` unchanged."""
    batch = 2  # batch norm in training mode needs more than one image
    images = torch.randn(batch, *image_shape)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    with FlopCounterMode(display=False) as counter:
        model(images).sum().backward()
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)  # the forward pass moved batch norm's running statistics
    return counter.get_total_flops() / batch
