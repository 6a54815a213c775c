# ---
# jupyter:
#   jupytext:
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
# Chapters 1 and 2 ended with one number per neuron, its importance
#
# $$
# \frac{1}{e_t^*} \;=\; \frac{(t-\hat\mu)^2}{4\,(\hat\sigma^2+\lambda)} + \frac12 ,
# $$
#
# derived in SymPy from the energy function of equation (2) and checked against numerical
# minimisation. SimAM turns these numbers into attention weights by equation (6),
#
# $$
# \tilde X \;=\; \operatorname{sigmoid}\!\left(\frac{1}{E}\right) \odot X ,
# $$
#
# where $E$ collects $e_t^*$ over every channel and position. This chapter builds that module in
# PyTorch, one step at a time, and checks every step against the package `simam`:
#
# 1. **Forward.** A loop over channels first, which follows the formula literally, then a broadcasted
#    version that works for feature maps with any number of spatial dimensions.
# 2. **Backward.** The gradient of $y = x\,\operatorname{sigmoid}(1/E)$ with respect to $x$ has to
#    pass through the channel mean and variance. We derive it with SymPy, simplify it to a handful
#    of reductions and check it against autograd. That derivation is what lets the package's
#    module save far less memory for the backward pass than the reference code does.
# 3. **What "full 3-D" means.** We show SimAM's weights on real CIFAR-10 feature maps next to a
#    channel-only (1-D) and a spatial-only (2-D) attention.
# 4. **Edge cases.** Feature maps with a single position, and half precision.

# %%
# On Colab, install the course package first; elsewhere `make course` has installed it.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "simam[course] @ git+https://github.com/simam-course/simam"],
        check=True,
    )

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
from simam.data import CIFAR10_MEAN, CIFAR10_STD, course_cifar10
from simam.energy import channel_statistics

QUICK = simam.quick_mode()
simam.seed_everything(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LAMBDA = 1e-4  # the paper's value on CIFAR
print(f"quick mode: {QUICK}")

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
MEAN = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)  # the training set's per-channel statistics
STD = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
N_IMAGES = 8 if QUICK else 256

