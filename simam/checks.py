"""The input checks that the energy maths and every attention module share: a feature map of shape
(N, C, *spatial) and SimAM's regulariser. A good input costs a few attribute reads (under a
microsecond a call); the message is built only for a bad one."""

from __future__ import annotations

import math
import numbers

import torch


def check_feature_map(x: torch.Tensor, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a floating tensor of shape (N, C, *spatial)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 3:
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with at least one spatial dimension, "
            f"got shape {tuple(x.shape)}"
        )
    if math.prod(x.shape[2:]) == 0:
        raise ValueError(
            f"{name} must have at least one neuron per channel (no spatial size 0), "
            f"got shape {tuple(x.shape)}"
        )


def check_lambda(lambda_: float) -> None:
    """Raise unless the regulariser is a finite real number >= 0 (Python or NumPy scalar)."""
    if isinstance(lambda_, bool) or not isinstance(lambda_, numbers.Real):
        raise TypeError(
            f"lambda_ must be a finite real number >= 0, got {type(lambda_).__name__} {lambda_!r}"
        )
    if not 0.0 <= float(lambda_) < float("inf"):  # also false for NaN
        raise ValueError(f"lambda_ must be a finite real number >= 0, got {lambda_!r}")
