"""SimAM, the parameter-free 3-D attention module, as an ``nn.Module`` and as functions.

Yang, Zhang, Li and Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
Neural Networks", ICML 2021, equations (5) and (6). Every neuron ``t`` of a channel is weighted by
``sigmoid(1 / e_t*)``, its importance from the energy function of :mod:`simam.energy`:

    y = x * sigmoid((x - mu)^2 / (4 (sigma^2 + lambda)) + 1/2)

with ``mu`` and ``sigma^2`` taken per sample and channel over all ``M`` spatial positions. Inputs
have shape (N, C, *spatial) with any number of spatial dimensions: (N, C, L) signals,
(N, C, H, W) images, (N, C, D, H, W) volumes and video.

Five forms of the formula exist, each for a reason:

:func:`simam` (the default, used by :class:`SimAM`)
    ``mu`` the channel mean and ``sigma^2`` the sum of squared deviations divided by ``M - 1``, as
    the authors' reference code computes them (equation (5) prints ``1/M``); the paper's published
    results come from this form.
    It runs the autograd function ``_SimAMFunction``, whose analytic gradient saves only the input
    and three numbers per channel for the backward pass; ``_simam_ops`` writes the same formula in
    plain differentiable ops, for the tracers (TorchScript, ``torch.compile``) and double backward.
:func:`simam_exact` (``SimAM(exact=True)``)
    the true minimum of equation (2): each neuron is compared with the mean and variance of the
    ``M - 1`` *other* neurons of its channel (leave-one-out), which the paper approximates by
    sharing one mean and variance per channel. Plain autograd, so slower.
:func:`simam_reference`
    the reference code's formula written out in plain autograd ops, failures included (see below).
    For comparisons and benchmarks only.
:func:`simam.energy.importance`
    the importance ``1/e_t*`` alone, with any of the three statistics, for the course's derivations;
    :func:`simam_exact` shares its last step.

Where the reference formula fails, :func:`simam` and :func:`simam_exact` define a finite result:

* one spatial position (``M = 1``, e.g. 1x1 maps): the reference divides 0 by 0. One neuron does
  not vary, so ``sigma^2 = 0``, its deviation is 0 and its weight is ``sigmoid(1/2) ~ 0.6225``.
* constant channels: every deviation is 0 and every weight ``sigmoid(1/2)``, also for
  ``lambda = 0`` where the formula is 0/0. The gradient there is ``grad * sigmoid(1/2)``
  (exact for ``lambda > 0``; for ``lambda = 0`` the map is not differentiable at that point).
* float16 and bfloat16 inputs, also under ``torch.autocast``: the statistics and weights are
  computed in float32 and the output is rounded once to the input's dtype, so the float16 sum of
  squared deviations cannot overflow (in the reference it does, and the weights silently saturate
  at ``sigmoid(1/2)``).
* very large and very small magnitudes: the importance does not change when ``x`` is scaled by
  ``c`` and ``lambda`` by ``c^2``. Each channel is therefore rescaled by a power of two (exact, no
  rounding) so that its values lie within (-1, 1), and the statistics are computed there with
  ``lambda * p^2`` in place of ``lambda``: no finite input overflows the forward pass (the backward
  pass needs ``|grad * x|`` below about 4x the dtype's largest number). ``lambda`` is an
  absolute variance: channels whose variance is far below ``lambda`` (activations near 1e-30, say)
  have deviations too small to register, so all their weights tend to ``sigmoid(1/2)``. With
  ``lambda = 0`` the module is scale-invariant and such channels are weighted like any other.
* NaN or infinite inputs give NaN in their channel.

``SimAM(compiled=True)`` runs the same formula through ``torch.compile`` (:func:`simam_compiled`):
one fused forward and one fused backward kernel, shared by every SimAM module of a network. In
eager mode each of the dozen elementwise passes of :func:`simam` reads and writes the whole tensor;
fused, the module costs a fraction of that. Its kernels take the input's sizes as arguments
(``dynamic=True``), so a network compiles once per dtype and grad mode, not once per feature-map
shape: MobileNetV2 has 10 shapes, 20 with evaluation, more than ``torch._dynamo``'s recompile limit
(8), past which torch would quietly run the remaining shapes uncompiled. Should the limit still be
reached, the SimAM module that met it (or :func:`simam_compiled`) says so in a warning and runs
:func:`simam` from then on; the other modules keep their compiled code. On a CPU, compilation
needs a C++ compiler. ``python -m simam.bench compile_simam`` measures compilations and training
speed against eager; ``python -m simam.bench train`` SimAM's share of a ResNet-20 training step.
"""