images, labels, classes = course_cifar10(train=False)
names = [classes[label] for label in labels]
print("images: CIFAR-10 test set")


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> float32, zero mean and unit spread per colour channel."""
    return (batch.float() / 255 - MEAN) / STD


torch.manual_seed(1)
conv = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False).to(device)
with torch.no_grad():
    x = conv(normalise(images[:N_IMAGES]).to(device))
print(f"feature maps x: shape {tuple(x.shape)}, dtype {x.dtype}")

# %% [markdown]
# ## 1. One channel at a time
#
# Equation (5) is stated per channel: the mean $\hat\mu$ and the variance $\hat\sigma^2$ are
# computed over the $M = H \cdot W$ neurons of one channel of one sample, and every neuron of that
# channel is compared with them. The most literal implementation therefore loops over samples and
# channels. For each channel $X_{n,c} \in \mathbb{R}^{H\times W}$ it computes
#
# 1. the mean over all spatial positions, $\hat\mu = \frac1M \sum_i x_i$;
# 2. the variance with denominator $M - 1$, $\hat\sigma^2 = \frac{1}{M-1}\sum_i (x_i-\hat\mu)^2$;
# 3. the importance $1/e^*_t = (t-\hat\mu)^2 / \bigl(4(\hat\sigma^2+\lambda)\bigr) + \tfrac12$ of every neuron;
# 4. its sigmoid, the attention weight;
# 5. the product of weight and input.
#
# **Why $M - 1$?** Equation (5) as printed divides by $M$. The authors' reference code divides by
# $M - 1$, the usual unbiased estimate of a variance from $M$ samples, and the paper's published
# results were produced with that code. To reproduce them, the package follows the code by default
# (`statistics="reference"`). Chapter 1 compared the three candidates: the exact
# leave-one-out statistics of equations (3) and (4), the printed $1/M$, and the code's $1/(M-1)$.
# The loop keeps every intermediate result, so that we can check each step separately.


# %%
def simam_loop(x: torch.Tensor, lambda_: float = LAMBDA) -> dict[str, torch.Tensor]:
    """SimAM on (N, C, H, W), one channel at a time; returns every intermediate result."""
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
            var = squared_distance.sum() / (m - 1)  # step 2
            inv_e = squared_distance / (4 * (var + lambda_)) + 0.5  # step 3
            w = 1 / (1 + torch.exp(-inv_e))  # step 4
            mean[n, c], variance[n, c] = mu, var
            inverse_energy[n, c], weight[n, c], out[n, c] = inv_e, w, channel * w  # step 5
    return {"mean": mean, "variance": variance, "inverse_energy": inverse_energy, "weight": weight, "out": out}


loop = simam_loop(x)

# %% [markdown]
# Now the checks, one per step. The package exposes the statistics through
# `simam.energy.channel_statistics` (`correction=1` is the $M-1$ denominator), the importance
# $1/e^*$ through `simam.importance`, and the module itself as `simam.attention.SimAM`. The
# tolerances of `torch.testing.assert_close` are the float32 defaults: the loop and the package add
# the same numbers in a different order, so they agree to round-off, not bit for bit.

# %%
package_mean, package_variance = channel_statistics(x, correction=1)
package_importance = simam.importance(x, LAMBDA, statistics="reference")
package_out = SimAM(lambda_=LAMBDA)(x)

torch.testing.assert_close(loop["mean"], package_mean)
print("step 1, mean over H*W:               matches channel_statistics")
torch.testing.assert_close(loop["variance"], package_variance)
print("step 2, variance with H*W - 1:       matches channel_statistics(correction=1)")
torch.testing.assert_close(loop["inverse_energy"], package_importance)
print("step 3, 1/E:                         matches simam.importance")
torch.testing.assert_close(loop["weight"], torch.sigmoid(package_importance))
print("step 4, sigmoid(1/E):                matches torch.sigmoid(simam.importance)")
torch.testing.assert_close(loop["out"], package_out)
print("step 5, x * sigmoid(1/E):            matches SimAM()(x)")

# %% [markdown]
# How much does the denominator matter? Both choices give the same mean; the variances differ by
# the factor $M/(M-1)$, which tends to 1 as maps grow. On the $32\times32$ maps of a CIFAR ResNet's
# first stage the weights barely move; on the $8\times8$ maps of its last stage the difference is
# larger, though still small next to the spread of the weights themselves.

# %%
for size in (8, 32):
    maps = x[:, :, :size, :size]
    by_m = torch.sigmoid(simam.importance(maps, LAMBDA, statistics="paper"))
    by_m_minus_1 = torch.sigmoid(simam.importance(maps, LAMBDA, statistics="reference"))
    gap = (by_m - by_m_minus_1).abs().max().item()
    print(f"M = {size * size:4d}: largest change of a weight between 1/M and 1/(M-1): {gap:.0e}")

# %% [markdown]
# ## 2. All channels at once
#
# The loop runs a dozen tiny operations per channel, which is slow on a CPU and far slower on a
# GPU, where each one is a separate kernel launch. Every step above is a reduction over the
# spatial axes or an elementwise operation, so the loop disappears once the reductions keep their
# dimensions (`keepdim=True`): the per-channel mean then has shape $(N, C, 1, 1)$ and broadcasts
# against $x$. Reducing over *all axes after the first two*, rather than over axes 2 and 3, makes
# the same code work for sequences $(N, C, L)$ and volumes $(N, C, D, H, W)$, where $M$ is the
# product of the spatial sizes.


# %%
def simam_broadcast(x: torch.Tensor, lambda_: float = LAMBDA) -> torch.Tensor:
    """SimAM on (N, C, *spatial): statistics over all spatial axes of each channel."""
    spatial = tuple(range(2, x.dim()))
    m = math.prod(x.shape[2:])
    squared_distance = (x - x.mean(dim=spatial, keepdim=True)).square()
    variance = squared_distance.sum(dim=spatial, keepdim=True) / (m - 1)
    return x * torch.sigmoid(squared_distance / (4 * (variance + lambda_)) + 0.5)


torch.testing.assert_close(simam_broadcast(x), loop["out"])
print("broadcast version matches the loop")
torch.testing.assert_close(simam_broadcast(x), SimAM(lambda_=LAMBDA)(x))
print("broadcast version matches SimAM()(x)")

# %% tags=["nbval-ignore-output"]
# Timings vary from machine to machine; the cell above checks that both versions agree.
def best_time(function, x: torch.Tensor, budget_s: float = 0.5) -> float:
    """The fastest of repeated runs (at least 3, at most 100, about budget_s seconds), in milliseconds."""
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
    return min(times)


for name, function in [("loop over channels", lambda t: simam_loop(t)["out"]), ("broadcast", simam_broadcast)]:
    print(f"{name:20s} {best_time(function, x):8.2f} ms")

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
    z = torch.randn(shape, device=device)
    torch.testing.assert_close(simam_broadcast(z), SimAM(lambda_=LAMBDA)(z))
    torch.testing.assert_close(simam_broadcast(z), z * torch.sigmoid(simam.importance(z, LAMBDA)))
    print(f"{name:22s} {str(shape):18s} matches SimAM()(x) and sigmoid(simam.importance)")

# %% [markdown]
# ## 3. The backward pass
#
# Autograd differentiates `simam_broadcast` without help. To do so it keeps, for the backward
# pass, every tensor that a later derivative needs: $x - \hat\mu$ (for the square), its square (for
# the division), the sigmoid's output (for the sigmoid's own derivative and for the product) and
# $x$ (for the product). That is four tensors the size of the feature map, in every block that
# contains SimAM. Users of the reference code saw training memory grow from about 22 GB to over
# 32 GB once they added the module, although it has no parameters.
#
# All of those tensors can be recomputed from $x$ and two numbers per channel, its mean and its
# variance. To do that we need
# the gradient in closed form. The output of neuron $k$ is
#
# $$
# y_k = x_k\, s_k, \qquad s_k = \sigma(z_k), \qquad z_k = a\, d_k^2 + \tfrac12, \qquad
# d_k = x_k - \hat\mu, \qquad a = \frac{1}{4\,(v+\lambda)}, \qquad v = \frac{1}{M-1}\sum_i d_i^2 ,
# $$
#
# and every $y_k$ depends on every $x_j$ of its channel through $\hat\mu$ and $v$. Given the
# gradient $g_k = \partial L / \partial y_k$ that arrives from the layers above, backpropagation
# needs $\partial L/\partial x_j = \sum_k g_k\, \partial y_k/\partial x_j$.
#
# ### 3.1 Four neurons in SymPy
#
# We start with one channel of $M = 4$ neurons $x_1, \dots, x_4$. The sigmoid is declared as a
# function whose derivative is $\sigma(1-\sigma)$, so that SymPy's results stay readable; first
# we check that this derivative is the one of $1/(1+e^{-u})$.

# %%
class Sigmoid(sp.Function):
    """sigma(u) = 1 / (1 + exp(-u)), with its derivative written as sigma (1 - sigma)."""

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return 1 / (1 + sp.exp(-u))


u = sp.Symbol("u", real=True)
derivative_gap = sp.diff(Sigmoid(u).rewrite(sp.exp), u) - (Sigmoid(u) * (1 - Sigmoid(u))).rewrite(sp.exp)
assert sp.simplify(derivative_gap) == 0
print("d sigma/du = sigma (1 - sigma): verified")


def channel_model(m: int):
    """Symbols and the expressions d, v, a, z, s, y of one channel with m neurons."""
    xs = sp.symbols(f"x1:{m + 1}", real=True)
    gs = sp.symbols(f"g1:{m + 1}", real=True)
    lam = sp.Symbol("lambda", positive=True)
    mean = sum(xs) / m
    d = [xi - mean for xi in xs]
    v = sum(di**2 for di in d) / (m - 1)
    a = 1 / (4 * (v + lam))
    z = [a * di**2 + sp.Rational(1, 2) for di in d]
    s = [Sigmoid(zk) for zk in z]
    y = [xk * sk for xk, sk in zip(xs, s)]
    return dict(x=xs, g=gs, d=d, v=v, a=a, z=z, s=s, y=y)


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
# \frac{\partial y_k}{\partial x_j} = \delta_{kj}\, s_k + x_k\, s_k (1-s_k)\, \frac{\partial z_k}{\partial x_j},
# \qquad
# \frac{\partial z_k}{\partial x_j} = 2a\, d_k\, \frac{\partial d_k}{\partial x_j} + d_k^2\, \frac{\partial a}{\partial x_j} .
# $$
#
# The two inner derivatives are short:
#
# * $\partial d_k / \partial x_j = \delta_{kj} - 1/M$, because $\hat\mu$ is the mean of all $M$ neurons;
# * $\partial v / \partial x_j = \frac{2}{M-1}\sum_i d_i\,(\delta_{ij} - 1/M) = \frac{2\,d_j}{M-1}$, because
#   the deviations sum to zero, $\sum_i d_i = 0$; hence
#   $\partial a/\partial x_j = -4a^2\,\partial v/\partial x_j = -\frac{8 a^2 d_j}{M-1}$.
#
# So we expect
#
# $$
# \frac{\partial z_k}{\partial x_j} = 2a\, d_k \Bigl(\delta_{kj} - \frac1M\Bigr) - \frac{8a^2}{M-1}\, d_k^2\, d_j .
# $$
#
# SymPy confirms it for all 16 pairs $(k, j)$:

# %%
def expected_dz(model, m, k, j):
    a, d = model["a"], model["d"]
    return 2 * a * d[k] * (int(k == j) - sp.Rational(1, m)) - 8 * a**2 * d[k] ** 2 * d[j] / (m - 1)


for k in range(M):
    for j in range(M):
        assert sp.cancel(sp.diff(four["z"][k], four["x"][j]) - expected_dz(four, M, k, j)) == 0
print(f"dz_k/dx_j = 2a d_k (delta_kj - 1/M) - 8a^2 d_k^2 d_j/(M-1): verified for all {M * M} pairs, M = {M}")

# %% [markdown]
# ### 3.2 From the Jacobian to a few reductions
#
# Summing $g_k\, \partial y_k/\partial x_j$ over $k$ and writing $h_k = g_k\, x_k\, s_k(1-s_k)$ gives
#
# $$
# \frac{\partial L}{\partial x_j}
# = g_j s_j + \sum_k h_k \frac{\partial z_k}{\partial x_j}
# = g_j s_j \;+\; 2a\Bigl(h_j d_j - \frac1M\sum_k h_k d_k\Bigr) \;-\; \frac{8a^2\, d_j}{M-1}\sum_k h_k d_k^2 .
# $$
#
# Nothing in it is an $M\times M$ matrix any more: per channel there are two sums,
# $\sum_k h_k d_k$ and $\sum_k h_k d_k^2$, and everything else is elementwise. We check the formula
# against SymPy's own derivative of $L = \sum_k g_k y_k$, replacing each $\sigma(z_k)$ by a free
# symbol so that the comparison is between rational functions, which `cancel` decides exactly. We
# do it for $M = 4$ and, since the argument above never used a particular $M$, for $M = 2, 3, 5$ as
# well.

# %%
def gradient_formula(model, m, j):
    """The closed form of dL/dx_j above, in the model's symbols."""
    g, xs, d, s, a = model["g"], model["x"], model["d"], model["s"], model["a"]
    h = [g[k] * xs[k] * s[k] * (1 - s[k]) for k in range(m)]
    mean_hd = sum(h[k] * d[k] for k in range(m)) / m
    sum_hd2 = sum(h[k] * d[k] ** 2 for k in range(m))
    return g[j] * s[j] + 2 * a * (h[j] * d[j] - mean_hd) - 8 * a**2 * d[j] / (m - 1) * sum_hd2


