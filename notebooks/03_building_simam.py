# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
#     provenance: []
#   jupytext:
#     notebook_metadata_filter: accelerator,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Building SimAM
#
# [Chapter 1](01_energy_function.ipynb) derived, in SymPy, the exact minimum $e_t^*$ of the energy
# of equation (2), which compares a neuron $t$ with the mean and variance of the *other* neurons of
# its channel, and [chapter 2](02_closed_form_vs_numeric.ipynb) checked that leave-one-out minimum
# against numerical minimisation. Chapter 1 also showed that the paper's equation (5), with one
# mean and one variance for the whole channel, is the large-$M$ limit of that minimum rather than
# the minimum itself. SimAM computes this channel-statistics form, as the authors' reference code
# does: one number per neuron, its importance
#
# $$
# \frac{1}{e_t^*} \;=\; \frac{(t-\hat\mu)^2}{4\,(s^2+\lambda)} + \frac12 ,
# $$
#
# where $\hat\mu$ is the mean of the neuron's channel and $s^2 = S/(M-1)$ its variance as the
# reference code computes it: the sum of squared deviations $S$ divided by $M - 1$, where equation
# (5) divides by $M$. Chapter 1, section 4, writes the importance the same way. SimAM turns these
# numbers into attention weights by equation (6),
#
# $$
# \tilde X \;=\; \operatorname{sigmoid}\!\left(\frac{1}{E}\right) \odot X ,
# $$
#
# where $E$ collects $e_t^*$ over every channel and position. This chapter builds that module in
# PyTorch, one step at a time, and checks every step against the package `simam`:
#
# 1. **Forward** (sections 1 and 2). A loop over channels first, which follows the formula
#    literally, then a broadcasted version that works for feature maps with any number of spatial
#    dimensions. Both divide the variance by $M - 1$, as the authors' reference code does; section 1
#    says what that changes.
# 2. **Backward** (section 3). The gradient of $\tilde X = X \odot \operatorname{sigmoid}(1/E)$ with respect to
#    $x$ has to pass through the channel mean and variance. We derive it with SymPy, simplify it to
#    a handful of reductions and check it against autograd. That derivation is what lets the
#    package's module save far less memory for the backward pass than the reference code does.
# 3. **What "full 3-D" means** (section 4). We show SimAM's weights on real CIFAR-10 feature maps
#    next to a channel-only (1-D) and a spatial-only (2-D) attention.
# 4. **Edge cases** (section 5). Feature maps with a single position, and half precision.
#
# Six exercises close the chapter, each followed by its folded solution. In the first four you
# derive or predict something and check it with the package; in the last two you break SimAM's
# gradient on purpose and build its exact leave-one-out form yourself.
#
# The symbols follow the course's one notation: see the [notation](notation.md) page.

# %%
# On Colab, install the course's package (Colab's own PyTorch, matplotlib, SymPy and
# SciPy stay as they are); elsewhere `make course` has installed it.
import sys

if "google.colab" in sys.modules:
    import subprocess

    # The repository named in pyproject.toml's [project.urls]
    REPOSITORY = "https://github.com/simam-course/simam"
    package = f"simam @ git+{REPOSITORY}"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", package], check=True)

# %%
import math
import time

import matplotlib.pyplot as plt
import sympy as sp
import torch
from torch import nn

import simam
from simam.attention import SimAM
from simam.attention.simam import simam as fast_simam
from simam.attention.simam import simam_reference
from simam.bench.modules import saved_bytes
from simam.course import course_cifar10
from simam.data import CIFAR10_MEAN, CIFAR10_STD
from simam.energy import channel_statistics

