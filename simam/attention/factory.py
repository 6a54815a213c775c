"""Build any of the course's attention modules by name, so that a network can take the attention
as a setting: ``create_attention("se", 256, reduction=8)``. A class or a partial works too, as in
timm's ``create_attn``: ``create_attention(partial(SimAM, lambda_=0.1), 256)``."""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from simam.attention.cbam import CBAM
from simam.attention.eca import ECA
from simam.attention.gc import GlobalContext
from simam.attention.se import SqueezeExcite
from simam.attention.simam import SimAM


def _no_attention(
    channels: int | None = None, *, rd_ratio=None, act_layer=None, device=None, dtype=None
) -> nn.Module:
    """``nn.Identity``; takes the channel count and the squeeze-excite slot's and factory keyword
    arguments only to share the other builders' signature."""
    return nn.Identity()


_ATTENTIONS: dict[str, Callable[..., nn.Module]] = {
    "none": _no_attention,
    "se": SqueezeExcite,
    "cbam": CBAM,
    "eca": ECA,
    "gc": GlobalContext,
    "simam": SimAM,
    "simam-exact": partial(SimAM, exact=True),
}


def list_attentions() -> list[str]:
    """The names :func:`create_attention` knows: no attention, then the modules in the column order
    of the SimAM paper's Table 2, then SimAM with the exact energy."""
    return list(_ATTENTIONS)


def create_attention(
    name: str | type[nn.Module] | Callable[..., nn.Module], channels: int | None, **kwargs
) -> nn.Module:
    """The attention module called ``name`` for ``channels`` channels; ``kwargs`` go to its
    constructor (``lambda_`` for SimAM, ``reduction`` for SE, CBAM and GC, ``kernel_size`` for
    ECA, ``device`` and ``dtype`` for all, ...). Names are case-insensitive and ``_`` may stand for
    ``-``; ``"none"`` gives ``nn.Identity``. ``channels`` may be ``None`` only for the
    parameter-free ``none``/``simam``.

    ``name`` may also be a module class or a partial of one (any callable that builds a module):
    it is called as ``name(channels, **kwargs)``.
    """
    if not isinstance(name, str):
        if not callable(name):
            raise TypeError(f"name must be a string, a module class or a partial, got {type(name).__name__}")
        module = name(channels, **kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name!r} built a {type(module).__name__}, not an nn.Module")
        return module
    key = name.strip().lower().replace("_", "-")
    if key not in _ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(_ATTENTIONS)}")
    return _ATTENTIONS[key](channels, **kwargs)