for m in (2, 3, 4, 5):
    model = four if m == M else channel_model(m)
    loss = sum(gk * yk for gk, yk in zip(model["g"], model["y"]))
    free = {sk: sp.Symbol(f"s{k + 1}") for k, sk in enumerate(model["s"])}
    for j in range(m):
        autograd_j = sp.diff(loss, model["x"][j])
        gap = (autograd_j - gradient_formula(model, m, j)).xreplace(free)
        assert sp.cancel(sp.together(gap)) == 0
    print(f"M = {m}: closed-form gradient equals SymPy's derivative for every x_j")

# %% [markdown]
# ### 3.3 The formula in PyTorch
#
# In tensors, with the sums taken over the spatial axes of each channel, the formula is a few
# lines. It needs only $x$, the gradient $g$, and, per channel, $\hat\mu$ and $v$ (or $a$):
# $d$, $s$ and $h$ are recomputed elementwise.


# %%
def simam_backward(x: torch.Tensor, g: torch.Tensor, lambda_: float = LAMBDA) -> torch.Tensor:
    """dL/dx of y = SimAM(x), given g = dL/dy, by the closed form of section 3.2."""
    spatial = tuple(range(2, x.dim()))
    m = math.prod(x.shape[2:])
    d = x - x.mean(dim=spatial, keepdim=True)
    a = 1 / (4 * (d.square().sum(dim=spatial, keepdim=True) / (m - 1) + lambda_))
    s = torch.sigmoid(a * d.square() + 0.5)
    hd = g * x * s * (1 - s) * d
    return (
        g * s
        + 2 * a * (hd - hd.mean(dim=spatial, keepdim=True))
        - 8 * a.square() * d / (m - 1) * (hd * d).sum(dim=spatial, keepdim=True)
    )


