"""Build any of the course's attention modules by name, so that a network can take the attention
as a setting: ``create_attention("se", 256, reduction=8)``. A class or a partial works too, as in
timm's ``create_attn``: ``create_attention(partial(SimAM, lambda_=0.1), 256)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
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
    ``after_conv``: where the SimAM paper's networks put it (its place, see :data:`PLACES`): right
    after a block's 3x3 convolution and before that convolution's batch norm (SimAM, as in the
    reference code), else at the end of the residual branch, after its last batch norm (SE, CBAM,
    ECA and GC, where their authors put them). ``compiles``:
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
            raise TypeError(
                f"name must be a string, a module class or a partial, got {type(name).__name__}"
            )
        module = name(channels, **kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name!r} built a {type(module).__name__}, not an nn.Module")
        return module
    return attention_kind(name).build(channels, **kwargs)


Place = Literal["after_conv", "end_of_branch"]

PLACES: tuple[str, ...] = ("after_conv", "end_of_branch")
"""Where a block can hold its attention module. ``"after_conv"``: right after the block's 3x3
convolution, before the batch norm that follows it (SimAM's place in the reference code);
``"end_of_branch"``: after the residual branch's last batch norm, before the addition (SE's place).
In a basic block both sit around the same batch norm, the one after the last convolution, so the
place decides whether that batch norm rescales what the attention weighted."""


@dataclass(frozen=True)
class ResolvedAttention:
    """An attention setting resolved once for a network: ``build(channels, **factory)`` makes the
    module for one block (``factory``: ``device``, ``dtype``), and ``after_conv`` says where the
    block puts it (True: ``"after_conv"``, False: ``"end_of_branch"``, see :data:`PLACES`)."""

    build: Callable[..., nn.Module]
    after_conv: bool

    @property
    def place(self) -> str:
        return PLACES[0] if self.after_conv else PLACES[1]


def resolve_attention(
    attention: str | type[nn.Module] | Callable[..., nn.Module],
    place: str | None = None,
    **kwargs: Any,
) -> ResolvedAttention:
    """The one place where an attention setting becomes a builder and a place in the block.

    ``attention``: a name of :func:`list_attentions`, a module class or a partial, as for
    :func:`create_attention`; ``kwargs`` are bound to every module it builds. ``place``: one of
    :data:`PLACES`, or None for the paper's place: ``"after_conv"`` for SimAM (by name, or a class
    or partial that builds a :class:`~simam.attention.SimAM`), ``"end_of_branch"`` for every other
    module.
    """
    if place is not None and place not in PLACES:
        raise ValueError(
            f"place must be one of {', '.join(PLACES)} or None (the paper's), got {place!r}"
        )
    if isinstance(attention, str):
        attention_kind(attention)  # an unknown name fails here, before any block is built
    elif not callable(attention):
        raise TypeError(
            f"attention must be a name, a module class or a partial, got {type(attention).__name__}"
        )
    _check_options(attention, kwargs)

    def build(channels: int | None, **factory: Any) -> nn.Module:
        return create_attention(attention, channels, **factory, **kwargs)

    after_conv = (
        place == PLACES[0] if place is not None else _paper_place_is_after_conv(attention, build)
    )
    return ResolvedAttention(build, after_conv)


def _check_options(attention: str | Callable[..., nn.Module], options: dict[str, Any]) -> None:
    """A clear error, before any block is built, for an option that ``attention``'s constructor does
    not take (a network's own option given to a network that lacks it ends up here too)."""
    target = attention_kind(attention).build if isinstance(attention, str) else attention
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to read: let the constructor decide
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        name = (
            attention
            if isinstance(attention, str)
            else getattr(attention, "__name__", repr(attention))
        )
        known = [p for p in parameters if p not in ("channels", "device", "dtype")]
        raise TypeError(
            f"attention {name!r} takes no option {unknown[0]!r} (neither does the network); "
            f"its options: {', '.join(known) or 'none'}"
        )


def _paper_place_is_after_conv(
    attention: str | Callable[..., nn.Module], build: Callable[..., nn.Module]
) -> bool:
    """Whether the paper puts ``attention`` right after the 3x3 convolution: the registry says so
    for a name; a class or partial is asked what it builds (on the meta device, so nothing is
    allocated)."""
    if isinstance(attention, str):
        return attention_kind(attention).after_conv
    if isinstance(attention, type):
        return issubclass(attention, SimAM)
    with torch.device("meta"):
        return isinstance(build(8), SimAM)
