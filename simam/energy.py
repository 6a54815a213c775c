"""The energy function behind SimAM, in closed form and vectorised.

Yang et al., "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks",
ICML 2021, section 3.2. For one channel of a feature map, a target neuron ``t`` and the other
``M - 1`` neurons ``x_i`` of that channel, equation (2) of the paper is

    e_t(w, b) = 1/(M-1) sum_i (-1 - (w x_i + b))^2 + (1 - (w t + b))^2 + lambda w^2 .

Every function here takes a feature map of shape (N, C, *spatial) (any number of spatial
dimensions, ``M`` their product) and returns one value per neuron, of the same shape, unless it
says otherwise. Notebook 01 derives the formulas; notebook 02 checks them against numerical
minimisation.

Three choices of statistics are offered wherever the paper's equation (5) appears:

``"exact"``
    leave-one-out: the mean and variance of the ``M - 1`` other neurons, as equations (3) and (4)
    define them. This is the true minimum of equation (2).
``"paper"``
    one mean and one variance (denominator ``M``) for the whole channel, as equation (5) prints.
``"reference"``
    one mean for the whole channel and the variance with denominator ``M - 1``, as the authors'
    reference code computes; the paper's published numbers come from this one.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Literal

import torch

from simam.checks import check_feature_map, check_lambda

Statistics = Literal["exact", "paper", "reference"]
STATISTICS: tuple[str, ...] = ("exact", "paper", "reference")


def spatial_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The dimensions that hold the neurons of one channel: all after the first two."""
    return tuple(range(2, x.dim()))


def neurons_per_channel(x: torch.Tensor) -> int:
    """M, the number of neurons in one channel (the product of the spatial sizes).

    A loop rather than ``math.prod``: SimAM's TorchScript form calls this."""
    m = 1
    for size in x.shape[2:]:
        m *= size
    return m