QUICK = simam.quick_mode()
simam.seed_everything(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LAMBDA = 1e-4  # the paper's value on CIFAR
print(f"quick mode: {QUICK}")

# %% [markdown]
# The helpers of this chapter are in the next cell. They measure and draw; none of them computes
# SimAM. `check_close` asserts that two tensors agree and prints the bound it checked, not the
# difference itself, whose last digits depend on the machine (it keeps the differences in
# `LARGEST_DIFFERENCES`). It compares the *relative difference*, the largest
# $|\text{actual} - \text{expected}|$ over the largest $|\text{expected}|$. `best_time` times a
# function (section 2), `autograd_gradient` differentiates one with autograd (section 3). Two more
# come from elsewhere: `saved_bytes`, which adds up what autograd keeps for the backward pass
# (section 3.5), is the module benchmark's (`simam.bench.modules`), and `show_attention_maps`, which
# draws the figure of section 4, sits folded just before that figure.


# %%
# ---- Helpers of this chapter ---------------------------------------------------------
LARGEST_DIFFERENCES = {}  # name of a check -> largest |difference| it found


def check_close(
    name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float
) -> None:
    """Assert max|actual - expected| < tol * max|expected|; print the bound checked."""
    difference = (actual - expected).abs().max().item()
    LARGEST_DIFFERENCES[name] = difference
    relative = difference / expected.abs().max().item()
    assert relative < tol, f"{name}: relative difference {relative:.1e}"
    print(f"{name:56s} relative difference {'<' if relative < tol else '>='} {tol:.0e}")


def best_time(function, x: torch.Tensor, budget_s: float = 0.5) -> float:
    """The fastest of repeated runs (at least 3, at most 100, about budget_s seconds),
    in milliseconds. On a CPU, PyTorch runs on one thread meanwhile."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        function(x)  # warm-up
        times = []
        while len(times) < 3 or (sum(times) < 1e3 * budget_s and len(times) < 100):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            function(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
    return min(times)


def autograd_gradient(function, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """dL/dx by autograd, for L with dL/d(function(x)) = g."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(x), x, grad_outputs=g)
    return grad

# %% [markdown]
# ## 0. Feature maps to work on
#
# SimAM sits inside a network, after a convolution, so we test it on what a convolution produces
# from real images. We take CIFAR-10 test images, normalise them with the per-channel mean and
# standard deviation of the CIFAR-10 training set, and pass them through a $3\times3$ convolution
# with 16 output channels and seeded random weights. Section 4 explains why a random convolution is
# enough here. `course_cifar10` reads the data set from `simam.data_root()`, downloading it there
# first when it is missing.

# %%
# the training set's per-channel statistics
MEAN = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
N_IMAGES = 8 if QUICK else 256

images, labels, classes = course_cifar10(train=False)
names = [classes[label] for label in labels]
print("images: CIFAR-10 test set")


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> float32, zero mean and unit spread per colour
    channel."""
    return (batch.float() / 255 - MEAN) / STD


torch.manual_seed(1)
conv = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False).to(device)
with torch.no_grad():
    x = conv(normalise(images[:N_IMAGES]).to(device))
print(f"feature maps x: shape {tuple(x.shape)}, dtype {x.dtype}")

# %% [markdown]
# ## 1. One channel at a time
#
# Equation (5) is stated per channel: its statistics are computed over the $M = H \cdot W$ neurons
# of one channel of one sample, and every neuron of that channel is compared with them. Let
# $\hat\mu = \frac1M \sum_i x_i$ be the channel's mean and $S = \sum_{i=1}^{M} (x_i - \hat\mu)^2$ its
# sum of squared deviations. Equation (5) uses the variance $\hat\sigma^2 = S/M$. The
# authors' reference code divides by $H W - 1$ instead, and so do this chapter and, by default, the
# package. We write that variance $s^2$, as chapters 1 and 2 do:
#
# $$
# s^2 \;=\; \frac{S}{M-1} \;=\; \frac{M}{M-1}\,\hat\sigma^2 .
# $$
#
# The most literal implementation loops over samples and channels. For each channel
# $X_c \in \mathbb{R}^{H\times W}$ of each sample it computes
#
# 1. the mean over all spatial positions, $\hat\mu = \frac1M \sum_i x_i$;
# 2. the variance $s^2 = S/(M-1)$;
# 3. the importance $1/e^*_t = (t-\hat\mu)^2 / \bigl(4(s^2+\lambda)\bigr) + \tfrac12$ of every neuron;
# 4. its sigmoid, $\operatorname{sigmoid}(1/e^*_t)$, the attention weight;
# 5. the product of weight and input.
#
# **Why $M - 1$?** The paper's published results were produced with the reference code, so the
# package follows it by default (`statistics="reference"`); `statistics="paper"` gives the printed
# $S/M$, and `statistics="exact"` the leave-one-out statistics of equations (3) and (4). Asked why
# the code divides by $H W - 1$ when equation (5) divides by $M$, the authors answered that
# dividing by $H W$ gives the biased and dividing by $H W - 1$ the unbiased estimate of the
# variance (authors' repository, issue 4). That reason does not carry over to SimAM. An unbiased
# estimate is what one wants when $S$ serves to estimate the variance of a distribution. Here the
# variance enters the minimum of the energy (2), and [chapter 1, "What equation (5) approximates"](01_energy_function.ipynb#what-equation-5-approximates)
# showed that (5) with channel statistics is the large-$M$ limit of that minimum. Dividing by
# $M - 1$ moves the importance further from the exact one, not closer: for every neuron, the
# exact importance is at least the printed one, which is at least the reference code's
# ([chapter 1, "Deep dive: leave-one-out against channel statistics"](01_energy_function.ipynb#deep-dive-leave-one-out-against-channel-statistics)).
#
# The choice does not reorder the neurons: within a channel every version increases with
# $(t-\hat\mu)^2$. It changes their values. With $\lambda = 0$ the code's importance is
#
# $$
# \frac{1}{e^*_t} \;=\; \frac{M-1}{M}\cdot\frac{(t-\hat\mu)^2}{4\,\hat\sigma^2} + \frac12 ,
# $$
#
# the printed distance term shrunk by the factor $(M-1)/M$. The end of this section measures how
# far that moves the weights. The loop keeps every intermediate result, so that we can check each
# step separately.


# %%
def simam_loop(x: torch.Tensor, lambda_: float = LAMBDA) -> dict[str, torch.Tensor]:
    """SimAM on (N, C, H, W), one channel at a time; returns every intermediate
    result."""
    n_samples, n_channels, height, width = x.shape
    m = height * width
    mean = torch.empty(n_samples, n_channels, 1, 1, dtype=x.dtype, device=x.device)
    variance = torch.empty_like(mean)
    inverse_energy = torch.empty_like(x)
    weight = torch.empty_like(x)
    out = torch.empty_like(x)
    for n in range(n_samples):
        for c in range(n_channels):
            channel = x[n, c]  # (H, W)
            mu = channel.sum() / m  # step 1
            squared_distance = (channel - mu) ** 2
            var = squared_distance.sum() / (m - 1)  # step 2: s^2 = S / (M - 1)
            inv_e = squared_distance / (4 * (var + lambda_)) + 0.5  # step 3
            w = 1 / (1 + torch.exp(-inv_e))  # step 4
            mean[n, c], variance[n, c] = mu, var
            # step 5
            inverse_energy[n, c], weight[n, c], out[n, c] = (
                inv_e,
                w,
                channel * w,
            )
    return {
        "mean": mean,
        "variance": variance,
        "inverse_energy": inverse_energy,
        "weight": weight,
        "out": out,
    }


loop = simam_loop(x)

# %% [markdown]
# Now the checks, one per step. The package exposes the statistics through
# `simam.energy.channel_statistics` (`correction=1` divides by $M-1$ and gives
# $s^2$), the importance $1/e^*$ through `simam.importance`, and the module itself as
# `simam.attention.SimAM`. The loop and the package add the same numbers in a different order (and
# the package rescales each channel, section 3.4), so they agree to float32 round-off, not bit for
# bit: we allow a relative difference of $10^{-5}$, about a hundred times float32's resolution.

# %%
package_mean, package_variance = channel_statistics(x, correction=1)
package_importance = simam.importance(x, LAMBDA, statistics="reference")
check_close(
    "step 1, mean over H*W vs channel_statistics", loop["mean"], package_mean, 1e-5
)
check_close(
    "step 2, S / (H*W - 1) vs channel_statistics(correction=1)",
    loop["variance"],
    package_variance,
    1e-5,
)
check_close(
    "step 3, 1/E vs simam.importance", loop["inverse_energy"], package_importance, 1e-5
)
check_close(
    "step 4, sigmoid(1/E) vs sigmoid(simam.importance)",
    loop["weight"],
    package_importance.sigmoid(),
    1e-5,
)
check_close(
    "step 5, x * sigmoid(1/E) vs SimAM()(x)",
    loop["out"],
    SimAM(lambda_=LAMBDA)(x),
    1e-5,
)

# %% [markdown]
# How much does the denominator matter? Both choices give the same mean; the variances differ by
# the factor $M/(M-1)$, which tends to 1 as maps grow. We compare the weights of the two choices on
# $8\times8$ corners of our maps ($M = 64$, the size of a CIFAR ResNet's last stage) and on the
# whole $32\times32$ maps ($M = 1024$, its first stage), in float64 so that round-off cannot blur
# small differences. For each size we print the largest change of a weight; for scale, the spread
# of the weights within a channel (their standard deviation, averaged over channels); and in how
# many channels the two choices rank the neurons alike.

# %%
weights_by_denominator, largest_change = {}, {}
for size in (8, 32):
    maps = x[:, :, :size, :size].double().cpu()
    by_m = torch.sigmoid(simam.importance(maps, LAMBDA, statistics="paper"))
    by_m_minus_1 = torch.sigmoid(simam.importance(maps, LAMBDA, statistics="reference"))
    weights_by_denominator[size * size] = (by_m, by_m_minus_1)
    along_paper_order = by_m_minus_1.flatten(2).gather(
        -1, by_m.flatten(2).argsort(dim=-1)
    )
    same_ranking = (along_paper_order.diff(dim=-1) > -1e-12).all(dim=-1)
    gap = largest_change[size * size] = (by_m - by_m_minus_1).abs().max().item()
    spread = by_m_minus_1.flatten(2).std(dim=-1).mean().item()
    assert bool((by_m_minus_1 <= by_m + 1e-12).all()) and gap < spread / 10
    print(
        f"M = {size * size:4d}: largest change of a weight {gap:.0e}, "
        f"spread of the weights {spread:.3f}, "
        f"same ranking in {int(same_ranking.sum())} of {same_ranking.numel()} channels"
    )
print(
    "largest change at M = 64 over largest change at M = 1024: "
    f"{largest_change[64] / largest_change[1024]:.0f}"
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
for m, (by_m, by_m_minus_1) in weights_by_denominator.items():
    ax.plot(
        by_m.flatten().numpy(),
        (by_m_minus_1 - by_m).flatten().numpy(),
        ".",
        markersize=2,
        label=f"M = {m}",
    )
ax.axhline(0, color="grey", linewidth=0.8)
ax.set_xlabel("weight with $S/M$, as equation (5) prints")
ax.set_ylabel("change with $S/(M-1)$")
ax.set_title("The reference code's denominator lowers every weight a little")
ax.legend(markerscale=4)
plt.show()

# %% [markdown]
# Every point lies at or below zero: dividing by $M - 1$ never raises a weight. A neuron at its
# channel's mean keeps the weight $\operatorname{sigmoid}(1/2) \approx 0.62$ under both choices, the change is
# largest for moderately distinctive neurons, and it fades again where the sigmoid saturates near 1.
# The changes on $8\times8$ maps are about sixteen times those on $32\times32$ maps: the
# difference between the factors $1$ and $(M-1)/M$ is $1/M$, and $1024/64 = 16$. Even on
# $8\times8$ maps they stay below a tenth of the weights' spread within a channel. Since the
# ranking within each channel is the same, the two choices differ in how strongly SimAM weighs,
# not in which neurons it favours.
#
# ## 2. All channels at once
#
# The loop runs about twenty small operations per channel, and each of them pays a fixed overhead
# (on a GPU, a kernel launch) that outweighs its arithmetic on so few numbers. Every step above is
# a reduction over the spatial axes or an elementwise operation, so the loop disappears once the
# reductions keep their dimensions (`keepdim=True`): the per-channel mean then has shape
# $(N, C, 1, 1)$ and broadcasts against $x$. Reducing over *all axes after the first two*, rather
# than over axes 2 and 3, makes the same code work for sequences of shape (batch, channels, length)
# and volumes of shape (batch, channels, depth, height, width), where $M$ is the product of the
# spatial sizes.


# %%
def simam_broadcast(x: torch.Tensor, lambda_: float = LAMBDA) -> torch.Tensor:
    """SimAM on (N, C, *spatial): statistics over all spatial axes of each channel."""
    spatial = tuple(range(2, x.dim()))
    m = math.prod(x.shape[2:])
    squared_distance = (x - x.mean(dim=spatial, keepdim=True)).square()
    # s^2 = S / (M - 1)
    variance = squared_distance.sum(dim=spatial, keepdim=True) / (m - 1)
    return x * torch.sigmoid(squared_distance / (4 * (variance + lambda_)) + 0.5)


check_close("broadcast version vs the loop", simam_broadcast(x), loop["out"], 1e-5)
check_close(
    "broadcast version vs SimAM()(x)",
    simam_broadcast(x),
    SimAM(lambda_=LAMBDA)(x),
    1e-5,
)

# %% tags=["nbval-ignore-output"]
# Timings vary from machine to machine; the cell above checks that both versions agree.
# On a CPU both run on one thread, so that a busy machine's sharing of its cores does
# not blur the comparison.
timings = {
    "loop over channels": best_time(lambda t: simam_loop(t)["out"], x),
    "broadcast": best_time(simam_broadcast, x),
}
assert all(0 < milliseconds < math.inf for milliseconds in timings.values())
for name, milliseconds in timings.items():
    print(f"{name:20s} {milliseconds:8.2f} ms")

# %% [markdown]
# The same function on one-dimensional and three-dimensional feature maps, and on a rectangular
# map (a quick guard against mixing up the height and the width):

# %%
other_shapes = {
    "(N, C, L)": (4, 8, 50),
    "(N, C, H, W), H != W": (4, 8, 7, 12),
    "(N, C, D, H, W)": (2, 8, 5, 6, 7),
}
for name, shape in other_shapes.items():
    inputs = torch.randn(shape, device=device)
    check_close(
        f"{name}: vs SimAM()(x)",
        simam_broadcast(inputs),
        SimAM(lambda_=LAMBDA)(inputs),
        1e-5,
    )
    by_importance = inputs * torch.sigmoid(simam.importance(inputs, LAMBDA))
    check_close(
        f"{name}: vs x * sigmoid(simam.importance)",
        simam_broadcast(inputs),
        by_importance,
        1e-5,
    )

# %% [markdown]
# ## 3. The backward pass
#
# Autograd differentiates `simam_broadcast` without help. To do so it keeps, for the backward
# pass, every tensor that a later derivative needs: $x - \hat\mu$ (for the square), its square (for
# the division), the sigmoid's output (for the sigmoid's own derivative and for the product) and
# $x$ (for the product). That is four tensors the size of the feature map, in every block that
# contains SimAM. Users of the reference code saw training memory grow from about 22 GB to over
# 32 GB once they added the module, although it has no parameters (authors' repository, issue 3).
#
# All of those tensors can be recomputed from $x$ and two numbers per channel, its mean and its
# variance. To do that we need the gradient in closed form. The output of neuron $k$ is
#
# $$
# \tilde x_k = x_k\, \omega_k, \qquad \omega_k = \operatorname{sigmoid}(\phi_k), \qquad \phi_k = a\, d_k^2 + \tfrac12, \qquad
# d_k = x_k - \hat\mu, \qquad a = \frac{1}{4\,(s^2+\lambda)}, \qquad s^2 = \frac{1}{M-1}\sum_i d_i^2 ,
# $$
#
# where $\phi_k$ is neuron $k$'s importance $1/e^*_k$, $\omega_k$ its weight and $s^2$ the variance of
# section 1. Every $\tilde x_k$ depends on every $x_j$ of its channel through $\hat\mu$ and $s^2$. Given the gradient
# $g_k = \partial L / \partial \tilde x_k$ that arrives from the layers above, backpropagation needs
# $\partial L/\partial x_j = \sum_k g_k\, \partial \tilde x_k/\partial x_j$.
#
# ### 3.1 Four neurons in SymPy
#
# We start with one channel of $M = 4$ neurons $x_1, \dots, x_4$. The sigmoid is declared as a
# function whose derivative is $\operatorname{sigmoid}(1-\operatorname{sigmoid})$, so that SymPy's
# results stay readable; first we check that this derivative is the one of $1/(1 + \exp(-\xi))$.

# %%
class Sigmoid(sp.Function):
    """sigmoid(xi) = 1 / (1 + exp(-xi)), with its derivative written as
    sigmoid (1 - sigmoid)."""

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, xi, **kwargs):
        return 1 / (1 + sp.exp(-xi))


xi = sp.Symbol("xi", real=True)
derivative_gap = sp.simplify(
    sp.diff(Sigmoid(xi).rewrite(sp.exp), xi)
    - (Sigmoid(xi) * (1 - Sigmoid(xi))).rewrite(sp.exp)
)
assert derivative_gap == 0
print(
    "d sigmoid/dxi - sigmoid (1 - sigmoid), with sigmoid = 1/(1 + exp(-xi)), "
    f"simplifies to {derivative_gap}"
)


def channel_model(m: int):
    """Symbols and the expressions d, s2, a, phi, omega, y of one channel with m
    neurons."""
    xs = sp.symbols(f"x1:{m + 1}", real=True)
    gs = sp.symbols(f"g1:{m + 1}", real=True)
    lam = sp.Symbol("lambda", positive=True)
    mean = sum(xs) / m
    d = [xi - mean for xi in xs]
    s2 = sum(di**2 for di in d) / (m - 1)
    a = 1 / (4 * (s2 + lam))
    phi = [a * di**2 + sp.Rational(1, 2) for di in d]
    omega = [Sigmoid(phik) for phik in phi]
    y = [xk * omegak for xk, omegak in zip(xs, omega)]
    return dict(x=xs, g=gs, d=d, s2=s2, a=a, phi=phi, omega=omega, y=y)


M = 4
four = channel_model(M)
jacobian = sp.Matrix(M, M, lambda k, j: sp.diff(four["y"][k], four["x"][j]))
print(f"dy_2/dx_1 as SymPy writes it ({sp.count_ops(jacobian[1, 0])} operations):")
jacobian[1, 0]

# %% [markdown]
# Written out in the $x$'s, a single entry of the Jacobian is already long, and there are $M^2$ of
# them. The structure shows once we name the intermediate quantities. By the product and chain
# rules,
#
# $$
# \frac{\partial \tilde x_k}{\partial x_j} = [k = j]\, \omega_k + x_k\, \omega_k (1-\omega_k)\, \frac{\partial \phi_k}{\partial x_j},
# \qquad
# \frac{\partial \phi_k}{\partial x_j} = 2a\, d_k\, \frac{\partial d_k}{\partial x_j} + d_k^2\, \frac{\partial a}{\partial x_j} .
# $$
#
# Here $[k = j]$ is 1 when $k = j$ and 0 otherwise.
#
# The two inner derivatives are short:
#
# * $\partial d_k / \partial x_j = [k = j] - 1/M$, because $\hat\mu$ is the mean of all $M$ neurons;
# * $\partial s^2 / \partial x_j = \frac{2}{M-1}\sum_i d_i\,([i = j] - 1/M) = \frac{2\,d_j}{M-1}$, because
#   the deviations sum to zero, $\sum_i d_i = 0$; hence
#   $\partial a/\partial x_j = -4a^2\,\partial s^2/\partial x_j = -\frac{8 a^2 d_j}{M-1}$.
#
# So we expect
#
# $$
# \frac{\partial \phi_k}{\partial x_j} = 2a\, d_k \Bigl([k = j] - \frac1M\Bigr) - \frac{8a^2}{M-1}\, d_k^2\, d_j .
# $$
#
# SymPy confirms it for all 16 pairs $(k, j)$:

# %%
def expected_dphi(model, m, k, j):
    a, d = model["a"], model["d"]
    return 2 * a * d[k] * (int(k == j) - sp.Rational(1, m)) - 8 * a**2 * d[k] ** 2 * d[
        j
    ] / (m - 1)


pairs_confirmed = sum(
    sp.cancel(sp.diff(four["phi"][k], four["x"][j]) - expected_dphi(four, M, k, j)) == 0
    for k in range(M)
    for j in range(M)
)
assert pairs_confirmed == M * M
print(
    "dphi_k/dx_j = 2a d_k ([k = j] - 1/M) - 8a^2 d_k^2 d_j/(M-1) "
    f"for {pairs_confirmed} of {M * M} pairs, M = {M}"
)

# %% [markdown]
# ### 3.2 From the Jacobian to a few reductions
#
# Summing $g_k\, \partial \tilde x_k/\partial x_j$ over $k$ and writing $h_k = g_k\, x_k\, \omega_k(1-\omega_k)$ gives
#
# $$
# \frac{\partial L}{\partial x_j}
# = g_j \omega_j + \sum_k h_k \frac{\partial \phi_k}{\partial x_j}
# = g_j \omega_j \;+\; 2a\Bigl(h_j d_j - \frac1M\sum_k h_k d_k\Bigr) \;-\; \frac{8a^2\, d_j}{M-1}\sum_k h_k d_k^2 .
# $$
#
# Nothing in it is an $M\times M$ matrix any more: per channel there are two sums,
# $\sum_k h_k d_k$ and $\sum_k h_k d_k^2$, and everything else is elementwise. We check the formula
# against SymPy's own derivative of $L = \sum_k g_k \tilde x_k$, replacing each $\omega_k$ by a free
# symbol so that the comparison is between rational functions, which `cancel` decides exactly. We
# do it for $M = 4$ and, since the argument above never used a particular $M$, for $M = 2, 3, 5$ as
# well.

# %%
def gradient_formula(model, m, j):
    """The closed form of dL/dx_j above, in the model's symbols."""
    g, xs, d, omega, a = model["g"], model["x"], model["d"], model["omega"], model["a"]
    h = [g[k] * xs[k] * omega[k] * (1 - omega[k]) for k in range(m)]
    mean_hd = sum(h[k] * d[k] for k in range(m)) / m
    sum_hd2 = sum(h[k] * d[k] ** 2 for k in range(m))
    return (
        g[j] * omega[j]
        + 2 * a * (h[j] * d[j] - mean_hd)
        - 8 * a**2 * d[j] / (m - 1) * sum_hd2
    )


for m in (2, 3, 4, 5):
    model = four if m == M else channel_model(m)
    loss = sum(gk * yk for gk, yk in zip(model["g"], model["y"]))
    free = {
        omegak: sp.Symbol(f"omega{k + 1}") for k, omegak in enumerate(model["omega"])
    }
    inputs_confirmed = 0
    for j in range(m):
        gap = (sp.diff(loss, model["x"][j]) - gradient_formula(model, m, j)).xreplace(
            free
        )
        inputs_confirmed += sp.cancel(sp.together(gap)) == 0
    assert inputs_confirmed == m
    print(
        f"M = {m}: the closed form equals SymPy's derivative dL/dx_j "
        f"for {inputs_confirmed} of {m} inputs"
    )

# %% [markdown]
# ### 3.3 The formula in PyTorch
#
# In tensors, with the sums taken over the spatial axes of each channel, the formula is a few
# lines. It needs only $x$, the gradient $g$, and, per channel, $\hat\mu$ and $s^2$ (or $a$):
# $d$, $\omega$ and $h$ are recomputed elementwise.


# %%
def simam_backward(
    x: torch.Tensor, g: torch.Tensor, lambda_: float = LAMBDA
) -> torch.Tensor:
    """dL/dx of y = SimAM(x), given g = dL/dy, by the closed form of section 3.2."""
    spatial = tuple(range(2, x.dim()))
    m = math.prod(x.shape[2:])
    d = x - x.mean(dim=spatial, keepdim=True)
    # 1 / (4 (s^2 + lambda))
    a = 1 / (4 * (d.square().sum(dim=spatial, keepdim=True) / (m - 1) + lambda_))
    omega = torch.sigmoid(a * d.square() + 0.5)
    hd = g * x * omega * (1 - omega) * d
    return (
        g * omega
        + 2 * a * (hd - hd.mean(dim=spatial, keepdim=True))
        - 8 * a.square() * d / (m - 1) * (hd * d).sum(dim=spatial, keepdim=True)
    )


# %% [markdown]
# We compare it in float64 with autograd through the reference formula, `simam_reference` in the
# package (the reference code's expression, built from plain autograd operations), and through our
# own `simam_broadcast`; on the CIFAR feature maps from section 0 and on a volume
# of shape (batch, channels, depth, height, width). The upstream gradient $g$ is random.

# %%
grad_generator = torch.Generator(device=device).manual_seed(2)
cases = {
    "CIFAR feature maps": x.double(),
    "volume (2, 4, 3, 5, 6)": torch.randn(2, 4, 3, 5, 6, device=device).double(),
}
for name, inputs in cases.items():
    g = torch.randn(
        inputs.shape, generator=grad_generator, device=device, dtype=inputs.dtype
    )
    mine = simam_backward(inputs, g)
    for function in (simam_reference, simam_broadcast):
        other = autograd_gradient(
            lambda t, function=function: function(t, LAMBDA), inputs, g
        )
        check_close(f"{name}, vs autograd({function.__name__})", mine, other, 1e-12)

# %% tags=["nbval-ignore-output"]
# The size of the round-off gap depends on the machine; the cell above asserts it is
# tiny.
backward_gaps = {
    name: gap for name, gap in LARGEST_DIFFERENCES.items() if "vs autograd" in name
}
assert len(backward_gaps) == 4 and max(backward_gaps.values()) < 1e-9
for name, gap in backward_gaps.items():
    print(f"{name:56s} largest difference {gap:.1e}")

# %% [markdown]
# ### 3.4 The package's fast function
#
# `simam.attention.simam.simam`, which `SimAM()` calls by default, runs a custom
# `torch.autograd.Function` whose backward is this closed form. It writes the formula in terms of
# $u = d / \bigl(2\sqrt{s^2+\lambda}\bigr)$, so that $a\,d^2 = u^2$, and it evaluates everything on
# each channel multiplied by a power of two, chosen so that the channel's values lie in $(-1, 1)$.
# Multiplying by a power of two is exact in floating point, and it keeps squares from overflowing
# (section 5); $\lambda$ is scaled by the square of the same factor, so the weights do not change
# (exercise 1). Its gradient must agree with ours, in float64 to round-off and in float32 to float32
# precision; `torch.autograd.gradcheck` adds an independent check against finite differences.

# %%
for name, inputs in cases.items():
    g = torch.randn(
        inputs.shape, generator=grad_generator, device=device, dtype=inputs.dtype
    )
    package_gradient = autograd_gradient(lambda t: fast_simam(t, LAMBDA), inputs, g)
    check_close(
        f"{name}, float64: package vs closed form",
        package_gradient,
        simam_backward(inputs, g),
        1e-12,
    )
    single, g_single = inputs.float(), g.float()
    package_gradient = autograd_gradient(
        lambda t: fast_simam(t, LAMBDA), single, g_single
    )
    closed_form = simam_backward(single.double(), g_single.double()).float()
    check_close(
        f"{name}, float32: package vs closed form", package_gradient, closed_form, 1e-5
    )

small = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
gradcheck_passed = torch.autograd.gradcheck(
    lambda t: fast_simam(t, LAMBDA), (small,), raise_exception=False
)
assert gradcheck_passed
print(
    f"torch.autograd.gradcheck of the package's function, float64: {gradcheck_passed}"
)

# %% [markdown]
# ### 3.5 What each version keeps for the backward pass
#
# `torch.autograd.graph.saved_tensors_hooks` lets us watch every tensor that autograd stores during
# the forward pass; `saved_bytes` adds up their bytes, counting a storage once even when two
# operations save the same tensor (the sigmoid's output is saved by the sigmoid and by the
# product). We express the total as whole feature maps (tensors of the input's size) plus numbers
# per channel. The count depends only on the shapes and the code path, not on the values, so it is
# the same on every machine.

# %%
input_bytes = x.numel() * x.element_size()
per_channel_bytes = x.shape[0] * x.shape[1] * x.element_size()
kept = {}
for name, function in [
    ("reference formula, plain autograd", lambda t: simam_reference(t, LAMBDA)),
    ("simam_broadcast, plain autograd", simam_broadcast),
    ("package SimAM() (fast function)", SimAM(lambda_=LAMBDA)),
]:
    whole_maps, rest = divmod(saved_bytes(function, x), input_bytes)
    assert rest % per_channel_bytes == 0
    kept[name] = (whole_maps, rest // per_channel_bytes)
    print(
        f"{name:36s} feature maps: {whole_maps}, "
        f"numbers per channel: {rest // per_channel_bytes}"
    )
assert kept["reference formula, plain autograd"] == (4, 1) and kept[
    "package SimAM() (fast function)"
] == (1, 3)

# %%
neurons = math.prod(x.shape[2:])
fig, ax = plt.subplots(figsize=(6, 2.2), layout="constrained")
in_input_sizes = [count + per_channel / neurons for count, per_channel in kept.values()]
ax.barh(list(kept), in_input_sizes, color=["tab:red", "tab:orange", "tab:green"])
ax.axvline(1, color="grey", linestyle="--", linewidth=1, label="the input itself")
ax.invert_yaxis()
ax.set_xlabel(
    "saved for the backward pass, in multiples of the input's size "
    f"({neurons} neurons per channel)"
)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# The reference expression keeps four tensors of the input's size (and its denominator, one number
# per channel). The fast function keeps the input itself and three numbers per channel (the
# power-of-two scale, and the mean and $1/\bigl(2\sqrt{s^2+\lambda}\bigr)$ of the rescaled
# channel), which on $32\times32$ maps add $3/1024$ of the input's size. In the reference CIFAR
# blocks SimAM sits between the second convolution and its batch norm. Without SimAM, that batch
# norm saves the convolution's output for its backward pass; with SimAM it saves SimAM's output
# instead, and whatever SimAM saves comes on top: one feature map per block for the fast function,
# four for the reference expression (exercise 3 counts it for a whole ResNet-20). That is the kind
# of growth users of the reference code reported, from about 22 GB to over 32 GB of training memory
# (authors' repository, issue 3). The price of the fast function is compute: its backward pass
# recomputes $d$ and $\omega$, a few more elementwise passes over the feature map
# ([chapter 4](04_baselines.ipynb) counts such passes and times them against a convolution).
#
# ## 4. Full 3-D attention weights
#
# Attention modules for ConvNets reweight a feature map $X \in \mathbb{R}^{C\times H\times W}$ in
# one of three ways:
#
# * **1-D, channel attention** (SE, ECA): one weight per channel, the same at every position.
# * **2-D, spatial attention**: one weight per position, shared by all channels.
# * **Full 3-D**: one weight per neuron, free to differ along every axis. The paper
#   contrasts SimAM's weights with channel-wise and spatial-wise attention and with modules that
#   compute the two separately and combine them. CBAM, for instance, multiplies a channel weight by
#   a spatial weight, so its $C \cdot H \cdot W$ weights are fixed by only $C + HW$ numbers.
#   SimAM compares every neuron with its own channel's statistics, so each channel gets its own
#   spatial pattern.
#
# For comparison we build the simplest 1-D and 2-D attentions from the same feature maps, with no
# parameters: the sigmoid of each channel's mean over positions (an SE gate without its two
# fully-connected layers), and the sigmoid of the mean over channels at each position.
#
# **Why a random convolution is enough.** SimAM has no parameters; its weight for a neuron depends
# only on how far that neuron lies from its channel's mean, measured in units of the channel's
# spread. Any bank of filters gives channels with different means, spreads and outliers, and that
# is all the module sees. A trained network would change *which* neurons stand out, not *how* the
# module weighs them. Random $3\times3$ filters on a natural image respond to colour and to edges
# of various orientations, so their maps still show the image's structure.

# %%
INDEX = 13  # a white horse on a dark background in the CIFAR-10 test set
torch.manual_seed(1)  # the same random filters as in section 0
filters = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False).double()
with torch.no_grad():
    features = filters(normalise(images[INDEX : INDEX + 1]).double())[0]  # (16, 32, 32)

simam_weights = torch.sigmoid(simam.importance(features[None], LAMBDA))[0]  # (C, H, W)
channel_weights = torch.sigmoid(features.mean(dim=(1, 2)))  # (C,): 1-D
spatial_weights = torch.sigmoid(features.mean(dim=0))  # (H, W): 2-D
print(f"image {INDEX}: {names[INDEX]}")
package_output = SimAM(lambda_=LAMBDA)(features[None])[0]
check_close(
    "SimAM weights * features vs SimAM()(features)",
    simam_weights * features,
    package_output,
    1e-12,
)

# %% jupyter={"source_hidden": true}
def show_attention_maps(
    image, title, features, simam_weights, channel_weights, spatial_weights, shown
):
    """The image, the 1-D and 2-D weights, and some feature maps above their SimAM
    weights."""
    layout = [
        ["image", "channel", "channel", "spatial"],
        [f"map{c}" for c in shown],
        [f"weight{c}" for c in shown],
    ]
    fig, axes = plt.subplot_mosaic(layout, figsize=(10, 7.5), layout="constrained")
    axes["image"].imshow(image.permute(1, 2, 0).numpy())
    axes["image"].set_title(title, fontsize=10)
    axes["channel"].bar(
        range(len(channel_weights)), channel_weights.numpy(), color="tab:orange"
    )
    axes["channel"].set_ylim(0, 1)
    axes["channel"].set_title(
        "1-D: one weight per channel,\nsigmoid(mean over H, W)", fontsize=10
    )
    axes["channel"].set_xlabel("channel")
    picture = axes["spatial"].imshow(spatial_weights.numpy(), cmap="viridis")
    axes["spatial"].set_title(
        "2-D: one weight per position,\nsigmoid(mean over channels)", fontsize=10
    )
    fig.colorbar(picture, ax=axes["spatial"], shrink=0.8)
    for c in shown:
        limit = features[c].abs().max().item()
        axes[f"map{c}"].imshow(
            features[c].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit
        )
        axes[f"map{c}"].set_title(f"feature map, channel {c}", fontsize=10)
        picture = axes[f"weight{c}"].imshow(
            simam_weights[c].numpy(), cmap="viridis", vmin=0.6, vmax=1.0
        )
        axes[f"weight{c}"].set_title(f"SimAM weights, channel {c}", fontsize=10)
    fig.colorbar(
        picture, ax=[axes[f"weight{c}"] for c in shown], shrink=0.8, label="weight"
    )
    for name, ax in axes.items():
        if name != "channel":
            ax.axis("off")
    plt.show()


# %%
show_attention_maps(
    images[INDEX],
    f"test image {INDEX} ({names[INDEX]})",
    features,
    simam_weights,
    channel_weights,
    spatial_weights,
    shown=[0, 5, 10, 15],
)

# %% [markdown]
# Each SimAM weight map highlights the neurons that stand out *in their own channel*, and the
# channels disagree: in the image above, one channel's weights pick out near-vertical edges,
# another's the horizontal edges of the horse's back and belly, another's the body as a whole. Some
# channels also light up the border of the map: there the convolution's zero padding makes the
# responses unusual, and unusual is exactly what SimAM rewards. Every weight lies in
# $[\operatorname{sigmoid}(1/2), 1) \approx [0.62, 1)$, because $1/e^*_t \ge 1/2$: SimAM never
# silences a neuron, it only boosts the distinctive ones relative to the rest.
#
# To make "varies along all three axes" a number, we measure for each attention how much its
# weights change when one index moves and the other two stay fixed: the standard deviation along
# that axis, averaged over the other two. A second test looks for the factorised form. Arranged as
# a $C \times HW$ matrix, a 1-D weight (a column vector repeated), a 2-D weight (a row repeated) and
# CBAM's product of the two all have rank one. The share of the matrix that its best rank-one
# approximation leaves unexplained, $\sqrt{\sum_{i\ge2}\varsigma_i^2} / \sqrt{\sum_i \varsigma_i^2}$
# over the singular values $\varsigma_i$, is therefore zero for them and positive for a full 3-D
# weight.

# %%
def axis_variation(weights: torch.Tensor) -> list[float]:
    """Standard deviation along channels, rows and columns, each averaged over the
    other two axes."""
    return [weights.std(dim=axis).mean().item() for axis in range(3)]


def rank_one_residual(weights: torch.Tensor) -> float:
    singular_values = torch.linalg.svdvals(weights.reshape(weights.shape[0], -1))
    return (
        (singular_values[1:].square().sum() / singular_values.square().sum())
        .sqrt()
        .item()
    )


full_shape = features.shape
attentions = {
    "1-D (channel)": channel_weights.view(-1, 1, 1).expand(full_shape),
    "2-D (spatial)": spatial_weights.expand(full_shape),
    "1-D x 2-D (CBAM-like)": channel_weights.view(-1, 1, 1) * spatial_weights,
    "SimAM (3-D)": simam_weights,
}
print(
    f"{'attention':24s} {'std along C':>12s} {'along H':>8s} {'along W':>8s} "
    f"{'rank-1 residual':>16s}"
)
variation = {}
for name, weights in attentions.items():
    variation[name] = axis_variation(weights) + [rank_one_residual(weights)]
    print(
        f"{name:24s} "
        + " ".join(
            f"{value:{width}.3f}"
            for value, width in zip(variation[name], (12, 8, 8, 16))
        )
    )

assert all(value > 0.01 for value in variation["SimAM (3-D)"])
assert (
    max(variation["1-D (channel)"][1:]) < 1e-12
    and variation["2-D (spatial)"][0] < 1e-12
)
assert max(variation[name][3] for name in attentions if name != "SimAM (3-D)") < 1e-12
full_3d = [name for name, values in variation.items() if min(values) > 0.01]
print(f"attentions that vary along C, H and W and are not rank one: {full_3d}")

# %% [markdown]
# ### 4.1 Try it: $\lambda$, $M$ and $z$
#
# The weight of a neuron depends only on three numbers ([chapter 1, "The weight as a function of how
# far a neuron stands out"](01_energy_function.ipynb#the-weight-as-a-function-of-how-far-a-neuron-stands-out)): its
# standardised deviation $z = (t - \hat\mu)/\hat\sigma$, the channel size $M$, and $\lambda$
# measured against the channel's variance,
#
# $$
# \operatorname{sigmoid}\!\left(\frac{z^2}{4\,\bigl(M/(M-1) + \lambda/\hat\sigma^2\bigr)} + \frac12\right).
# $$
#
# The folded cell below draws that curve with one value of $z$ marked, and beside it the SimAM
# weights of one channel of the horse's feature maps, with $\lambda$ at the same multiple of that
# channel's variance (computed by `simam.importance`).
# The cell after it draws the figure once; the last one gives it sliders (it needs a live
# notebook, JupyterLab or Colab; on the website and in the stored notebook only the figure shows).
# Move $\lambda$ up to about the channel's variance and watch the weights flatten towards
# $\operatorname{sigmoid}(1/2)$; move $M$ down to a few neurons and watch the curve drop, as the
# factor $M/(M-1)$ grows, while the values of $z$ a channel can hold shrink to
# $|z| \le \sqrt{M-1}$ ([chapter 1, "A bound that falls out"](01_energy_function.ipynb#a-bound-that-falls-out-how-far-a-neuron-can-be-from-its-channels-mean)).

# %% jupyter={"source_hidden": true}
def explore_weights(
    lambda_over_variance: float, m: int, z: float, channel: int = 5
) -> None:
    """The weight curve against z at this lambda / variance and M, with z marked; beside
    it SimAM's weights of one channel of the horse's features, with lambda at the same
    multiple of its variance."""
    zs = torch.linspace(0, 4, 201, dtype=torch.float64)

    def weight(z_values):
        return torch.sigmoid(
            z_values**2 / (4 * (m / (m - 1) + lambda_over_variance)) + 0.5
        )

    fig, (curve, image) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    curve.plot(zs, weight(zs), color="tab:blue")
    curve.plot(
        [z], weight(torch.tensor([z], dtype=torch.float64)), "o", color="tab:red"
    )
    curve.set(
        xlabel="$|z|$",
        ylabel="weight",
        ylim=(0.6, 1.0),
        title=f"M = {m}, $\\lambda/\\hat\\sigma^2$ = {lambda_over_variance:.0e}, "
        f"weight at z = {z:.1f}: "
        f"{weight(torch.tensor([z], dtype=torch.float64)).item():.3f}",
    )
    one_channel = features[channel][None, None]
    lambda_ = lambda_over_variance * one_channel.var(correction=0).item()
    weights = torch.sigmoid(simam.importance(one_channel, lambda_))[0, 0]
    picture = image.imshow(weights.numpy(), cmap="viridis", vmin=0.6, vmax=1.0)
    image.set_title(
        f"SimAM weights, channel {channel}, $\\lambda$ = {lambda_:.1e}", fontsize=10
    )
    image.axis("off")
    fig.colorbar(picture, ax=image, shrink=0.8, label="weight")
    plt.show()


# %%
explore_weights(lambda_over_variance=1e-4, m=1024, z=2.0)
# The curve's formula gives the package's weights for the channel's own neurons:
one_channel = features[5][None, None]  # 32 x 32: M = 1024
z_of_neurons = (one_channel - one_channel.mean()) / one_channel.std(correction=0)
by_formula = torch.sigmoid(z_of_neurons**2 / (4 * (1024 / 1023 + 1e-4)) + 0.5)
by_package = torch.sigmoid(
    simam.importance(one_channel, 1e-4 * one_channel.var(correction=0).item())
)
check_close(
    "weight curve at each neuron's z vs simam.importance", by_formula, by_package, 1e-12
)

# %% tags=["nbval-ignore-output", "remove-output"]
# Sliders over the same figure, in a live notebook (the output stored here depends on
# the front end). Where no kernel runs (GitHub, the stored notebook), the line in
# "text/plain" stands in their place, not the widget's repr.
import ipywidgets as widgets
from IPython.display import display

sliders = widgets.interactive(
    explore_weights,
    lambda_over_variance=widgets.FloatLogSlider(
        value=1e-4, base=10, min=-6, max=1, step=0.25
    ),
    m=widgets.IntSlider(value=1024, min=4, max=4096, step=4),
    z=widgets.FloatSlider(value=2.0, min=0, max=4),
    channel=widgets.IntSlider(value=5, min=0, max=features.shape[0] - 1),
)
display(
    {
        "application/vnd.jupyter.widget-view+json": {
            "version_major": 2,
            "version_minor": 0,
            "model_id": sliders.model_id,
        },
        "text/plain": "[Sliders for lambda / variance, M, z and the channel: they "
        "redraw the figure above in a live notebook, JupyterLab or Colab.]",
    },
    raw=True,
)

# %% [markdown]
# ## 5. Edge cases
#
# Two situations break the reference expression. The package keeps that expression, failures
# included, as `simam_reference`, so we can watch them, and handles both in `SimAM()`.
#
# **A single position per channel** ($H = W = 1$, e.g. after global pooling). The reference code
# divides the sum of squared deviations by $H W - 1 = 0$, and $0/0$ is NaN. The neuron *is* its
# channel's mean, so $(t - \hat\mu)^2 = 0$ and its importance is exactly $1/2$, whatever the
# variance: the package defines the variance of one neuron as 0 and returns $x\,\operatorname{sigmoid}(1/2)$.

# %%
single = torch.randn(2, 4, 1, 1, device=device)
print(
    "simam_reference with H = W = 1: all NaN? "
    f"{bool(simam_reference(single, LAMBDA).isnan().all())}"
)
half_weight = torch.sigmoid(torch.tensor(0.5)).item()
check_close(
    "SimAM() with H = W = 1 vs x * sigmoid(1/2)",
    SimAM(lambda_=LAMBDA)(single),
    single * half_weight,
    1e-6,
)
print(f"sigmoid(1/2) = {half_weight:.4f}")

# %% [markdown]
# **Half precision.** float16 cannot represent numbers above 65504. A channel of $32\times32$
# activations with a standard deviation of 10 has a sum of squared deviations near
# $1024 \cdot 100 \approx 10^5$, which overflows to infinity; the variance becomes infinite, every
# importance collapses to $1/2$, and all weights silently equal $\operatorname{sigmoid}(1/2)$: no error, just no
# attention. The package computes the statistics and weights of a float16 (or bfloat16) input in
# float32 and rounds only the output to float16, so its result is the float32 result rounded once.
# (The power-of-two rescaling of section 3.4 would prevent the overflow on its own; computing in
# float32 also avoids float16's coarse rounding of the statistics.)

# %%
half_input = (10 * torch.randn(2, 4, 32, 32, device=device)).half()
sum_of_squares = (
    (half_input - half_input.mean(dim=(2, 3), keepdim=True)).square().sum(dim=(2, 3))
)
reference_half = simam_reference(half_input, LAMBDA)
overflowed = bool(sum_of_squares.isinf().all())
saturated = torch.equal(
    reference_half, half_input * torch.sigmoid(torch.tensor(0.5)).half()
)
assert overflowed and saturated
print(f"float16 sum of squared deviations infinite in every channel? {overflowed}")
print(f"simam_reference in float16 returns x * sigmoid(1/2) everywhere? {saturated}")

package_half = SimAM(lambda_=LAMBDA)(half_input)
rounded_once = torch.equal(
    package_half, SimAM(lambda_=LAMBDA)(half_input.float()).half()
)
assert rounded_once and bool(package_half.isfinite().all())
print(
    f"package SimAM() in float16: dtype {package_half.dtype}, "
    f"all finite: {bool(package_half.isfinite().all())}, "
    f"equal to the float32 result rounded to float16: {rounded_once}"
)

# %% [markdown]
# The weights themselves, recovered as output over input, show the difference at a glance: the
# reference expression gives every neuron the same weight, the package spreads them over
# $[\operatorname{sigmoid}(1/2), 1)$ as in float32.

# %%
nonzero = half_input != 0
fig, ax = plt.subplots(figsize=(6, 2.6), layout="constrained")
for name, output in [
    ("simam_reference", reference_half),
    ("package SimAM()", package_half),
]:
    weights = (output.float() / half_input.float())[nonzero].cpu()
    ax.hist(
        weights.numpy(),
        bins=80,
        range=(0.6, 1.0),
        log=True,
        alpha=0.7,
        label=f"{name}, float16",
    )
ax.set_xlabel("weight = output / input")
ax.set_ylabel("neurons")
ax.legend()
plt.show()

# %% [markdown]
# ## What this chapter established
#
# - A loop, a broadcast version and the package compute the same SimAM, step by step, with the
#   reference code's $s^2 = S/(M-1)$, in any number of spatial dimensions.
# - Its gradient, derived in SymPy and checked against autograd, needs two reductions per channel;
#   the package's fast function implements it and saves one feature map per block where autograd
#   through the reference expression saves four.
# - Its weights are truly three-dimensional, not a channel vector times a spatial map; one-pixel
#   maps and float16 inputs work in the package.
#
# Next, [chapter 4](04_baselines.ipynb) sets SimAM beside SE, CBAM, ECA and GC.

# %% [markdown]
# ## Exercises
#
# **Exercise 1 (shift and scale).** Section 3.4 rescales each channel by a power of two and
# $\lambda$ by its square, and claims that the weights do not change. Show from
# $1/e^*_t = (t-\hat\mu)^2 / \bigl(4(s^2+\lambda)\bigr) + \tfrac12$ that adding a
# constant to a channel leaves its importances unchanged, and that multiplying the channel by
# $\nu \ne 0$ leaves them unchanged when $\lambda$ becomes $\nu^2\lambda$. Check both with
# `simam.importance` on random float64 maps, with a different constant for every channel. What
# happens to the importances of a channel multiplied by $\nu = 10^{-3}$ if $\lambda$ is left alone?

# %% jupyter={"source_hidden": true} tags=["solution"]
# A shift moves t and the mean together, so t - muhat and S do not change. Scaling by
# nu multiplies (t - muhat)^2 and S/(M-1) by nu^2; with nu^2 lambda the fraction is
# multiplied by nu^2 / nu^2 = 1.
exercise_generator = torch.Generator().manual_seed(3)
random_maps = torch.randn(2, 3, 5, 7, dtype=torch.float64, generator=exercise_generator)
shifts = torch.randn(1, 3, 1, 1, dtype=torch.float64, generator=exercise_generator)
base = simam.importance(random_maps, LAMBDA)
check_close(
    "1. a constant added to each channel",
    simam.importance(random_maps + shifts, LAMBDA),
    base,
    1e-12,
)
for nu in (-0.5, 3.0, 1e-3):
    scaled = simam.importance(nu * random_maps, LAMBDA * nu**2)
    check_close(
        f"1. channels times {nu:g}, lambda times {nu * nu:g}", scaled, base, 1e-12
    )
# Left alone, lambda = 1e-4 dwarfs the variance (about 1e-6) of the scaled maps: every
# importance nears 1/2.
shrunk = simam.importance(1e-3 * random_maps, LAMBDA)
assert bool((shrunk < base).all()) and shrunk.max().item() < 0.6
print(
    "1. with nu = 1e-3 and lambda unchanged: "
    f"importances at most {shrunk.max().item():.3f}, "
    f"against up to {base.max().item():.2f} before"
)

# %% [markdown]
# **Exercise 2 (the shape of the Jacobian).** From the derivatives of section 3.1, write the
# Jacobian $J_{kj} = \partial \tilde x_k / \partial x_j$ of one channel as a diagonal matrix plus two
# matrices of rank one, using $q_k = x_k \omega_k (1 - \omega_k)$. Check your formula against
# `torch.autograd.functional.jacobian` of the package's function on one $4\times4$ channel in
# float64, and compute the rank of $J$ minus your diagonal matrix. Why does section 3.3 never need
# to build $J$?

# %% jupyter={"source_hidden": true} tags=["solution"]
# d(x~_k)/dx_j = [k = j] (omega_k + 2a q_k d_k) - (2a/M) q_k d_k
#                - (8a^2/(M-1)) q_k d_k^2 d_j, so
# J = diag(omega + 2a q d) - (2a/M) (q d) 1^T - (8a^2/(M-1)) (q d^2) d^T. A rank-one
# matrix, a column times a row, applied to g needs only one sum, the row times g: that
# is why the gradient needs two sums per channel.
channel = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=exercise_generator)
n = channel.numel()
jacobian_by_autograd = torch.autograd.functional.jacobian(
    lambda t: fast_simam(t, LAMBDA).flatten(), channel
)
jacobian_by_autograd = jacobian_by_autograd.reshape(n, n)
xs = channel.flatten()
d = xs - xs.mean()
a = 1 / (4 * (d.square().sum() / (n - 1) + LAMBDA))
omega = torch.sigmoid(a * d.square() + 0.5)
q = xs * omega * (1 - omega)
diagonal = torch.diag(omega + 2 * a * q * d)
rank_one_terms = -(2 * a / n) * torch.outer(q * d, torch.ones(n, dtype=d.dtype)) - (
    8 * a**2 / (n - 1)
) * torch.outer(q * d**2, d)
check_close(
    "2. diagonal + two rank-one terms vs autograd",
    diagonal + rank_one_terms,
    jacobian_by_autograd,
    1e-12,
)
rank = int(torch.linalg.matrix_rank(jacobian_by_autograd - diagonal))
assert rank == 2
print(f"2. rank of J minus the diagonal matrix: {rank}")

