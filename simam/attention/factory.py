"""Build any of the course's attention modules by name, so that a network can take the attention
as a setting: ``create_attention("se", 256, reduction=8)``. A class or a partial works too, as in
timm's ``create_attn``: ``create_attention(partial(SimAM, lambda_=0.1), 256)``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

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


@dataclass(frozen=True)
class AttentionKind:
    """What the course knows of one attention module, as data for the networks and the trainer.

    ``build(channels, **kwargs)`` makes the module. ``options``: the settings of a network or a run
    that this module takes (SimAM's ``lambda_``); :func:`attention_options` picks them out.
    ``after_conv``: where the SimAM paper's networks put it, right after a block's 3x3 convolution and
    before its batch norm (SimAM, as in the reference code), else at the end of the residual branch,
    after its last batch norm (SE, CBAM, ECA and GC, where their authors put them). ``compiles``:
    its formula alone can go through ``torch.compile`` (``SimAM(compiled=True)``).
    """

    build: Callable[..., nn.Module]
    options: frozenset[str] = frozenset()
    after_conv: bool = False
    compiles: bool = False


_SIMAM_OPTIONS = frozenset({"lambda_"})
_ATTENTIONS: dict[str, AttentionKind] = {
    "none": AttentionKind(_no_attention),
    "se": AttentionKind(SqueezeExcite),
    "cbam": AttentionKind(CBAM),
    "eca": AttentionKind(ECA),
    "gc": AttentionKind(GlobalContext),
    "simam": AttentionKind(SimAM, _SIMAM_OPTIONS, after_conv=True, compiles=True),
    "simam-exact": AttentionKind(partial(SimAM, exact=True), _SIMAM_OPTIONS, after_conv=True),
}


def attention_kind(name: str) -> AttentionKind:
    """The :class:`AttentionKind` called ``name`` (case-insensitive, ``_`` for ``-``)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in _ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(_ATTENTIONS)}")
    return _ATTENTIONS[key]


def attention_options(name: str, **options: Any) -> dict[str, Any]:
    """Of a run's ``options`` (``lambda_=1e-4``, ...), those that attention ``name`` takes:
    ``attention_options("simam", lambda_=0.1) == {"lambda_": 0.1}``, and ``{}`` for ``"se"``."""
    kind = attention_kind(name)
    return {key: value for key, value in options.items() if key in kind.options}


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
    return attention_kind(name).build(channels, **kwargs)