import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from simam.attention.common import check_attention_input, check_channel_count
from simam.checks import check_feature_map, check_lambda
from simam.energy import importance_from_statistics, leave_one_out_statistics, neurons_per_channel

__all__ = ["SIGMOID_HALF", "SimAM", "simam", "simam_compiled", "simam_exact", "simam_reference"]

SIGMOID_HALF = 1.0 / (1.0 + math.exp(-0.5))
"""``sigmoid(1/2)``, the smallest weight: a neuron exactly at its channel's mean."""


def _check_input(x: torch.Tensor, lambda_: float) -> None:
    check_feature_map(x)
    check_lambda(lambda_)


def _single_position(x: torch.Tensor) -> bool:
    """One position per channel (``M = 1``) or no values: no neuron differs from its channel, and
    every weight is ``sigmoid(1/2)`` (see the module docstring); :func:`_simam_ops` computes it."""
    return neurons_per_channel(x) <= 1 or x.numel() == 0


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16-bit inputs (their squared deviations overflow), else the input's own dtype."""
    if dtype == torch.float16 or dtype == torch.bfloat16:
        return torch.float32
    return dtype


def _tiny(dtype: torch.dtype) -> float:
    """The smallest normal number of float32 or float64 (``torch.finfo`` is not scriptable)."""
    return 2.0**-126 if dtype == torch.float32 else 2.0**-1022