# %% [markdown]
# We compare it in float64 with autograd through the reference formula, `simam_reference` in the
# package (the reference code's expression, built from plain autograd operations), and through our
# own `simam_broadcast`; on the CIFAR feature maps from section 0 and on a volume
# $(N, C, D, H, W)$. The upstream gradient $g$ is random.

# %%
def autograd_gradient(function, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(x), x, grad_outputs=g)
    return grad


grad_generator = torch.Generator(device=device).manual_seed(2)
cases = {"CIFAR feature maps": x.double(), "volume (2, 4, 3, 5, 6)": torch.randn(2, 4, 3, 5, 6, device=device).double()}
gaps = {}
for name, inputs in cases.items():
    g = torch.randn(inputs.shape, generator=grad_generator, device=device, dtype=inputs.dtype)
    mine = simam_backward(inputs, g)
    for function in (simam_reference, simam_broadcast):
        other = autograd_gradient(lambda t: function(t, LAMBDA), inputs, g)
        torch.testing.assert_close(mine, other, rtol=1e-10, atol=1e-12)
        gaps[name, function.__name__] = (mine - other).abs().max().item()
    print(f"{name}: closed-form gradient equals autograd through the reference formula (float64)")

# %% tags=["nbval-ignore-output"]
# The size of the round-off gap depends on the machine; the cell above asserts it is tiny.
for (name, function_name), gap in gaps.items():
    print(f"{name:24s} vs autograd({function_name}): largest difference {gap:.1e}")

