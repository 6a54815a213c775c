"""Attention modules for ConvNets: SimAM and the baselines it is compared with (SE, CBAM, ECA, GC),
each taking the channel count as its first argument, and a factory that builds them by name."""

from simam.attention.cbam import CBAM
from simam.attention.eca import ECA, eca_kernel_size
from simam.attention.factory import (
    PLACES,
    AttentionKind,
    ResolvedAttention,
    attention_kind,
    attention_options,
    create_attention,
    list_attentions,
    resolve_attention,
)
from simam.attention.gc import GlobalContext
from simam.attention.se import SqueezeExcite
from simam.attention.simam import SimAM

__all__ = [
    "PLACES",
    "AttentionKind",
    "CBAM",
    "ECA",
    "GlobalContext",
    "SimAM",
    "SqueezeExcite",
    "attention_kind",
    "attention_options",
    "create_attention",
    "eca_kernel_size",
    "list_attentions",
    "resolve_attention",
    "ResolvedAttention",
]