def _rescale(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per channel a power of two ``p`` with ``|x p| < 1``: ``x p`` in the compute dtype, ``p``, and
    whether the channel is constant. What every form but the reference's starts from.

    ``p = 2^-e`` where ``max |x| = mantissa * 2^e``, so multiplying by it is exact. Flooring
    ``max |x|`` at the smallest normal number keeps ``p`` finite for all-zero and subnormal
    channels.
    """
    dtype = _compute_dtype(x.dtype)
    detached = x.detach()
    high = detached.amax(dims, keepdim=True)
    low = detached.amin(dims, keepdim=True)
    top = torch.maximum(high, low.neg()).to(dtype).clamp_min_(_tiny(dtype))
    mantissa, _ = torch.frexp(top)
    p = mantissa.div_(top)
    return torch.mul(x, p), p, high == low  # float32 for 16-bit inputs, by type promotion


def _half_inverse_spread(
    sum_sq: torch.Tensor, p: torch.Tensor, m: int, lambda_: float, constant: torch.Tensor
) -> torch.Tensor:
    """``k = 1 / (2 sqrt(v + lambda p^2))`` per channel (rescaled units), 0 for constant channels,
    where ``v = sum_sq / (M - 1)`` is the reference code's variance.
    Differentiable in ``sum_sq``."""
    spread = sum_sq / (m - 1)
    if lambda_ > 0:  # lambda p^2 is inf for tiny channels: k = 0, the right limit
        spread = spread + lambda_ * p * p
    valid = (spread > 0) & ~constant
    safe = torch.where(valid, spread, torch.ones_like(spread))
    return torch.where(valid, 0.5 * safe.rsqrt(), torch.zeros_like(spread))


def _simam_ops(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    """:func:`simam` in plain differentiable ops: what TorchScript, ``torch.compile`` and double
    backward need, none of which can go through a Python autograd function."""
    if _single_position(x):
        # SIGMOID_HALF; TorchScript reads no float globals
        return x * (1.0 / (1.0 + math.exp(-0.5)))
    dims = list(range(2, x.dim()))
    scaled, p, constant = _rescale(x, dims)
    deviation = scaled - scaled.mean(dims, keepdim=True)
    k = _half_inverse_spread(
        deviation.square().sum(dims, keepdim=True), p, neurons_per_channel(x), lambda_, constant
    )
    u = deviation * k
    return (x * torch.sigmoid(u * u + 0.5)).to(x.dtype)


class _SimAMFunction(torch.autograd.Function):
    """SimAM with the analytic gradient, computed in place on temporaries it owns: the eager form,
    for its memory (autograd through :func:`_simam_ops` saves several full-size tensors) and speed.

    Forward, per channel (rescaled by ``p`` as in :func:`_rescale`): ``d = x p - mean(x p)``,
    ``k = 1 / (2 sqrt(sum(d^2) / (M - 1) + lambda p^2))``, ``u = k d``, ``s = sigmoid(u^2 + 1/2)``,
    ``y = x s``. With ``g`` the incoming gradient, ``P = g s (1 - s) x`` and ``alpha = 2 p k``
    (sums over the ``M`` positions of the channel):

        dL/dx = g s + alpha P u + beta u + gamma,
        beta = -4 alpha sum(P u^2) / (M - 1),    gamma = -alpha sum(P u) / M .

    Only ``x`` and ``(p, mean(x p), k)`` per channel are saved; ``u`` and ``s`` are recomputed.
    Every intermediate is bounded by the rescaling, except ``g s (1 - s) x`` before its factor
    ``p``, finite whenever ``|g x| < 4 * finfo.max``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        m = neurons_per_channel(x)
        dims = list(range(2, x.dim()))
        t, p, constant = _rescale(x, dims)  # x p, exact; it becomes the output where dtypes agree
        shift = t.mean(dims, keepdim=True)
        t.sub_(shift)
        k = torch.linalg.vector_norm(t, 2, dims, keepdim=True).square_().div_(m - 1)
        # inf for tiny channels (or a lambda beyond the dtype): k = 0, the right limit
        if lambda_ > 0:
            k.addcmul_(p, p, value=lambda_ if lambda_ <= torch.finfo(k.dtype).max else math.inf)
        # The spread is 0 only on constant channels: a non-constant one has a deviation >= 1 ulp.
        k.rsqrt_().mul_(0.5).masked_fill_(constant, 0.0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, p, shift, k)
            ctx.lambda_ = lambda_
        t.mul_(k)
        torch.addcmul(k.new_full((), 0.5), t, t, out=t).sigmoid_()
        return torch.mul(t, x, out=t if t.dtype == x.dtype else torch.empty_like(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        x, p, shift, k = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a gradient that is itself differentiable
            with torch.enable_grad():
                y = _simam_ops(x, ctx.lambda_)
                return torch.autograd.grad(y, x, grad, create_graph=True)[0], None
        m = neurons_per_channel(x)
        dims = list(range(2, x.dim()))
        alpha = k.mul(2)
        # Two temporaries besides the result, reused in place: u; and s, then P u p, then P u^2 p.
        u = torch.mul(x, p).sub_(shift).mul_(k)  # bit for bit the forward's u
        t = torch.addcmul(k.new_full((), 0.5), u, u).sigmoid_()
        grad_x = grad * t  # g s
        # P = g s (1 - s) x; the factor p of alpha = 2 p k goes on x, where it cannot overflow.
        torch.addcmul(grad_x, grad_x, t, value=-1, out=t).mul_(x).mul_(p).mul_(u)
        gamma = t.sum(dims, keepdim=True).mul_(alpha).mul_(-1.0 / m)
        grad_x.addcmul_(t, alpha)
        beta = t.mul_(u).sum(dims, keepdim=True).mul_(alpha).mul_(-4.0 / (m - 1))
        grad_x.addcmul_(u, beta).add_(gamma)
        return grad_x.to(x.dtype), None


def simam(x: torch.Tensor, lambda_: float = 1e-4) -> torch.Tensor:
    """SimAM with the reference code's statistics: fast, memory-lean and safe on any finite input.

    ``x``: a floating tensor (N, C, *spatial); ``lambda_``: the regulariser of equation (2), >= 0
    (1e-4 in the paper's CIFAR experiments, 0.1 on ImageNet). Returns a tensor like ``x`` (dtype
    and memory format). Matches :func:`simam_reference` to round-off where that is finite.
    """
    _check_input(x, lambda_)
    return _simam(x, lambda_)


def _simam(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    """:func:`simam` on an input already checked."""
    if _single_position(x) or torch.jit.is_tracing() or torch.compiler.is_compiling():
        # The tracer records plain ops, not Python autograd functions; the compiler fuses plain ops
        # (forward and the backward it derives) into fewer kernels than our hand-split passes.
        return _simam_ops(x, float(lambda_))
    return _SimAMFunction.apply(x, float(lambda_))


# torch.compile of _simam_ops, made on first use: compiling is slow to set up
_compiled_simam_ops = None


class _CompiledSimAM:
    """:func:`simam` through the compiled ``_simam_ops``, for one caller: each :class:`SimAM` module
    has its own, and :func:`simam_compiled` one of its own. Every caller shares the compiled code;
    should torch's recompile limit stop one of them, that one warns once and runs :func:`simam` from
    then on, while the others keep the code compiled for their inputs."""

    def __init__(self) -> None:
        self.gave_up: str | None = None  # why this caller runs uncompiled from now on, if it does

    def __call__(self, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        """SimAM of ``x``, an input already checked."""
        global _compiled_simam_ops
        if (
            _single_position(x)
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
            or self.gave_up
        ):
            # nothing to fuse, already inside a trace or a compiled graph, or given up
            return _simam(x, lambda_)
        if _compiled_simam_ops is None:
            # Sizes as kernel arguments: one compilation serves every feature map of a network.
            # fullgraph makes torch raise at its recompile limit instead of quietly running the
            # plain ops eagerly.
            _compiled_simam_ops = torch.compile(_simam_ops, dynamic=True, fullgraph=True)
        try:
            return _compiled_simam_ops(x, float(lambda_))
        except _recompile_limit_errors() as error:
            limit = (
                torch._dynamo.config.recompile_limit
                if hasattr(torch._dynamo.config, "recompile_limit")
                else "its"
            )
            self.gave_up = (
                f"compiled SimAM reached torch._dynamo's recompile limit ({limit}) at an input of "
                f"shape {tuple(x.shape)}, {x.dtype}, grad "
                f"{'on' if torch.is_grad_enabled() else 'off'} ({type(error).__name__}); this "
                "SimAM runs uncompiled from now on. Raise torch._dynamo.config.recompile_limit "
                "to keep it compiled."
            )
            warnings.warn(self.gave_up, RuntimeWarning, stacklevel=3)
            return _simam(x, lambda_)


_function_compiled = _CompiledSimAM()  # simam_compiled's own, apart from every module's


def simam_compiled(x: torch.Tensor, lambda_: float = 1e-4) -> torch.Tensor:
    """:func:`simam` through ``torch.compile``: the same values to round-off, forward and backward
    each fused into one kernel, compiled on first use for each dtype and grad mode (any sizes)."""
    _check_input(x, lambda_)
    return _function_compiled(x, lambda_)


def _recompile_limit_errors() -> tuple[type, ...]:
    """What ``torch.compile(fullgraph=True)`` raises at the recompile limit,
    in this torch's names."""
    names = ("FailOnRecompileLimitHit", "FailOnCacheLimitHit")
    return tuple(
        getattr(torch._dynamo.exc, name) for name in names if hasattr(torch._dynamo.exc, name)
    )


def simam_exact(x: torch.Tensor, lambda_: float = 1e-4) -> torch.Tensor:
    """SimAM with the exact leave-one-out energy: ``x * sigmoid(1 / e_t*)`` where ``e_t*`` is the
    true minimum of equation (2) for every neuron.

    Equals ``x * sigmoid(simam.energy.importance(x, lambda_, "exact"))``, evaluated on the
    rescaled channels described in the module docstring, so it too is finite for any finite input.
    With ``lambda_ = 0`` a neuron that differs from ``M - 1`` equal others has ``e_t* = 0`` and
    weight 1. ``M = 1`` gives the weight ``sigmoid(1/2)`` (no other neurons to compare with).
    """
    _check_input(x, lambda_)
    return _simam_exact(x, lambda_)


def _simam_exact(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    """:func:`simam_exact` on an input already checked."""
    if _single_position(x):
        # one neuron: no others to leave out, the same weight sigmoid(1/2)
        return _simam_ops(x, lambda_)
    scaled, p, constant = _rescale(x, list(range(2, x.dim())))
    loo_mean, loo_var = leave_one_out_statistics(scaled)
    # lambda p^2 is inf for tiny channels: importance 1/2, the limit
    importance = importance_from_statistics(scaled, loo_mean, loo_var, lambda_ * p * p).masked_fill(
        constant, 0.5
    )
    return (x * torch.sigmoid(importance)).to(x.dtype)


def simam_reference(x: torch.Tensor, lambda_: float = 1e-4) -> torch.Tensor:
    """The reference code's formula in plain autograd ops, computed in the input's dtype: the
    yardstick the other forms are tested against.

    Kept as written there, so it shows the failures the other forms avoid: NaN when ``M = 1``
    (0 / 0), overflow of the float16 sum of squared deviations, overflow of ``(x - mu)^2`` for
    large inputs. Its autograd graph saves several full-size tensors.
    """
    _check_input(x, lambda_)
    dims = list(range(2, x.dim()))
    n = neurons_per_channel(x) - 1
    d = (x - x.mean(dims, keepdim=True)).pow(2)
    return x * torch.sigmoid(d / (4 * (d.sum(dims, keepdim=True) / n + lambda_)) + 0.5)


class SimAM(nn.Module):
    """SimAM attention (Yang et al., ICML 2021): weighs each neuron by how much it stands out from
    its channel, with no parameters.

    Args:
        channels: optional; SimAM has no parameters, so it is only used to check the input.
        lambda_: the regulariser of the energy function (1e-4 on CIFAR, 0.1 on ImageNet).
        exact: use the exact leave-one-out energy (:func:`simam_exact`) instead of the reference
            code's shared statistics (:func:`simam`), which the paper's results used.
        compiled: compute :func:`simam` through ``torch.compile`` (:func:`simam_compiled`), faster
            in training after seconds of compilation (``python -m simam.bench compile_simam``).
            An attribute: ``module.compiled = True`` switches a built network's modules.
        rd_ratio, act_layer: accepted and ignored, so that SimAM fills a squeeze-excite slot:
            timm's EfficientNet and MobileNetV3 blocks build it as ``se_layer(channels,
            act_layer=..., rd_ratio=...)``. SimAM has neither a bottleneck nor an activation.
        device, dtype: accepted and ignored, as every ``torch.nn`` layer accepts them (timm's
            blocks pass them): SimAM has no parameters or buffers to create.

    Works on any number of spatial dimensions and on channels_last tensors, under
    ``torch.autocast`` and ``torch.compile``, and exports with ``torch.export`` and TorchScript
    (``torch.jit.trace``, and ``torch.jit.script`` for ``exact=False``).
    """

    channels: int | None
    lambda_: float
    exact: bool
    compiled: bool

    def __init__(
        self,
        channels: int | None = None,
        lambda_: float = 1e-4,
        exact: bool = False,
        compiled: bool = False,
        *,
        rd_ratio: float | None = None,
        act_layer: Callable[[], nn.Module] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if channels is not None:
            check_channel_count(channels)
        check_lambda(lambda_)
        if exact and compiled:
            raise ValueError("SimAM(exact=True) has no compiled form; use compiled=False")
        self.channels = channels
        self.lambda_ = float(lambda_)
        self.exact = bool(exact)
        self.compiled = bool(compiled)
        self._compiled_form = _CompiledSimAM()  # falls back to eager for this module alone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            if self.exact:
                raise RuntimeError(
                    "SimAM(exact=True) cannot be scripted; export it with torch.jit.trace"
                )
            if not x.is_floating_point() or x.dim() < 3:
                raise ValueError("SimAM expects a floating-point tensor of shape (N, C, *spatial)")
            channels = self.channels
            if channels is not None and x.size(1) != channels:
                raise ValueError(
                    "SimAM got an input whose channel count differs from the one it was built for"
                )
            return _simam_ops(x, self.lambda_)
        if self.channels is None:
            check_feature_map(x)
        else:
            check_attention_input(x, self.channels, "SimAM")
        # Checked once, here; lambda_ was checked when the module was built.
        if self.exact:
            return _simam_exact(x, self.lambda_)
        return self._compiled_form(x, self.lambda_) if self.compiled else _simam(x, self.lambda_)

    def extra_repr(self) -> str:
        parts = [] if self.channels is None else [str(self.channels)]
        parts.append(f"lambda_={self.lambda_:g}")
        if self.exact:
            parts.append("exact=True")
        if self.compiled:
            parts.append("compiled=True")
        return ", ".join(parts)