# %% [markdown]
# **Exercise 3 (memory in a ResNet-20).** By section 3.5, a block with the reference expression
# keeps four feature maps and one number per channel for SimAM, a block with the fast function one
# feature map and three numbers per channel. A CIFAR ResNet-20 has nine blocks with SimAM after
# their second convolution, three each with outputs of $16\times32\times32$, $32\times16\times16$
# and $64\times8\times8$. Predict how many more bytes per image (float32) autograd keeps when every
# block uses the reference expression, and measure it with `saved_bytes` on a ResNet-20 with SimAM,
# before and after swapping the reference expression into its blocks. The course builds that
# network with `simam.create_model("resnet20", attention="simam")`, which returns the same
# `simam.models.ResNet` as `simam.models.ResNet(20, attention="simam")`. How much is that for a
# batch of 128 images?

# %% jupyter={"source_hidden": true} tags=["solution"]
from simam.models import BasicBlock, ResNet


class ReferenceSimAM(nn.Module):
    """The reference expression as a module, to swap into a network's blocks."""

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return simam_reference(t, LAMBDA)


# Per block: 4 maps + 1 number per channel minus 1 map + 3 numbers per channel, 4 bytes
# each.
block_outputs = [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3
predicted = sum(4 * (3 * math.prod(shape) - 2 * shape[0]) for shape in block_outputs)
torch.manual_seed(0)
network = ResNet(20, attention="simam").to(device)
batch = normalise(images[:2]).to(device)
with_fast_function = saved_bytes(network, batch)
for block in network.modules():
    if isinstance(block, BasicBlock):
        block.attention = ReferenceSimAM()
measured = (saved_bytes(network, batch) - with_fast_function) // len(batch)
assert measured == predicted
print(
    f"3. extra bytes per image: predicted {predicted:,}, measured {measured:,}; "
    f"for 128 images {128 * measured / 2**20:.0f} MiB"
)

# %% [markdown]
# **Exercise 4 (when float16 overflows).** A channel whose $M$ values are $+x_0$ and $-x_0$ in equal
# numbers has $\hat\mu = 0$ and $S = M x_0^2$. Float16's largest finite number is 65504. Up to which
# $x_0$ does `simam_reference` in float16 still weigh such a channel as in float32, on $32\times32$
# maps and on $8\times8$ maps? Check just below and just above each threshold.

# %% jupyter={"source_hidden": true} tags=["solution"]
# S = M x0^2 stays finite while x0 <= sqrt(65504 / M): about 8 for M = 1024 and 32 for
# M = 64. Larger maps overflow at smaller activations; above the threshold every weight
# is sigmoid(1/2).
def weight_of(channel: torch.Tensor) -> float:
    """The reference expression's mean weight (output over input) on a channel without
    zeros."""
    return (simam_reference(channel, LAMBDA).float() / channel.float()).mean().item()


for side in (32, 8):
    threshold = math.sqrt(65504 / side**2)
    signs = torch.ones(1, 1, side, side, device=device)
    signs.view(-1)[::2] = -1
    below, above = ((factor * threshold * signs).half() for factor in (0.99, 1.01))
    weight_below, weight_above, weight_float32 = (
        weight_of(below),
        weight_of(above),
        weight_of(below.float()),
    )
    assert (
        abs(weight_below - weight_float32) < 1e-3
        and abs(weight_above - half_weight) < 1e-3
    )
    print(
        f"4. {side}x{side} maps: threshold x0 = {threshold:.2f}; "
        f"weight at 0.99 x threshold {weight_below:.3f} "
        f"(float32 {weight_float32:.3f}), at 1.01 x threshold {weight_above:.3f}"
    )

# %% [markdown]
# **Exercise 5 (break the gradient on purpose).** A forward pass can be right while its gradient
# is wrong. Copy `simam_broadcast` and make autograd treat the channel mean as a constant
# (`.detach()` it): in version (a) only where the mean enters the variance, in version (b)
# everywhere. Both still return exactly what `simam_broadcast` returns. Before running anything,
# predict from the derivative $\partial s^2/\partial x_j$ of section 3.1 which version
# `torch.autograd.gradcheck` rejects, and which term of the gradient of section 3.2 that version
# loses. Then run `gradcheck` on both (float64, a small random input) and measure the lost term
# against the whole gradient.

# %% jupyter={"source_hidden": true} tags=["solution"]
# (a) passes: the variance's path through the mean carries the factor
# sum_i d_i = 0 (section 3.1). (b) fails: it drops d(d_k)/dx_j's -1/M, the term
# -2a mean_k(h_k d_k) of section 3.2, while the output does not change.
def simam_mean_detached(t: torch.Tensor, everywhere: bool) -> torch.Tensor:
    """simam_broadcast with the channel mean a constant for autograd, in the variance
    only or everywhere."""
    spatial = tuple(range(2, t.dim()))
    mean = t.mean(dim=spatial, keepdim=True)
    constant = mean.detach()
    squared_distance = (t - (constant if everywhere else mean)).square()
    m = math.prod(t.shape[2:])
    variance = (t - constant).square().sum(dim=spatial, keepdim=True) / (m - 1)
    return t * torch.sigmoid(squared_distance / (4 * (variance + LAMBDA)) + 0.5)


probe = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=exercise_generator)
passes = {}
for everywhere in (False, True):
    assert torch.equal(simam_mean_detached(probe, everywhere), simam_broadcast(probe))
    passes[everywhere] = torch.autograd.gradcheck(
        lambda t, everywhere=everywhere: simam_mean_detached(t, everywhere),
        (probe.clone().requires_grad_(),),
        raise_exception=False,
    )