# %% [markdown]
# ### 3.4 The package's fast function
#
# `simam.attention.simam.simam`, which `SimAM()` calls by default, is a custom
# `torch.autograd.Function` whose backward is this closed form. It writes the formula in terms of
# $u = d / \bigl(2\sqrt{v+\lambda}\bigr)$, so that $a\,d^2 = u^2$, and it evaluates everything on
# each channel multiplied by a power of two, chosen so that the channel's values lie in $(-1, 1)$.
# Multiplying by a power of two is exact in floating point, and it keeps squares from overflowing
# (section 5); $\lambda$ is scaled by the square of the same factor, so the weights do not change.
# Its gradient must agree with ours, in float64 to round-off and in float32 to float32 precision;
# `torch.autograd.gradcheck` adds an independent check against finite differences.

# %%
for name, inputs in cases.items():
    g = torch.randn(inputs.shape, generator=grad_generator, device=device, dtype=inputs.dtype)
    torch.testing.assert_close(
        autograd_gradient(lambda t: fast_simam(t, LAMBDA), inputs, g), simam_backward(inputs, g), rtol=1e-10, atol=1e-12
    )
    single, g_single = inputs.float(), g.float()
    torch.testing.assert_close(
        autograd_gradient(lambda t: fast_simam(t, LAMBDA), single, g_single),
        simam_backward(single.double(), g_single.double()).float(),
        rtol=1e-4,
        atol=1e-5,
    )
    print(f"{name}: the package's gradient equals the closed form (float64 and float32)")

small = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
assert torch.autograd.gradcheck(lambda t: fast_simam(t, LAMBDA), (small,))
print("gradcheck of the package's function against finite differences: passed")

# %% [markdown]
# ### 3.5 What each version keeps for the backward pass
#
# `torch.autograd.graph.saved_tensors_hooks` lets us watch every tensor that autograd stores during
# the forward pass. We add up their bytes, counting a storage once even when two operations save
# the same tensor (the sigmoid's output is saved by the sigmoid and by the product), and divide by
# the bytes of the input. The count depends only on the shapes and the code path, not on the
# values, so it is the same on every machine.


# %%
def saved_bytes(function, x: torch.Tensor) -> int:
    """Bytes of the distinct storages that autograd saves while computing function(x)."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(x.detach().requires_grad_(True))
    return sum(storages.values())


input_bytes = x.numel() * x.element_size()
ratios = {}
for name, function in [
    ("reference formula, plain autograd", lambda t: simam_reference(t, LAMBDA)),
    ("simam_broadcast, plain autograd", simam_broadcast),
    ("package SimAM() (fast function)", SimAM(lambda_=LAMBDA)),
]:
    ratios[name] = saved_bytes(function, x) / input_bytes
    print(f"{name:36s} saves {ratios[name]:.3f} x the input's bytes")
assert ratios["package SimAM() (fast function)"] < 1.1 < 3.9 < ratios["reference formula, plain autograd"]

# %% [markdown]
# The reference expression keeps four tensors of the input's size. The fast function keeps the
# input itself and three numbers per channel (the power-of-two scale, the channel mean and
# $1/\bigl(2\sqrt{v+\lambda}\bigr)$), which on $32\times32$ maps add $3/1024$ of the input's size. In the reference CIFAR blocks SimAM sits between the second convolution and
# its batch norm. Without SimAM, that batch norm saves the convolution's output for its backward
# pass; with SimAM it saves SimAM's output instead, and whatever SimAM saves comes on top: one
# feature map per block for the fast function, four for the reference expression. That is the
# kind of growth users reported. The price of the fast function is compute: its backward pass
# recomputes $d$ and $s$, a few elementwise operations that are cheap next to the convolutions
# around them.
#
# ## 4. Full 3-D attention weights
#
# Attention modules for ConvNets reweight a feature map $X \in \mathbb{R}^{C\times H\times W}$ in
# one of three ways:
#
# * **1-D, channel attention** (SE, ECA): one weight per channel, the same at every position.
# * **2-D, spatial attention**: one weight per position, shared by all channels.
# * **Full 3-D**: one weight per neuron $(c, h, w)$, free to differ along every axis. The paper
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
torch.testing.assert_close(simam_weights * features, SimAM(lambda_=LAMBDA)(features[None])[0])
print(f"image {INDEX}: {names[INDEX]}")
print("SimAM weights times the features equal SimAM()(features)")

# %%
shown = [0, 5, 10, 15]
layout = [["image", "channel", "channel", "spatial"], [f"map{c}" for c in shown], [f"weight{c}" for c in shown]]
fig, axes = plt.subplot_mosaic(layout, figsize=(12, 9), layout="constrained")
axes["image"].imshow(images[INDEX].permute(1, 2, 0).numpy())
axes["image"].set_title(f"test image {INDEX} ({names[INDEX]})")
axes["channel"].bar(range(16), channel_weights.numpy(), color="tab:orange")
axes["channel"].set_ylim(0, 1)
axes["channel"].set_title("1-D: one weight per channel, sigmoid(mean over H, W)")
axes["channel"].set_xlabel("channel")
picture = axes["spatial"].imshow(spatial_weights.numpy(), cmap="viridis")
axes["spatial"].set_title("2-D: one weight per position,\nsigmoid(mean over channels)")
fig.colorbar(picture, ax=axes["spatial"], shrink=0.8)
for c in shown:
    limit = features[c].abs().max().item()
    axes[f"map{c}"].imshow(features[c].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[f"map{c}"].set_title(f"feature map, channel {c}")
    picture = axes[f"weight{c}"].imshow(simam_weights[c].numpy(), cmap="viridis", vmin=0.6, vmax=1.0)
    axes[f"weight{c}"].set_title(f"SimAM weights, channel {c}")
fig.colorbar(picture, ax=[axes[f"weight{c}"] for c in shown], shrink=0.8, label="weight")
for name, ax in axes.items():
    if name != "channel":
        ax.axis("off")
plt.show()

# %% [markdown]
# Each SimAM weight map highlights the neurons that stand out *in their own channel*, and the
# channels disagree: in the image above, one channel's weights pick out near-vertical edges, another's
# the lower edge of the horse's body, another's the body as a whole. Some channels also light up
# the border of the map: there the convolution's zero padding makes the responses unusual, and
# unusual is exactly what SimAM rewards. Every weight lies in $[\sigma(1/2), 1) \approx [0.62, 1)$,
# because $1/e^*_t \ge 1/2$: SimAM never silences a neuron, it only boosts the distinctive ones
# relative to the rest.
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
    """Standard deviation along channels, rows and columns, each averaged over the other two axes."""
    return [weights.std(dim=axis).mean().item() for axis in range(3)]


def rank_one_residual(weights: torch.Tensor) -> float:
    singular_values = torch.linalg.svdvals(weights.reshape(weights.shape[0], -1))
    return (singular_values[1:].square().sum() / singular_values.square().sum()).sqrt().item()


full_shape = features.shape
attentions = {
    "1-D (channel)": channel_weights.view(-1, 1, 1).expand(full_shape),
    "2-D (spatial)": spatial_weights.expand(full_shape),
    "1-D x 2-D (CBAM-like)": channel_weights.view(-1, 1, 1) * spatial_weights,
    "SimAM (3-D)": simam_weights,
}
print(f"{'attention':24s} {'std along C':>12s} {'along H':>8s} {'along W':>8s} {'rank-1 residual':>16s}")
variation = {}
for name, weights in attentions.items():
    variation[name] = axis_variation(weights) + [rank_one_residual(weights)]
    print(f"{name:24s} " + " ".join(f"{value:{width}.3f}" for value, width in zip(variation[name], (12, 8, 8, 16))))

assert all(value > 0.01 for value in variation["SimAM (3-D)"])
assert max(variation["1-D (channel)"][1:]) < 1e-12 and variation["2-D (spatial)"][0] < 1e-12
assert max(variation[name][3] for name in attentions if name != "SimAM (3-D)") < 1e-12
print("SimAM's weights vary along channels, rows and columns and are not a channel-times-space product")

# %% [markdown]
# ## 5. Edge cases
#
# Two situations break the reference expression. The package keeps that expression, failures
# included, as `simam_reference`, so we can watch them, and handles both in `SimAM()`.
#
# **A single position per channel** ($H = W = 1$, e.g. after global pooling). The reference code
# divides the sum of squared deviations by $H W - 1 = 0$, and $0/0$ is NaN. The neuron *is* its
# channel's mean, so $(t - \hat\mu)^2 = 0$ and its importance is exactly $1/2$, whatever the
# variance: the package defines the variance of one neuron as 0 and returns $x\,\sigma(1/2)$.

# %%
single = torch.randn(2, 4, 1, 1, device=device)
print(f"simam_reference with H = W = 1: all NaN? {bool(simam_reference(single, LAMBDA).isnan().all())}")
half_weight = torch.sigmoid(torch.tensor(0.5)).item()
torch.testing.assert_close(SimAM(lambda_=LAMBDA)(single), single * half_weight)
print(f"SimAM() with H = W = 1: x * sigmoid(1/2) = x * {half_weight:.4f}")

# %% [markdown]
# **Half precision.** float16 cannot represent numbers above 65504. A channel of $32\times32$
# activations with a standard deviation of 10 has a sum of squared deviations near
# $1024 \cdot 100 \approx 10^5$, which overflows to infinity; the variance becomes infinite, every
# importance collapses to $1/2$, and all weights silently equal $\sigma(1/2)$: no error, just no
# attention. The package computes the statistics and weights of a float16 (or bfloat16) input in
# float32 and rounds only the output to float16, so its result is the float32 result rounded once.
# (The power-of-two rescaling of section 3.4 would prevent the overflow on its own; computing in
# float32 also avoids float16's coarse rounding of the statistics.)

# %%
half_input = (10 * torch.randn(2, 4, 32, 32, device=device)).half()
sum_of_squares = (half_input - half_input.mean(dim=(2, 3), keepdim=True)).square().sum(dim=(2, 3))
print(f"float16 sum of squared deviations infinite in every channel? {bool(sum_of_squares.isinf().all())}")
saturated = torch.equal(simam_reference(half_input, LAMBDA), half_input * torch.sigmoid(torch.tensor(0.5)).half())
print(f"simam_reference in float16 returns x * sigmoid(1/2) everywhere? {saturated}")

package_half = SimAM(lambda_=LAMBDA)(half_input)
in_float32 = SimAM(lambda_=LAMBDA)(half_input.float())
torch.testing.assert_close(package_half, in_float32.half())
print(f"package SimAM() in float16: dtype {package_half.dtype}, all finite: {bool(package_half.isfinite().all())}, "
      "equals the float32 result rounded to float16")

# %% [markdown]
# ## Summary
#
# * The loop and the broadcasted version compute, step by step, what the package computes: the
#   per-channel mean over all positions, the variance with denominator $M-1$ as in the reference
#   code, $1/E$, its sigmoid, and the product with $x$. The broadcasted version handles any number
#   of spatial dimensions.
# * The gradient of SimAM reduces to $g\,s + 2a\,(h d - \overline{h d}) - \frac{8a^2 d}{M-1}\sum h d^2$
#   with $h = g\,x\,s(1-s)$: two reductions per channel. SymPy derived it, autograd confirmed it in
#   float64, and the package's fast function implements it. Because that function saves only $x$ and
#   per-channel statistics, it keeps about a quarter of what autograd keeps for the reference
#   expression.
# * SimAM's weights vary along channels, rows and columns and cannot be written as a channel vector
#   times a spatial map, unlike 1-D, 2-D or CBAM-style attention.
# * One-pixel maps and float16 inputs work in the package: one gives $x\,\sigma(1/2)$ instead of NaN,
#   the other computes its statistics in float32 instead of saturating.
#
# The next chapters put the module into CIFAR ResNets and compare it with SE, CBAM, ECA and GC.