def _shifted(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split x into (shift, x - shift) with the shift the first neuron of each channel.

    Statistics are computed on ``x - shift`` and the shift is added back to the means. For a
    constant channel ``x - shift`` is exactly 0, so its mean comes back exactly and its variance is
    exactly 0; computing ``x.mean()`` directly would round (the mean of seven 0.1 is not 0.1 in
    binary), leave deviations of 1e-17 whose ratios are O(1), and with lambda = 0 give a constant
    channel e* = 4/3 instead of 2. The shift also spares precision when a channel has a large
    offset.
    """
    shift = x.flatten(2)[:, :, :1].reshape(x.shape[:2] + (1,) * (x.dim() - 2))
    return shift, x - shift


def channel_statistics(x: torch.Tensor, correction: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of each channel over all ``M`` neurons, kept broadcastable to ``x``.

    ``correction=0`` divides the sum of squared deviations by ``M`` (equation 5), ``correction=1``
    by ``M - 1`` (the reference code). With ``M - correction <= 0`` the variance is defined as 0:
    a single neuron does not vary.
    """
    check_feature_map(x)
    dims = spatial_dims(x)
    shift, y = _shifted(x)
    mean_y = y.mean(dim=dims, keepdim=True)
    squared_deviations = (y - mean_y).square().sum(dim=dims, keepdim=True)
    return shift + mean_y, squared_deviations / max(neurons_per_channel(x) - correction, 1)


def leave_one_out_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every neuron t: the mean and variance (denominator M - 1) of the *other* M - 1 neurons.

    Uses the exact down-date identities (derived in notebook 01)
        mu_t = (M mu - t) / (M - 1),
        (M - 1) sigma_t^2 = S - M/(M - 1) (t - mu)^2,    S = sum_i (x_i - mu)^2,
    so the cost is linear in M rather than quadratic. Needs M >= 2.
    """
    check_feature_map(x)
    m = neurons_per_channel(x)
    if m < 2:
        raise ValueError(
            f"leave-one-out statistics need at least 2 neurons per channel, got M = {m}"
        )
    dims = spatial_dims(x)
    shift, y = _shifted(x)
    mean_y = y.mean(dim=dims, keepdim=True)
    deviation = y - mean_y
    total = deviation.square().sum(dim=dims, keepdim=True)
    loo_mean = shift + (mean_y - deviation / (m - 1))
    # Round-off can push the down-dated sum a hair below zero when the others are all equal.
    loo_total = (total - deviation.square() * (m / (m - 1))).clamp_min(0.0)
    return loo_mean, loo_total / (m - 1)


def energy(
    x: torch.Tensor, w: torch.Tensor | float, b: torch.Tensor | float, lambda_: float = 1e-4
) -> torch.Tensor:
    """Equation (2): the energy of every target neuron for its own ``(w, b)``.

    ``w`` and ``b`` broadcast against ``x``: one pair per neuron. The mean over the other neurons is
    evaluated through their leave-one-out mean and variance, which is exact (notebook 01):
        1/(M-1) sum_i (-1 - w x_i - b)^2 = (1 + w mu_t + b)^2 + w^2 sigma_t^2 .
    """
    check_lambda(lambda_)
    loo_mean, loo_var = leave_one_out_statistics(x)
    others = (1 + w * loo_mean + b).square() + w * w * loo_var
    target = (1 - (w * x + b)).square()
    return others + target + lambda_ * w * w


def closed_form_minimiser(
    x: torch.Tensor, lambda_: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact minimiser (w_t, b_t) of equation (2) for every neuron (derived in notebook 01).

        w_t = 2 (t - mu_t) / ((t - mu_t)^2 + 2 sigma_t^2 + 2 lambda)
        b_t = -(t + mu_t) w_t / 2

    The sign of w_t is the opposite of the paper's printed equation (3): with labels y_t = +1 and
    y_o = -1 the target must map to w t + b > 0. Where the denominator vanishes (lambda = 0 and all
    M neurons equal) every (w, -w t) is a minimiser; the minimum-norm one, w = b = 0, is returned.
    """
    check_lambda(lambda_)
    loo_mean, loo_var = leave_one_out_statistics(x)
    distance = x - loo_mean
    denominator = distance.square() + 2 * loo_var + 2 * lambda_
    w = torch.where(denominator > 0, 2 * distance / denominator.where(denominator > 0, 1.0), 0.0)
    return w, -0.5 * (x + loo_mean) * w


def minimal_energy(
    x: torch.Tensor, lambda_: float = 1e-4, statistics: Statistics = "exact"
) -> torch.Tensor:
    """e_t*, the minimum of equation (2) over (w, b), for every neuron (equation 5's form).

        e_t* = 4 (sigma^2 + lambda) / ((t - mu)^2 + 2 sigma^2 + 2 lambda)

    with (mu, sigma^2) chosen by ``statistics`` (see the module docstring). The lower e_t*, the more
    the neuron stands out from its channel. Where the fraction is 0/0 (lambda = 0, t = mu and
    sigma = 0) the true minimum of equation (2) is 2 (w = b = 0), and 2 is returned.
    """
    check_lambda(lambda_)
    mean, var = _statistics(x, statistics)
    spread = var + lambda_
    denominator = (x - mean).square() + 2 * spread
    return torch.where(denominator > 0, 4 * spread / denominator.where(denominator > 0, 1.0), 2.0)


def importance(
    x: torch.Tensor, lambda_: float = 1e-4, statistics: Statistics = "reference"
) -> torch.Tensor:
    """1/e_t*, the importance of every neuron: (t - mu)^2 / (4 (sigma^2 + lambda)) + 1/2.

    Always >= 1/2, so sigmoid(importance) lies in [sigmoid(1/2), 1] ~ [0.622, 1]. With lambda = 0
    and sigma = 0 the fraction is either 0/0 (t = mu, a constant channel): the value is 1/2, the
    limit e* = 2 above; or c/0 with c > 0 (only with "exact" statistics: t differs from M - 1
    equal others): e* = 0 and the value is +inf.
    """
    check_lambda(lambda_)
    mean, var = _statistics(x, statistics)
    return importance_from_statistics(x, mean, var, lambda_)


def importance_from_statistics(
    x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, lambda_: torch.Tensor | float
) -> torch.Tensor:
    """:func:`importance` given each neuron's ``mean`` and ``var`` (broadcastable to ``x``), with
    the degenerate cases defined as there. ``lambda_`` may be a tensor: :func:`simam.simam_exact`
    passes ``lambda * p^2`` for channels rescaled by ``p``."""
    spread = 4 * (var + lambda_)
    squared_distance = (x - mean).square()
    ratio = squared_distance / spread.where(spread > 0, 1.0)
    degenerate = torch.where(squared_distance > 0, math.inf, 0.0).to(ratio.dtype)  # c / 0 and 0 / 0
    return torch.where(spread > 0, ratio, degenerate) + 0.5


def _statistics(x: torch.Tensor, statistics: Statistics) -> tuple[torch.Tensor, torch.Tensor]:
    if statistics == "exact":
        return leave_one_out_statistics(x)
    if statistics == "paper":
        return channel_statistics(x, correction=0)
    if statistics == "reference":
        return channel_statistics(x, correction=1)
    raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")


@dataclass
class NumericMinimum:
    """What :func:`numeric_minimiser` found: one (w, b) per neuron, their energies, and the mean
    energy after each optimiser step (``history[0]`` is at the starting point)."""

    w: torch.Tensor
    b: torch.Tensor
    energy: torch.Tensor
    history: list[float] = field(default_factory=list)


_DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05, "sgd": 0.1}