assert passes == {False: True, True: False}
print(
    "5. output equal to simam_broadcast's; gradcheck passes with the mean detached "
    f"(a) in the variance: {passes[False]}, (b) everywhere: {passes[True]}"
)

g_probe = torch.randn(probe.shape, dtype=torch.float64, generator=exercise_generator)
deviation = probe - probe.mean(dim=(2, 3), keepdim=True)
variance_probe = deviation.square().sum(dim=(2, 3), keepdim=True) / (
    4 * 5 - 1
)  # M = 20
a_probe = 1 / (4 * (variance_probe + LAMBDA))
omega_probe = torch.sigmoid(a_probe * deviation.square() + 0.5)
h_probe = g_probe * probe * omega_probe * (1 - omega_probe)
lost = -2 * a_probe * (h_probe * deviation).mean(dim=(2, 3), keepdim=True)
broken = autograd_gradient(
    lambda t: simam_mean_detached(t, everywhere=True), probe, g_probe
)
right = simam_backward(probe, g_probe)
check_close(
    "5. (b)'s gradient plus the lost term vs section 3.3", broken + lost, right, 1e-12
)
share = (lost.abs().max() / right.abs().max()).item()
assert share > 1e-3
print(f"5. the lost term reaches {100 * share:.1f}% of the largest gradient entry")

# %% [markdown]
# **Exercise 6 (the exact energy as a module).** The true minimum of the energy (2) compares a
# neuron $t$ with the $M - 1$ *other* neurons of its channel, their mean $\mu_t$ and their variance
# $\sigma_t^2$ (denominator $M - 1$), as equations (3) and (4) do; its importance is
# $(t-\mu_t)^2/\bigl(4(\sigma_t^2+\lambda)\bigr)+\tfrac12$. Write it as an `nn.Module`,
# `LeaveOneOutSimAM`, without a loop over neurons: take each neuron's $\mu_t$ and $\sigma_t^2$ from
# its channel's sum and sum of squares, minus the neuron's own terms. Check it against
# `SimAM(exact=True)` in float64 on the horse's feature maps of section 4. Before measuring on their
# $8\times8$ corners and on the whole $32\times32$ maps, predict: are its weights above or below
# those of `SimAM()`; how many times smaller is the largest difference on the larger maps; and is it
# larger or smaller than the difference between $S/M$ and $S/(M-1)$ of section 1? Last, feed your
# module a $1\times1$ map, and compare with what `SimAM(exact=True)` returns there.

# %% jupyter={"source_hidden": true} tags=["solution"]
# Chapter 1: exact >= printed >= reference importance, every gap shrinking like 1/M.
# Removing t from its own statistics raises (t - mu_t)^2 and lowers sigma_t^2. With
# lambda = 0 each importance is c z^2/4 + 1/2 (chapter 1, section 3), and to first
# order in 1/M the coefficients c compare as: exact / printed = M/(M - 1 - z^2), about
# 1 + (1 + z^2)/M; printed / reference = M/(M - 1), about 1 + 1/M; so exact / reference
# is about 1 + (2 + z^2)/M. With no other neuron, mu_t is 0/0.
class LeaveOneOutSimAM(nn.Module):
    """SimAM with each neuron compared with the mean and variance of the other
    neurons of its channel."""

    def __init__(self, lambda_: float = LAMBDA) -> None:
        super().__init__()
        self.lambda_ = lambda_

    def weight(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, x.dim()))
        others = math.prod(x.shape[2:]) - 1
        mu_t = (x.sum(dim=spatial, keepdim=True) - x) / others
        mean_square = (x.square().sum(dim=spatial, keepdim=True) - x.square()) / others
        sigma2_t = mean_square - mu_t.square()
        return torch.sigmoid(
            (x - mu_t).square() / (4 * (sigma2_t + self.lambda_)) + 0.5
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight(x)


leave_one_out = LeaveOneOutSimAM()
check_close(
    "6. LeaveOneOutSimAM vs SimAM(exact=True), float64",
    leave_one_out(features[None]),
    SimAM(lambda_=LAMBDA, exact=True)(features[None]),
    1e-12,
)
exact_gap, denominator_gap = {}, {}
for size in (8, 32):
    maps = features[None, :, :size, :size]
    exact_weight = leave_one_out.weight(maps)
    package_weight = torch.sigmoid(simam.importance(maps, LAMBDA))
    paper_weight = torch.sigmoid(simam.importance(maps, LAMBDA, statistics="paper"))
    assert bool((exact_weight >= package_weight - 1e-12).all())
    exact_gap[size] = (exact_weight - package_weight).max().item()
    denominator_gap[size] = (paper_weight - package_weight).max().item()
    print(
        f"6. M = {size * size:4d}: exact weights never below SimAM()'s, at most "
        f"{exact_gap[size]:.2g} above them; S/M's at most {denominator_gap[size]:.2g}"
    )
ratio_m = exact_gap[8] / exact_gap[32]
ratio_statistics = exact_gap[8] / denominator_gap[8]
assert 10 < ratio_m < 25 and ratio_statistics > 3
print(
    f"6. largest gap at M = 64 over M = 1024: {ratio_m:.0f}; "
    f"leave-one-out's gap over the denominator's at M = 64: {ratio_statistics:.0f}"
)
one_position = torch.randn(
    1, 3, 1, 1, dtype=torch.float64, generator=exercise_generator
)
mine_on_one = leave_one_out(one_position)
package_on_one = SimAM(lambda_=LAMBDA, exact=True)(one_position)
assert bool(mine_on_one.isnan().all())
check_close(
    "6. SimAM(exact=True) on a 1x1 map vs x * sigmoid(1/2)",
    package_on_one,
    one_position / (1 + math.exp(-0.5)),
    1e-12,
)
print("6. on a 1x1 map LeaveOneOutSimAM returns NaN everywhere (0/0: no other neuron)")

# %% [markdown]
# ## References
#
# - Yang, Zhang, Li and Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
#   Neural Networks", ICML 2021 (PMLR 139).
# - The authors' reference code: <https://github.com/ZjjConan/SimAM>.
# - Authors' repository, issue 3, training memory growing from about 22 GB to over 32 GB once SimAM
#   was added: <https://github.com/ZjjConan/SimAM/issues/3>.
# - Authors' repository, issue 4, the authors' answer on why the variance divides by $H W - 1$:
#   <https://github.com/ZjjConan/SimAM/issues/4>.
# - Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
# - Wang, Wu, Zhu, Li, Zuo and Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
#   Neural Networks", CVPR 2020.
# - Woo, Park, Lee and Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