def _optimiser(
    method: str, parameters: list[torch.Tensor], lr: float | None, dtype: torch.dtype
) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimiser of :func:`numeric_minimiser` for ``method``, at ``lr``
    (None: its default)."""
    if not isinstance(method, str) or method not in _DEFAULT_LR:
        raise ValueError(f"method must be 'lbfgs', 'adam' or 'sgd', got {method!r}")
    lr = _DEFAULT_LR[method] if lr is None else lr
    if not (isinstance(lr, numbers.Real) and 0.0 < float(lr) < float("inf")):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if method == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if method == "sgd":
        return torch.optim.SGD(parameters, lr=lr)
    # One iteration per step, so history records every iteration. max_eval must be set: its default
    # (max_iter * 5 // 4 = 1) would leave the line search no evaluations and stall it after a few
    # steps. The stopping tolerances scale with the precision, so float64 runs converge to ~1e-14,
    # not ~1e-10.
    eps = torch.finfo(dtype).eps
    return torch.optim.LBFGS(
        parameters,
        lr=lr,
        max_iter=1,
        max_eval=26,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=min(1e-7, 1e4 * eps),
        tolerance_change=min(1e-9, 10 * eps),
    )


def numeric_minimiser(
    x: torch.Tensor,
    lambda_: float = 1e-4,
    method: Literal["lbfgs", "adam", "sgd"] = "lbfgs",
    steps: int = 100,
    lr: float | None = None,
) -> NumericMinimum:
    """Minimise equation (2) for every neuron at once with a ``torch.optim`` optimiser.

    The neurons' problems are independent, so minimising the sum of their energies minimises each
    one. Starts from w = b = 0. ``lr`` defaults to 1 for L-BFGS (with a strong-Wolfe line search),
    0.05 for Adam and 0.1 for SGD. ``x`` is treated as data: no gradient flows into it.
    """
    check_feature_map(x)
    check_lambda(lambda_)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    x = x.detach()
    w = torch.zeros_like(x, requires_grad=True)
    b = torch.zeros_like(x, requires_grad=True)
    optimiser = _optimiser(method, [w, b], lr, x.dtype)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        total = energy(x, w, b, lambda_).sum()
        total.backward()
        return total

    history = [energy(x, w, b, lambda_).mean().item()]
    for _ in range(steps):
        optimiser.step(closure)
        with torch.no_grad():
            history.append(energy(x, w, b, lambda_).mean().item())
    with torch.no_grad():
        return NumericMinimum(w.detach(), b.detach(), energy(x, w, b, lambda_), history)
