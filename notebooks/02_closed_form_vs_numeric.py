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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Closed form versus numerical minimisation
#
# [Chapter 1](01_energy_function.ipynb) derived the minimum of the energy in SimAM's equation (2). For a target neuron $t$ and
# the other $M-1$ neurons $x_i$ of its channel,
#
# $$
# e_t(w, b) = \frac{1}{M-1}\sum_{i=1}^{M-1}\bigl(-1 - (w x_i + b)\bigr)^2
#           + \bigl(1 - (w t + b)\bigr)^2 + \lambda w^2
# $$
#
# (in this chapter $w$ and $b$ are any slope and offset, the variables an optimiser moves, and
# chapter 1's $w_t$ and $b_t$ are kept for the minimiser) has the minimiser and minimum
#
# $$
# w_t = \frac{2(t - \mu_t)}{(t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda},\qquad
# b_t = -\tfrac12 (t + \mu_t)\, w_t,\qquad
# e_t^* = \frac{4(\sigma_t^2 + \lambda)}{(t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda},
# $$
#
# where $\mu_t$ and $\sigma_t^2$ are the mean and variance of the *other* $M-1$ neurons (the
# leave-one-out statistics). The sign of $w_t$ is the opposite of the paper's printed equation (3),
# as [chapter 1](01_energy_function.ipynb#the-sign-error-at-a-glance) shows and the authors confirm (authors' repository, issue 11). The package implements
# these formulas once, in `simam.energy`.
#
# A derivation can be wrong in ways that algebra does not show: a dropped sign, a variance with
# the wrong denominator, a case that divides by zero. This chapter checks the formulas the way any
# claim about a minimum can be checked: we hand the same energy to general-purpose optimisers and
# see whether they land where the formulas say. One of them minimises equation (2) written out
# literally, as a sum over the other neurons, so that it shares no code with the closed form. We do
# it on real feature maps, with many neurons at once. Then we use the exact minimum as a ruler:
#
# 1. **Feature maps.** A convolution's output on CIFAR-10 images.
# 2. **The shape of the problem.** The energy is a quadratic in $(w, b)$; its Hessian tells us
#    that the minimum is unique and how hard each optimiser will find it.
# 3. **Optimisers against the closed form.** L-BFGS, plain gradient descent and Adam on the
#    package's energy, then L-BFGS on the literal sum of equation (2).
# 4. **What $\lambda$ does.** $\lambda \to 0$, constant channels, and channels with two or three
#    neurons.
# 5. **A gradient check.** Autograd confirms that the gradient vanishes at the closed form.
#
# SimAM itself does not use $\mu_t$ and $\sigma_t^2$: it puts one mean $\hat\mu$ and one variance per
# channel into the same formula, by default the reference code's $s^2 = S/(M-1)$, with $S$ the
# channel's sum of squared deviations. How far that moves the energies and the attention weights,
# in closed form and on the feature maps of this chapter, is analysed once for the whole course, in
# [chapter 1's deep dive "Leave-one-out against channel statistics"](01_energy_function.ipynb#deep-dive-leave-one-out-against-channel-statistics).
#
# Exercises with collapsed solutions close the chapter.
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
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import simam
from simam.course import course_cifar10, smoke_test
from simam.data import CIFAR10_MEAN, CIFAR10_STD
from simam.energy import (
    NumericMinimum,
    channel_statistics,
    closed_form_minimiser,
    energy,
    importance,
    leave_one_out_statistics,
    minimal_energy,
    numeric_minimiser,
)

QUICK = simam.quick_mode()
# the quick budget, also when a test runs the full mode on a CPU
QUICK_BUDGET = QUICK or smoke_test()
simam.seed_everything(0)
print(f"quick mode: {QUICK}")

# %% [markdown]
# Every computation runs in float64: we want to see errors shrink to round-off, about $10^{-16}$
# relative, and float32 would stop them at $10^{-7}$. Quick mode (CI, or a machine without a GPU)
# solves the neurons of one image and computes statistics over 8 images; on a GPU the same cells
# solve the neurons of `N_SOLVED = 64` images and compute statistics over `N_IMAGES = 256`
# images (both set in the next cell).

# %%
DTYPE = torch.float64
device = "cuda" if torch.cuda.is_available() else "cpu"
LAMBDA = 1e-4  # the paper's value for CIFAR

# images behind the statistics of sections 1 and 4
N_IMAGES = 8 if QUICK_BUDGET else 256
# images whose neurons the optimisers solve in section 3
N_SOLVED = 1 if QUICK_BUDGET else 64
# L-BFGS's and Adam's steps in section 3 (gradient descent's are computed in section 2)
STEPS = {"lbfgs": 100, "adam": 600} if QUICK_BUDGET else {"lbfgs": 600, "adam": 2000}

# %% [markdown]
# The helpers that serve the whole chapter are in the next cell. `check_below` asserts that a
# quantity is below a bound and prints the comparison it made, not the quantity itself, whose last
# digits depend on the machine. `hessians` and `condition_numbers` serve sections 2 and 4. The
# helpers of one section sit folded just before the cell that first uses them: `errors` in
# section 3; `energy_by_definition`, which evaluates equation (2) as the literal sum over the other
# $M - 1$ neurons at a cost quadratic in $M$, and `minimise_by_definition`, which minimises it with
# `torch.optim.LBFGS` (neither uses the package), in section 3 too; `gradient_at` in section 5.

# %%
# ---- Helpers of this chapter ---------------------------------------------------------
def check_below(claim: str, value: float, bound: float) -> None:
    """Assert that value < bound; print the comparison made (free of round-off), not
    the value."""
    print(f"{claim}: {'<' if value < bound else '>='} {bound:g}")
    assert value < bound, f"{claim} = {value:.3g}"


def hessians(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    """Every neuron's Hessian of equation (2) in (w, b): shape x.shape + (2, 2)."""
    mean_t, var_t = leave_one_out_statistics(x)
    h_ww = 2 * (x**2 + mean_t**2 + var_t + lambda_)
    h_wb = 2 * (x + mean_t)
    h_bb = torch.full_like(x, 4.0)
    return torch.stack(
        [torch.stack([h_ww, h_wb], -1), torch.stack([h_wb, h_bb], -1)], -2
    )


def condition_numbers(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    eig_min, eig_max = torch.linalg.eigvalsh(hessians(x, lambda_)).unbind(-1)
    return eig_max / eig_min


# %% [markdown]
# ## 1. Feature maps
#
# SimAM sits after a convolution, so its inputs are convolution outputs. We take CIFAR-10 test
# images, normalise each colour channel with CIFAR-10's mean and standard deviation, and pass them
# through one $3\times 3$ convolution with 16 output channels and zero padding, like the stem of a
# CIFAR ResNet: the images and filters of [chapter 1](01_energy_function.ipynb)'s opening picture.
# The convolution is randomly initialised (seeded), not trained. That is enough here
# because the claim under test is an identity that must hold for *any* real numbers in a channel.
# What the data has to supply is realism in the places where numerics can fail, and a random filter
# bank over natural images supplies it:
#
# - neighbouring pixels are alike, so most neurons sit near their channel's mean and a few (edges,
#   the zero-padded border) lie far out: heavy tails, which is where the exact and the shared
#   statistics differ most;
# - each channel has its own level and spread (each filter has its own weights and bias), and the
#   conditioning of section 2 depends on both;
# - it is the kind of input a convolution gives SimAM before training has shaped its filters.
#
# `course_cifar10` reads CIFAR-10 from `simam.data_root()` and downloads it there first when it is
# missing (on Colab, say); without the data and without a network it stops with one message that
# says where to put the files.

# %%
uint8_images, _, _ = course_cifar10(train=False)
images = uint8_images[:N_IMAGES].to(DTYPE) / 255
channel_mean = torch.tensor(CIFAR10_MEAN, dtype=DTYPE).view(1, 3, 1, 1)
channel_std = torch.tensor(CIFAR10_STD, dtype=DTYPE).view(1, 3, 1, 1)
images = (images - channel_mean) / channel_std
source = f"{N_IMAGES} CIFAR-10 test images"

# the same filters on every machine: initialised on the CPU, then moved
torch.manual_seed(0)
conv = torch.nn.Conv2d(3, 16, kernel_size=3, padding=1, dtype=DTYPE).to(device)
with torch.no_grad():
    maps = conv(images.to(device))

print(f"source: {source}")
print(
    f"feature maps: {tuple(maps.shape)}, "
    f"M = {maps.shape[2] * maps.shape[3]} neurons per channel"
)
print(
    f"values: mean {maps.mean().item():.3f}, std {maps.std().item():.3f}, "
    f"range [{maps.min().item():.3f}, {maps.max().item():.3f}]"
)

# %% [markdown]
# How far out do the neurons lie? Standardise each neuron by its channel's mean $\hat\mu$ and
# standard deviation $\hat\sigma$ (chapter 1's $\hat\sigma^2 = S/M$, with $S$ the channel's sum of
# squared deviations), $z = (t - \hat\mu)/\hat\sigma$, and compare the tails with a normal
# distribution's. The figure shows an image, two of its channels, and the histogram of $z$ over all
# channels of all images on a log scale.

# %%
# correction 0: the paper's sigma-hat^2 = S / M
mean_hat, variance_hat = channel_statistics(maps)
z = ((maps - mean_hat) / variance_hat.sqrt()).flatten().cpu()
normal_tail = {
    threshold: torch.special.erfc(torch.tensor(threshold / 2**0.5)).item()
    for threshold in (3, 4, 5)
}
for threshold, expected in normal_tail.items():
    beyond = int((z.abs() > threshold).sum())
    fraction = beyond / z.numel()
    print(
        f"|z| > {threshold}: {beyond} of {z.numel()} neurons, "
        f"a fraction {fraction:.1e}; normal: {expected:.1e}"
    )

# %%
fig, axes = plt.subplots(
    1, 4, figsize=(11, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.8]}
)
axes[0].imshow(uint8_images[0].permute(1, 2, 0).numpy())
axes[0].set_title("test image 0")
for ax, channel in zip(axes[1:3], (0, 9)):
    ax.imshow(maps[0, channel].cpu(), cmap="RdBu_r")
    ax.set_title(f"channel {channel}")
for ax in axes[:3]:
    ax.axis("off")
grid = np.linspace(-6, 6, 241)
axes[3].hist(
    z.numpy(),
    bins=120,
    range=(-6, 6),
    density=True,
    log=True,
    histtype="step",
    label="feature maps",
)
axes[3].plot(
    grid,
    np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi),
    "k--",
    linewidth=1,
    label="standard normal",
)
axes[3].set_ylim(1e-6, 1)
axes[3].set_xlabel(r"$z = (t - \hat\mu)/\hat\sigma$")
axes[3].legend(fontsize=8)
plt.show()

# %% [markdown]
# In this sample there are about twice as many neurons beyond three standard deviations as a
# normal distribution would have, over ten times as many beyond four, and over a hundred times as
# many beyond five. The maps look like their image: smooth regions near the mean, and edges, which stand out.
#
# The optimisers of section 3 solve every neuron of the first `N_SOLVED` images; their exact
# answers come from the package, with `statistics="exact"` (the leave-one-out statistics).

# %%
solved = maps[:N_SOLVED]
w_star, b_star = closed_form_minimiser(solved, LAMBDA)
e_star = minimal_energy(solved, LAMBDA, statistics="exact")
mean_e_star = e_star.mean().item()
print(
    f"{solved.numel()} neurons to solve ({N_SOLVED} image(s) x 16 channels x 32 x 32)"
)
print(
    f"closed form: |w*| <= {w_star.abs().max().item():.3f}, "
    f"e* in [{e_star.min().item():.4f}, {e_star.max().item():.4f}]"
)

# %% [markdown]
# ## 2. The shape of the problem
#
# With the identity of chapter 1, $\frac{1}{M-1}\sum_i(-1 - w x_i - b)^2 = (1 + w\mu_t + b)^2 +
# w^2\sigma_t^2$, the energy of one neuron is
#
# $$
# e_t(w, b) = (1 + w\mu_t + b)^2 + w^2\sigma_t^2 + (1 - wt - b)^2 + \lambda w^2 ,
# $$
#
# a quadratic in $(w, b)$ (this is how `simam.energy.energy` evaluates it). Its Hessian is constant:
#
# $$
# Q_t = 2\begin{pmatrix} t^2 + \mu_t^2 + \sigma_t^2 + \lambda & t + \mu_t \\ t + \mu_t & 2 \end{pmatrix},
# \qquad
# \det Q_t = 4\bigl[(t - \mu_t)^2 + 2\sigma_t^2 + 2\lambda\bigr],
# $$
#
# using $2(t^2 + \mu_t^2) - (t + \mu_t)^2 = (t - \mu_t)^2$. The determinant is, up to the factor 4,
# the denominator of $w_t$: the closed form is Cramer's rule for $Q_t (w, b)^\top = (2(t-\mu_t),
# 0)^\top$, and it breaks down exactly where the Hessian becomes singular. With $\lambda > 0$ the
# Hessian is positive definite for every neuron, so each energy is strictly convex and has exactly
# one minimiser: any optimiser that converges must converge to the closed form.
#
# *How fast* it converges depends on the condition number $\kappa_t = \ell_{\max}/\ell_{\min}$, the ratio
# of $Q_t$'s eigenvalues $\ell_{\min} \le \ell_{\max}$. The simplest case shows its shape: for a channel centred at zero with no
# spread ($\mu_t = \sigma_t^2 = \lambda = 0$), $Q_t/2$ has trace $t^2 + 2$ and determinant $t^2$, and
# $\kappa_t$ depends on $t^2$ alone. It is smallest, $3 + 2\sqrt2 \approx 5.8$, at $t^2 = 2$, and it
# grows both ways:
#
# - **near the mean** like $4/t^2$. In general the determinant, $(t-\mu_t)^2 + 2\sigma_t^2 +
#   2\lambda$, is smallest for a neuron at the mean of a channel that hardly varies, and then only
#   $2\lambda$ keeps $\ell_{\min}$ away from zero (section 4).
# - **far out** like $t^2$, and likewise for a large channel level $|\mu_t|$: the trace grows like
#   $2(t^2 + \mu_t^2)$ and the determinant only like $4(t - \mu_t)^2$. The bias must cancel $w t$, so
#   $w$ and $b$ are strongly coupled: a long, thin valley. Un-normalised activations of size 10 or
#   100 would be hard for this reason.
#
# We compute the exact Hessians (`hessians`, in the helper cell) and check the formula against
# autograd. Because the total energy $\sum_t e_t$ is a sum of independent problems, differentiating
# $\partial(\sum e)/\partial w$ once more gives every neuron's second derivatives at once.

# %%
H = hessians(solved, LAMBDA)
eig_min, eig_max = torch.linalg.eigvalsh(H).unbind(-1)
kappa = eig_max / eig_min

# Autograd: second derivatives at an arbitrary point (the energy is quadratic, any
# point will do).
w = torch.full_like(solved, 0.3, requires_grad=True)
b = torch.full_like(solved, -0.2, requires_grad=True)
grad_w, grad_b = torch.autograd.grad(
    energy(solved, w, b, LAMBDA).sum(), (w, b), create_graph=True
)
auto_ww, auto_wb = torch.autograd.grad(grad_w.sum(), (w, b), retain_graph=True)
(auto_bb,) = torch.autograd.grad(grad_b.sum(), b)
hessian_error = max(
    (auto_ww - H[..., 0, 0]).abs().max(),
    (auto_wb - H[..., 0, 1]).abs().max(),
    (auto_bb - H[..., 1, 1]).abs().max(),
).item()
check_below(
    "Hessian formula against autograd, largest difference", hessian_error, 1e-10
)
print(
    f"neurons with a positive definite Hessian: {int((eig_min > 0).sum())} "
    f"of {eig_min.numel()}"
)
assert (eig_min > 0).all()

quantiles = torch.quantile(
    kappa.flatten().cpu(), torch.tensor([0.5, 0.9, 0.99, 1.0], dtype=DTYPE)
)
print(
    "condition number kappa_t over the neurons: "
    + ", ".join(
        f"{name} {value:.3g}"
        for name, value in zip(["median", "90%", "99%", "max"], quantiles.tolist())
    )
)

# %% tags=["nbval-ignore-output"]
print(f"largest Hessian error against autograd: {hessian_error:.1e}")

# %% [markdown]
# Where do the hard neurons sit? The plot shows $\kappa_t$ against the neuron's value $t$. Each
# channel traces its own bump, highest at the channel's mean, where the determinant is smallest; a
# channel with a small spread gives a tall bump. These normalised maps stay within a few units of
# zero, so the far-out growth barely shows.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.scatter(solved.flatten().cpu(), kappa.flatten().cpu(), s=1, alpha=0.3)
ax.set_yscale("log")
ax.set_xlabel("neuron value $t$")
ax.set_ylabel(r"condition number $\kappa_t$ of $Q_t$")
ax.set_title("Conditioning of each neuron's energy")
plt.show()

# %% [markdown]
# The optimisers below minimise all neurons *jointly*, through the sum $\sum_t e_t(w_t, b_t)$: the
# problems are independent, so minimising the sum minimises each term, and one call handles them
# all. The price is paid by methods with a single step size. Gradient descent with learning rate
# $\gamma$ on a quadratic multiplies the error along each eigenvector of each $Q_t$ by $1 - \gamma\ell$,
# with $\ell$ that eigenvector's eigenvalue. It is stable only if $\gamma < 2/\ell_{\max}$ for the
# *stiffest* neuron, and then it converges no faster than the *flattest* neuron allows. The joint
# condition number is $\bar\kappa = \max_t \ell_{\max}/\min_t \ell_{\min}$, larger than any single
# $\kappa_t$. The best fixed rate is $\gamma = 2/(\max_t \ell_{\max} + \min_t \ell_{\min})$, which shrinks
# every error by at least $\tau = (\bar\kappa-1)/(\bar\kappa+1)$ per step, and the energy gap, a
# quadratic form in the error, by $\tau^2$.
#
# Since we know every Hessian exactly, we can use that rate, and the bound tells us how many steps to
# run. In practice one would not know either; here they let us compare the observed convergence
# with the theory.

# %%
EIG_MAX, EIG_MIN = eig_max.max().item(), eig_min.min().item()
KAPPA_BAR = EIG_MAX / EIG_MIN
SGD_LR = 2 / (EIG_MAX + EIG_MIN)
TAU = (KAPPA_BAR - 1) / (KAPPA_BAR + 1)
print(f"joint condition number kappa_bar = {KAPPA_BAR:.4g}")
print(
    f"gradient descent: learning rate gamma = {SGD_LR:.4g}, "
    f"contraction per step tau = {TAU:.5f}"
)
STEPS["sgd"] = int(np.ceil(1.25 * np.log(1e-13) / np.log(TAU)))
print(f"steps to shrink the error by 1e-13, with 25% to spare: {STEPS['sgd']}")

# %% [markdown]
# ## 3. Optimisers against the closed form
#
# `simam.energy.numeric_minimiser` runs a `torch.optim` optimiser on the summed energy, starting
# from $w = b = 0$, and records the mean energy after each step. We run it three times: L-BFGS
# (`"lbfgs"`), plain gradient descent (`"sgd"`, with the rate above) and Adam (`"adam"`, with the
# learning rate 0.05 that `numeric_minimiser` gives it by default; torch's own default for Adam is
# $10^{-3}$).
#
# L-BFGS needs care with three of `torch.optim.LBFGS`'s settings, and the package sets them:
#
# - `max_iter=1` makes one optimiser step one L-BFGS iteration, so that the history has one point
#   per iteration. The number of function evaluations per step, `max_eval`, must then be raised
#   explicitly: its default, $\lfloor 1.25 \cdot 1 \rfloor = 1$, leaves the strong-Wolfe line search no
#   evaluation beyond its first trial. A trial that fails the sufficient-decrease test is rejected
#   with a step of zero, the curvature memory does not change, and every later step repeats the same
#   rejected trial: the optimiser stalls for good after a few steps.
# - `tolerance_grad` (default $10^{-7}$) and `tolerance_change` (default $10^{-9}$) are absolute
#   thresholds, and here they apply to the *sum* over thousands of neurons. With the defaults,
#   L-BFGS stops once the predicted decrease of the total energy falls below $10^{-9}$, long before
#   each neuron reaches round-off. The package scales both with the machine precision instead.

# %%
runs, seconds = {}, {}
for method in ["lbfgs", "sgd", "adam"]:
    start = time.perf_counter()
    lr = SGD_LR if method == "sgd" else None
    runs[method] = numeric_minimiser(solved, LAMBDA, method, STEPS[method], lr)
    seconds[method] = time.perf_counter() - start

# %% [markdown]
# The table gives the largest errors over all neurons. For $w$ and $b$, which pass through zero,
# the relative error is the largest absolute error divided by the largest exact value; for the
# energy, which is always positive, it is the largest $|e_t - e_t^*|/e_t^*$. The exact digits depend
# on the last bits of each iteration and can change from one CPU to another, so the cell after the
# table checks them against fixed thresholds.

# %% jupyter={"source_hidden": true}
def errors(
    run: NumericMinimum,
    w_exact: torch.Tensor,
    b_exact: torch.Tensor,
    e_exact: torch.Tensor,
) -> dict:
    """Largest absolute and relative errors of an optimiser's (w, b, e) against the
    closed form."""
    return {
        "w abs": (run.w - w_exact).abs().max().item(),
        "w rel": ((run.w - w_exact).abs().max() / w_exact.abs().max()).item(),
        "b abs": (run.b - b_exact).abs().max().item(),
        "b rel": ((run.b - b_exact).abs().max() / b_exact.abs().max()).item(),
        "e abs": (run.energy - e_exact).abs().max().item(),
        "e rel": ((run.energy - e_exact).abs() / e_exact).max().item(),
    }


# %% tags=["nbval-ignore-output"]
NAMES = {"lbfgs": "L-BFGS", "sgd": "gradient descent", "adam": "Adam"}
table = {method: errors(run, w_star, b_star, e_star) for method, run in runs.items()}
print(
    f"{'method':<17}{'steps':>6}{'seconds':>9}"
    + "".join(f"{column:>10}" for column in table["lbfgs"])
)
for method, row in table.items():
    print(
        f"{NAMES[method]:<17}{STEPS[method]:>6}{seconds[method]:>9.1f}"
        + "".join(f"{value:>10.1e}" for value in row.values())
    )

# %% [markdown]
# What must hold on any machine: no optimiser finds an energy below the closed form's, for any
# neuron, beyond round-off; every optimiser comes within a stated tolerance of $e^*$ at its best
# step; and L-BFGS and gradient descent end there, with their minimisers close to $(w_t, b_t)$.
# Adam's end point is described after the plot, not asserted: it depends on round-off.

# %%
# see the discussion below the plot
E_TOLERANCE, W_TOLERANCE = (1e-10, 1e-4) if QUICK else (1e-8, 1e-2)
BEST_GAP_TOLERANCE = (
    1e-10  # the mean energy gap each optimiser must reach at its best step
)
for method, run in runs.items():
    below_closed_form = (e_star - run.energy).max().item()
    best_gap = min(run.history) - mean_e_star
    check_below(
        f"{NAMES[method]}: largest e* - e over the neurons at the end",
        below_closed_form,
        1e-12,
    )
    check_below(
        f"{NAMES[method]}: |smallest mean gap to e*| during the run",
        abs(best_gap),
        BEST_GAP_TOLERANCE,
    )
check_below("L-BFGS: max |e - e*| at the end", table["lbfgs"]["e abs"], E_TOLERANCE)
check_below("L-BFGS: max |w - w*| at the end", table["lbfgs"]["w abs"], W_TOLERANCE)
sgd_error = max(table["sgd"][key] for key in ("w abs", "b abs", "e abs"))
check_below(
    "gradient descent: max of |w - w*|, |b - b*|, |e - e*| at the end", sgd_error, 1e-10
)
sign_flipped = (runs["lbfgs"].w + w_star).abs().max().item()
print(
    "with the sign of the paper's equation (3), w = -w*, "
    f"the L-BFGS answer would be off by up to {sign_flipped:.3g}"
)

# %% [markdown]
# The plot shows the mean energy gap $\frac1P\sum_t (e_t - e_t^*)$ over the $P$ neurons solved
# together (the number in its title) after each step, on a log scale: the closed form's value is the
# floor that every curve approaches. The dashed line is the bound
# $\tau^{2k}$ times the starting gap for gradient descent. Gaps below about $10^{-16}$ are round-off
# and are drawn at $10^{-17}$.

# %%
gap_floor = 1e-17
fig, ax = plt.subplots(figsize=(7, 4))
for method, run in runs.items():
    gap = np.maximum(np.array(run.history) - mean_e_star, gap_floor)
    ax.plot(np.arange(len(gap)), gap, label=NAMES[method])
k = np.arange(STEPS["sgd"] + 1)
bound = (runs["sgd"].history[0] - mean_e_star) * TAU ** (2 * k)
ax.plot(
    k,
    np.maximum(bound, gap_floor),
    "k--",
    linewidth=1,
    label=r"bound $\tau^{2k}$ (gradient descent)",
)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel(r"mean energy gap to $e^*$")
ax.set_title(f"Convergence to the closed form ({solved.numel()} neurons)")
ax.legend()
plt.show()

# %% [markdown]
# Adam's curve in numbers, for this run: its best step, and what it does afterwards at its fixed
# learning rate.

# %% tags=["nbval-ignore-output"]
adam_gap = np.array(runs["adam"].history) - mean_e_star
best_step = int(adam_gap.argmin())
last = adam_gap[-200:]
turns = int((np.diff(np.sign(np.diff(last))) != 0).sum())
largest_neuron_gap = (runs["adam"].energy - e_star).max().item()
print(
    f"Adam: smallest mean gap {adam_gap[best_step]:.1e}, "
    f"at step {best_step} of {STEPS['adam']}"
)
print(
    f"last 200 steps: mean gap between {last.min():.1e} and {last.max():.1e}, "
    f"{turns} changes of direction"
)
print(
    f"at the end: mean gap {adam_gap[-1]:.1e}, "
    f"largest single-neuron gap {largest_neuron_gap:.1e}"
)

# %% [markdown]
# What a method that compares sums of energies can resolve here (the L-BFGS paragraph below
# explains both numbers):

# %%
visible_gap = solved.numel() * torch.finfo(DTYPE).eps * mean_e_star
resolvable_error = (2 * visible_gap / eig_min.min().item()) ** 0.5
print(
    f"P eps_mach e_bar = {visible_gap:.1e}: "
    "the smallest single-neuron gap a sum of P energies shows"
)
print(
    f"sqrt(2 P eps_mach e_bar / l_min) = {resolvable_error:.0e}: "
    "the error in (w, b) such a gap allows"
)

# %% [markdown]
# All three optimisers head for the same point, the closed form. L-BFGS and gradient descent stay
# there; Adam gets there and leaves again. Each behaves as its theory predicts:
#
# - **L-BFGS** builds a model of the curvature from recent gradients and needs about a hundred
#   iterations to bring the energy to round-off. Its $w$ stays about $10^{-6}$ away. That is not a
#   failure but the limit of any method that judges progress by energy values. Its line search
#   compares sums of $P$ energies ($P$ the number of neurons solved together), whose rounding error
#   is about $\epsilon_{\mathrm{mach}} \sum_t e_t$ ($\epsilon_{\mathrm{mach}} \approx 2.2 \cdot 10^{-16}$
#   in float64), so it cannot see one neuron's gap below about $P \epsilon_{\mathrm{mach}} \bar e$, with
#   $\bar e$ the mean of the $e_t^*$ (printed above). Near the minimum $e_t - e_t^* = \tfrac12
#   \boldsymbol\zeta^\top Q_t \boldsymbol\zeta$ for an error $\boldsymbol\zeta$ in $(w, b)$, so such a
#   gap is compatible with $\|\boldsymbol\zeta\|$ up to $\sqrt{2 P \epsilon_{\mathrm{mach}} \bar e /
#   \ell_{\min}}$, printed above; the table's $10^{-6}$ is within that. With
#   more neurons, as on a GPU, both limits grow with $P$, and so does the number of iterations,
#   because the curvatures L-BFGS must model spread wider; the step budget and the thresholds above
#   allow for it.
# - **Gradient descent** converges linearly, a straight line on this plot, and stays below the
#   dashed bound. It is faster than the bound because the bound describes the flattest neuron alone,
#   which carries a tiny share of the mean. Because it only needs gradients, which stay accurate at
#   the minimum, it brings $w$ and $b$ down to round-off as well.
# - **Adam** reaches round-off too (in the run above, a few hundred steps in), and then its gap jumps
#   back up, by some ten orders of magnitude to about $10^{-6}$, and oscillates there for the rest
#   of the run without settling: the printed range and the many changes of direction show it. Adam
#   divides each gradient coordinate by the square root of a running average of past squared
#   gradients that forgets slowly (torch's `betas[1] = 0.999`). Its momentum iteration, with momentum
#   0.9 (`betas[0]`), is stable only while the learning rate times the curvature seen through that
#   scaling stays below $2(1 + 0.9)/(1 - 0.9) = 38$. As the large early gradients fade from that
#   average, the scaled curvature creeps up. Once it passes 38 for the stiffest neurons, their
#   errors grow geometrically from round-off until the growing gradients inflate the average again, which lowers the scaled curvature, and the cycle repeats. Adam
#   is built for noisy gradients, not for precision; a decaying learning rate lets it settle
#   (exercise 4).
#
# ### Equation (2) as a literal sum
#
# The three runs above evaluate equation (2) through the package's `energy`, which uses the
# leave-one-out statistics, the same `leave_one_out_statistics` as the closed form. A mistake in
# those statistics would be shared by both sides and go unseen. The last check removes the shared
# part. `energy_by_definition` (helper cell) writes equation (2) out as printed, the sum over the
# $M - 1$ other neurons of the channel with $\lambda w^2$ added, in plain torch, and
# `minimise_by_definition` hands it to `torch.optim.LBFGS` directly. The sum costs $M$ terms per
# neuron, $M^2$ per channel, so we use the first image's maps average-pooled to $16 \times 16$ (the
# size of a CIFAR ResNet's middle stage): $16 \times 16 = 256$ neurons in each of its 16
# channels, about a million terms in all.

# %% jupyter={"source_hidden": true}
def energy_by_definition(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lambda_: float
) -> torch.Tensor:
    """Equation (2) written out: for every target t, the sum over the M - 1 other
    neurons of its channel."""
    values, w, b = x.flatten(2), w.flatten(2), b.flatten(2)  # (N, C, M)
    m = values.shape[-1]
    # is_other[t, i]: neuron i is not the target t
    is_other = ~torch.eye(m, dtype=torch.bool, device=x.device)
    # [t, i]: w_t x_i + b_t
    outputs = w[..., :, None] * values[..., None, :] + b[..., :, None]
    others = (-1 - outputs).square().where(is_other, 0.0).sum(-1) / (m - 1)
    target = (1 - (w * values + b)).square()
    return (others + target + lambda_ * w.square()).reshape(x.shape)


def minimise_by_definition(x: torch.Tensor, lambda_: float, max_iterations: int = 300):
    """Minimise energy_by_definition for every neuron at once with torch.optim.LBFGS,
    from w = b = 0.

    One call of `step` runs the whole minimisation. Both stopping tolerances are 0: it
    stops when the line search can no longer lower the summed energy, or after
    max_iterations.
    """
    w = torch.zeros_like(x, requires_grad=True)
    b = torch.zeros_like(x, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [w, b],
        max_iter=max_iterations,
        max_eval=10 * max_iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        total = energy_by_definition(x, w, b, lambda_).sum()
        total.backward()
        return total

    optimiser.step(closure)
    return w.detach(), b.detach(), optimiser.state[w]["n_iter"]


# %%
pooled_16 = F.adaptive_avg_pool2d(maps[:1], 16)
start = time.perf_counter()
w_found, b_found, iterations = minimise_by_definition(pooled_16, LAMBDA)
literal_seconds = time.perf_counter() - start
e_found = energy_by_definition(pooled_16, w_found, b_found, LAMBDA)
w_exact, b_exact = closed_form_minimiser(pooled_16, LAMBDA)
e_exact = minimal_energy(pooled_16, LAMBDA, "exact")
random_generator = torch.Generator().manual_seed(2)
w_random, b_random = torch.randn(
    2, *pooled_16.shape, dtype=DTYPE, generator=random_generator
).to(device)
literal = {
    "w": (w_found - w_exact).abs().max().item(),
    "b": (b_found - b_exact).abs().max().item(),
    "e": (e_found - e_exact).abs().max().item(),
    "at closed form": (
        energy_by_definition(pooled_16, w_exact, b_exact, LAMBDA) - e_exact
    )
    .abs()
    .max()
    .item(),
    "package": (
        energy_by_definition(pooled_16, w_random, b_random, LAMBDA)
        - energy(pooled_16, w_random, b_random, LAMBDA)
    )
    .abs()
    .max()
    .item(),
}
check_below(
    "literal sum at the closed form (w*, b*) against e*, max difference",
    literal["at closed form"],
    1e-12,
)
check_below(
    "literal sum against the package's energy at random (w, b), max difference",
    literal["package"],
    1e-12,
)
check_below(
    "L-BFGS on the literal sum: largest e* - e at its end",
    (e_exact - e_found).max().item(),
    1e-12,
)
check_below("L-BFGS on the literal sum: max |e - e*|", literal["e"], 1e-10)
check_below(
    "L-BFGS on the literal sum: max |w - w*| and max |b - b*|",
    max(literal["w"], literal["b"]),
    1e-4,
)

# %% tags=["nbval-ignore-output"]
print(f"L-BFGS on the literal sum: {iterations} iterations, {literal_seconds:.1f} s")
print(
    f"max |w - w*| = {literal['w']:.1e}, max |b - b*| = {literal['b']:.1e}, "
    f"max |e - e*| = {literal['e']:.1e}"
)

# %% [markdown]
# An optimiser that knows nothing but the sum as printed finds the closed form's energy to
# round-off and its $(w_t, b_t)$ to the accuracy an energy-driven line search allows, as before. The
# literal sum evaluated at $(w_t, b_t)$ equals $e_t^*$, and at random points $(w, b)$ it equals the
# package's `energy` to round-off (both are the same quadratic, so agreement at random points is
# agreement everywhere): the faster runs above, which go through the leave-one-out statistics,
# inherit this check.
#
# So the closed form is confirmed on every one of these neurons, by independent methods, to the
# precision each can reach, and with it the sign of $w_t$: with the paper's printed sign every
# minimiser would point the wrong way.

# %% [markdown]
# ## 4. What $\lambda$ does
#
# $\lambda$ enters the Hessian only through its entry $\partial^2 e_t/\partial w^2$ and the determinant, $\det Q_t = 4[(t-\mu_t)^2 +
# 2\sigma_t^2 + 2\lambda]$. It is a floor under the variance: in $e_t^*$ it always appears as
# $\sigma_t^2 + \lambda$, so a channel whose variance is much smaller than $\lambda$ looks constant,
# and every neuron in it gets $e^* \approx 2$.
#
# **$\lambda \to 0$ on real maps.** Real feature maps always vary ($\sigma_t^2 > 0$), so the
# determinant stays positive without $\lambda$ and the closed form and L-BFGS should keep agreeing
# all the way down to $\lambda = 0$. We check four values on the first four channels of one image.

# %%
subset = maps[:1, :4]  # the same 4096 neurons in quick and full mode
print(f"{'lambda':>8} {'min det Q / 4':>14} {'max kappa':>10}")
sweep = {}
for lambda_ in [1e-1, 1e-4, 1e-8, 0.0]:
    determinant = torch.linalg.det(hessians(subset, lambda_)) / 4
    print(
        f"{lambda_:>8.0e} {determinant.min().item():>14.4g} "
        f"{condition_numbers(subset, lambda_).max().item():>10.4g}"
    )
    w_exact, b_exact = closed_form_minimiser(subset, lambda_)
    run = numeric_minimiser(subset, lambda_, "lbfgs", 100)
    sweep[lambda_] = (
        (run.w - w_exact).abs().max().item(),
        (run.energy - minimal_energy(subset, lambda_, "exact")).abs().max().item(),
    )

# %% tags=["nbval-ignore-output"]
for lambda_, (w_error, e_error) in sweep.items():
    print(
        f"lambda = {lambda_:.0e}: L-BFGS max |w - w*| = {w_error:.1e}, "
        f"max |e - e*| = {e_error:.1e}"
    )

# %%
check_below(
    "largest max |e - e*| of L-BFGS over the four lambdas",
    max(e for _, e in sweep.values()),
    1e-10,
)

# %% [markdown]
# On these maps $\lambda = 10^{-4}$ barely moves the determinant, so it changes nothing about the
# numerics. It matters when a channel is nearly constant.
#
# **Nearly constant channels.** Take channels of $M = 16$ neurons with values $1 + \varepsilon z_i$,
# $z_i$ standard normal: flat regions with small fluctuations. With $\lambda = 0$ the best line
# separating a neuron from such neighbours needs a slope of order $1/\varepsilon$, and the valley it
# lies in is extremely thin. With $\lambda = 10^{-4}$ the fluctuations below $\sqrt\lambda = 0.01$
# stop counting: $w$ stays moderate, the condition number is capped (near $10^5$ for channels at
# level 1), and $e^*$ tends to 2.

# %%
FLAT_STEPS = 300
fluctuation = torch.randn(
    1, 4, 4, 4, dtype=DTYPE, generator=torch.Generator().manual_seed(1)
).to(device)
print(f"{'epsilon':>8} {'lambda':>7} {'max |w*|':>10} {'max kappa':>10} {'min e*':>7}")
flat_runs = {}
for epsilon in [1e-2, 1e-4]:
    x = 1 + epsilon * fluctuation
    for lambda_ in [1e-4, 0.0]:
        w_exact, _ = closed_form_minimiser(x, lambda_)
        e_exact = minimal_energy(x, lambda_, "exact")
        print(
            f"{epsilon:>8.0e} {lambda_:>7.0e} {w_exact.abs().max().item():>10.3g}"
            f" {condition_numbers(x, lambda_).max().item():>10.3g}"
            f" {e_exact.min().item():>7.3f}"
        )
        run = numeric_minimiser(x, lambda_, "lbfgs", FLAT_STEPS)
        flat_runs[epsilon, lambda_] = {
            "e": (run.energy - e_exact).abs().max().item(),
            "w": ((run.w - w_exact).abs().max() / w_exact.abs().max()).item(),
            "below": (e_exact - run.energy).max().item(),
        }

# %% tags=["nbval-ignore-output"]
for (epsilon, lambda_), result in flat_runs.items():
    print(
        f"epsilon = {epsilon:.0e}, lambda = {lambda_:.0e}: "
        f"L-BFGS max |e - e*| = {result['e']:.1e}, "
        f"max |w - w*| / max |w*| = {result['w']:.1e}"
    )

# %%
regularised = max(flat_runs[epsilon, 1e-4]["e"] for epsilon in [1e-2, 1e-4])
check_below("lambda = 1e-4, both epsilons: L-BFGS max |e - e*|", regularised, 1e-7)
check_below(
    "all four cases: largest e* - e at L-BFGS's end",
    max(r["below"] for r in flat_runs.values()),
    1e-10,
)

# %% [markdown]
# The closed form does not care: it is exact for every $\lambda$, however thin the valley. The
# iterative method does. With $\lambda = 0$ and $\varepsilon = 10^{-4}$ the condition number passes
# $10^9$ and the optimum has $|w| \approx 10^4$; L-BFGS's curvature model cannot follow the valley
# in 300 iterations, and in the run printed above it stops some $10^{-3}$ above the minimum. (That
# is a description of this run, not a check: what must hold everywhere is that no optimiser goes
# below the closed form, and that with $\lambda = 10^{-4}$ it gets there.) This is a practical
# reason for $\lambda > 0$ that the paper does not give: it bounds $|w_t|$ by $1/\sqrt{2\lambda}$
# (the maximum over $\delta_t = t - \mu_t$ of $2|\delta_t|/(\delta_t^2 + 2\lambda)$), and with it the
# conditioning. The whole family of such channels, from $\varepsilon = 1$ down to $10^{-5}$, computed
# from the closed form and the Hessians:

# %%
epsilons = np.logspace(-5, 0, 21)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
for lambda_, style in [(1e-4, "-"), (0.0, "--")]:
    channels = [1 + epsilon * fluctuation for epsilon in epsilons]
    largest_w = [
        closed_form_minimiser(x, lambda_)[0].abs().max().item() for x in channels
    ]
    largest_kappa = [condition_numbers(x, lambda_).max().item() for x in channels]
    left.loglog(epsilons, largest_w, style, label=rf"$\lambda = {lambda_:g}$")
    right.loglog(epsilons, largest_kappa, style, label=rf"$\lambda = {lambda_:g}$")
left.axhline(
    1 / np.sqrt(2 * LAMBDA),
    color="k",
    linestyle=":",
    linewidth=1,
    label=r"$1/\sqrt{2 \cdot 10^{-4}}$",
)
left.set_ylabel(r"largest $|w_t|$")
right.set_ylabel(r"largest $\kappa_t$")
for ax in (left, right):
    ax.set_xlabel(r"fluctuation $\varepsilon$ of the channel")
    ax.legend(fontsize=8)
fig.suptitle(
    r"Nearly constant channels $1 + \varepsilon z$: "
    r"$\lambda$ caps the slope and the conditioning"
)
plt.show()

# %% [markdown]
# Without $\lambda$ the slope grows like $1/\varepsilon$ and the condition number like
# $1/\varepsilon^2$, without limit. With $\lambda = 10^{-4}$ the two curves leave the unregularised
# ones near $\varepsilon = 10^{-2}$: the slope peaks just under its bound and then falls again, like
# $\varepsilon/\lambda$, as the fluctuations sink below $\sqrt\lambda$ and stop counting, and the
# condition number levels off below $10^5$.
#
# **Exactly constant channels.** If all $M$ neurons equal one value, which is then the channel's mean
# $\hat\mu$, then $t = \mu_t = \hat\mu$ and $\sigma_t^2 = 0$. For $\lambda > 0$,
# $e^* = 4\lambda/2\lambda = 2$ and $w = b = 0$. For $\lambda = 0$ the formula is $0/0$: the Hessian
# is singular, and the energy along the line $b = -\hat\mu w$ is
# $(1 + 0)^2 + (1 - 0)^2 + \lambda w^2 = 2 + \lambda w^2$. Every point of that line is a minimiser
# with energy 2. The package returns the limit $e^* = 2$ and the minimum-norm minimiser $w = b = 0$, the
# point that $\lambda \to 0^+$ selects. The attention weight is then $\operatorname{sigmoid}(1/2)$
# for every neuron, the smallest weight SimAM can give.

# %%
constant = torch.full((1, 2, 4, 4), 0.7, dtype=DTYPE, device=device)
for lambda_ in [1e-4, 0.0]:
    w_c, b_c = closed_form_minimiser(constant, lambda_)
    weight = torch.sigmoid(importance(constant, lambda_)).unique()
    e_by_statistics = {
        name: minimal_energy(constant, lambda_, name).unique().tolist()
        for name in ("exact", "paper", "reference")
    }
    print(
        f"lambda = {lambda_:.0e}: e* by statistics {e_by_statistics}, "
        f"w = b = 0: {bool((w_c == 0).all() and (b_c == 0).all())}, "
        f"attention weight {weight.tolist()[0]:.4f} "
        f"(sigmoid(1/2) = {torch.sigmoid(torch.tensor(0.5)).item():.4f})"
    )
    along_valley = [
        energy(constant, w_, -0.7 * w_, lambda_)[0, 0, 0, 0].item()
        for w_ in [0.0, 1.0, 10.0, 100.0]
    ]
    print(
        "    energy along b = -0.7 w at w = 0, 1, 10, 100: "
        f"{[round(v, 6) for v in along_valley]}"
    )
    assert all(values == [2.0] for values in e_by_statistics.values())
    assert (w_c == 0).all() and (b_c == 0).all()

# %% [markdown]
# **Two or three neurons per channel.** The smallest maps show the gap between exact and shared
# statistics most starkly (chapter 1's deep dive measures it on maps from $2 \times 2$ to
# $32 \times 32$). With $M = 2$, the "others" of a neuron are a single neuron, so
# $\sigma_t^2 = 0$ and, with $\delta_t = t - \mu_t$ the difference of the two values,
#
# $$
# e^{\text{exact}} = \frac{4\lambda}{\delta_t^2 + 2\lambda} \approx 0,\qquad
# e^{\text{paper}} = \frac{4(\delta_t^2/4 + \lambda)}{3\delta_t^2/4 + 2\lambda} \approx \frac43,\qquad
# e^{\text{reference}} = \frac{4(\delta_t^2/2 + \lambda)}{5\delta_t^2/4 + 2\lambda} \approx \frac85 .
# $$
#
# The exact energy is right: two distinct numbers can always be mapped to $+1$ and $-1$ exactly, so
# both neurons are perfectly distinctive, and only $\lambda$'s penalty on $w = 2/\delta_t$ keeps the
# energy above zero. The shared statistics say the opposite, that both neurons are
# unremarkable. (With $M = 1$ there are no others at all: equation (2) is undefined, the package's
# exact statistics refuse it, and the shared ones return $e^* = 2$.)
#
# We pool the maps to $1 \times 2$ and $1 \times 3$, solve the neurons numerically as well, and
# compare the three energies.

# %%
SMALL_STEPS = 800 if QUICK_BUDGET else 1500
small_runs = {}
print(
    f"{'M':>3} {'median e* exact':>16} {'paper':>7} "
    f"{'reference':>10} {'max |w*|':>9} {'max kappa':>10}"
)
for m in [2, 3]:
    x = F.adaptive_avg_pool2d(maps, (1, m))
    medians = [
        minimal_energy(x, LAMBDA, statistics).median().item()
        for statistics in ["exact", "paper", "reference"]
    ]
    w_exact, _ = closed_form_minimiser(x, LAMBDA)
    print(
        f"{m:>3} {medians[0]:>16.4f} {medians[1]:>7.4f} {medians[2]:>10.4f}"
        f" {w_exact.abs().max().item():>9.3g}"
        f" {condition_numbers(x, LAMBDA).max().item():>10.3g}"
    )
    run = numeric_minimiser(x[:N_SOLVED], LAMBDA, "lbfgs", SMALL_STEPS)
    small_runs[m] = (
        (run.energy - minimal_energy(x[:N_SOLVED], LAMBDA, "exact")).abs().max().item()
    )
print(f"bound 1/sqrt(2 lambda) on |w*|: {1 / np.sqrt(2 * LAMBDA):.3g}")

# %% tags=["nbval-ignore-output"]
for m, error in small_runs.items():
    print(f"M = {m}: L-BFGS after {SMALL_STEPS} steps, max |e - e*| = {error:.1e}")

# %%
check_below("M = 2 and M = 3: L-BFGS max |e - e*|", max(small_runs.values()), 1e-8)

# %% [markdown]
# The medians show the disagreement: at $M = 2$ the exact energy of a typical neuron is a small
# fraction of 1, while the paper's and the reference code's stay near $4/3$ and $8/5$. Small maps are
# also the hardest case for the optimisers. With $M = 2$, $\sigma_t^2 = 0$ and $\det Q_t / 4 =
# \delta_t^2 + 2\lambda$: where the two halves of a map nearly agree, only $\lambda$ keeps the Hessian
# away from singular, $|w_t|$ runs up to the bound $1/\sqrt{2\lambda}$, and $\kappa_t$ reaches
# $10^4$. L-BFGS still gets there (the check above), with a larger budget of steps than in
# section 3: `SMALL_STEPS`, 800 in quick mode against 100.

# %% [markdown]
# ## 5. A gradient check
#
# The last check needs no optimiser at all. At a minimiser of a differentiable function the
# gradient vanishes. We evaluate equation (2) at the closed-form $(w_t, b_t)$, let autograd
# differentiate the summed energy, and compare with the gradient at the starting point $w = b = 0$
# of section 3. We do it on the $32\times 32$ maps, on the tiny $M = 2$ and $M = 3$ maps, and on the
# constant channel with $\lambda = 0$.

# %% jupyter={"source_hidden": true}
def gradient_at(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lambda_: float
) -> float:
    """The largest |d e_t / d w_t| or |d e_t / d b_t| over all neurons at (w, b)."""
    w = w.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    grad_w, grad_b = torch.autograd.grad(energy(x, w, b, lambda_).sum(), (w, b))
    return max(grad_w.abs().max().item(), grad_b.abs().max().item())


# %%
cases = {
    "32 x 32 maps": (solved, LAMBDA),
    "M = 2 maps": (F.adaptive_avg_pool2d(maps, (1, 2)), LAMBDA),
    "M = 3 maps": (F.adaptive_avg_pool2d(maps, (1, 3)), LAMBDA),
    "constant channel, lambda = 0": (constant, 0.0),
}
gradients = {}
for name, (x, lambda_) in cases.items():
    w_exact, b_exact = closed_form_minimiser(x, lambda_)
    zero = torch.zeros_like(x)
    gradients[name] = (
        gradient_at(x, zero, zero, lambda_),
        gradient_at(x, w_exact, b_exact, lambda_),
    )

# %% tags=["nbval-ignore-output"]
for name, (at_start, at_closed_form) in gradients.items():
    print(
        f"{name:<30} max |gradient| at w = b = 0: {at_start:.2e}, "
        f"at the closed form: {at_closed_form:.1e}"
    )

# %%
for name, (_, at_closed_form) in gradients.items():
    check_below(f"{name}: max |gradient| at the closed form", at_closed_form, 1e-12)

# %% [markdown]
# ## What this chapter established
#
# - Gradient descent and L-BFGS, knowing only the energy (2), and L-BFGS on its literal sum, reach
#   [chapter 1](01_energy_function.ipynb)'s closed form on real CIFAR-10 feature maps, sign of $w_t$
#   included; none goes below it, and Adam at a constant rate oscillates just above it.
# - Each neuron's energy is a quadratic that is ill-conditioned on nearly constant channels;
#   $\lambda$ is a variance floor that bounds it.
# - The closed form holds on constant channels and on maps of two or three neurons; on the latter
#   SimAM's shared channel statistics lie far from it (chapter 1's deep dive compares them).
#
# Next, [chapter 3](03_building_simam.ipynb) builds the module from these formulas.

# %% [markdown]
# ## Exercises
#
# Each solution is a collapsed cell that checks its answer; open it after trying.
#
# **1. One Newton step.** Show that a single Newton step from $w = b = 0$, $(w, b) = -Q_t^{-1}\nabla
# e_t(0, 0)$, lands exactly on the closed form, for every neuron. Check it on the first image's maps
# pooled to $8 \times 8$, with the gradient from autograd and the Hessian from `hessians`.

# %% jupyter={"source_hidden": true} tags=["solution"]
# e_t is quadratic, so its second-order Taylor expansion is exact and one Newton step
# from any point reaches the minimiser. At w = b = 0 the gradient is
# (2 (mu_t - t), 2 - 2) = (-2 (t - mu_t), 0), so the step solves
# Q_t (w, b) = (2 (t - mu_t), 0): Cramer's rule of section 2 gives the closed form.
newton_maps = F.adaptive_avg_pool2d(maps[:1], 8)
w_start = torch.zeros_like(newton_maps, requires_grad=True)
b_start = torch.zeros_like(newton_maps, requires_grad=True)
gradient = torch.stack(
    torch.autograd.grad(
        energy(newton_maps, w_start, b_start, LAMBDA).sum(), (w_start, b_start)
    ),
    -1,
)
newton_step = torch.linalg.solve(
    hessians(newton_maps, LAMBDA), -gradient.unsqueeze(-1)
).squeeze(-1)
w_newton, b_newton = newton_step.unbind(-1)
w_closed, b_closed = closed_form_minimiser(newton_maps, LAMBDA)
check_below(
    "Newton step against the closed form, max |w - w*|",
    (w_newton - w_closed).abs().max().item(),
    1e-12,
)
check_below(
    "Newton step against the closed form, max |b - b*|",
    (b_newton - b_closed).abs().max().item(),
    1e-12,
)

# %% [markdown]
# **2. Two neurons.** Derive the three energies of section 4 for a channel of two neurons whose
# difference is $\delta_t = t - \mu_t$: the exact one, the paper's and the reference code's. Check
# them against the package on random $1 \times 2$ maps.

# %% jupyter={"source_hidden": true} tags=["solution"]
# Exact: the other neuron is alone, mu_t = that neuron, sigma_t^2 = 0,
# (t - mu_t)^2 = delta_t^2,
#   so e* = 4 lambda / (delta_t^2 + 2 lambda).
# Shared: the mean is the midpoint, (t - muhat)^2 = delta_t^2 / 4,
# and S = 2 (delta_t / 2)^2 = delta_t^2 / 2.
#   Paper, S / 2 = delta_t^2 / 4:
#     e* = 4 (delta_t^2/4 + lambda) / (3 delta_t^2/4 + 2 lambda).
#   Reference, S / 1 = delta_t^2 / 2:
#     e* = 4 (delta_t^2/2 + lambda) / (5 delta_t^2/4 + 2 lambda).
pairs = torch.randn(4, 8, 1, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(5))
delta2 = (pairs[..., :1] - pairs[..., 1:]).square().expand_as(pairs)
two_neuron_energies = {
    "exact": 4 * LAMBDA / (delta2 + 2 * LAMBDA),
    "paper": 4 * (delta2 / 4 + LAMBDA) / (3 * delta2 / 4 + 2 * LAMBDA),
    "reference": 4 * (delta2 / 2 + LAMBDA) / (5 * delta2 / 4 + 2 * LAMBDA),
}
for name, formula in two_neuron_energies.items():
    difference = (formula - minimal_energy(pairs, LAMBDA, name)).abs().max().item()
    check_below(
        f"M = 2, {name}: formula against the package, largest difference",
        difference,
        1e-12,
    )

# %% [markdown]
# **3. The steepest neuron.** Show that $|w_t| \le 1/\sqrt{2\lambda}$ for every neuron, and build a
# channel of 16 neurons in which one neuron reaches the bound. Check the bound on all the feature
# maps of section 1.

# %% jupyter={"source_hidden": true} tags=["solution"]
# With delta_t = t - mu_t,
# |w_t| = 2 |delta_t| / (delta_t^2 + 2 sigma_t^2 + 2 lambda)
#      <= 2 |delta_t| / (delta_t^2 + 2 lambda),
# which is largest at |delta_t| = sqrt(2 lambda), where it equals 1 / sqrt(2 lambda).
# Equality needs sigma_t^2 = 0 and |delta_t| = sqrt(2 lambda): fifteen equal neurons
# and one that differs from them by sqrt(2 lambda).
steepest = torch.zeros(1, 1, 4, 4, dtype=DTYPE)
steepest[0, 0, 0, 0] = np.sqrt(2 * LAMBDA)
w_steepest = closed_form_minimiser(steepest, LAMBDA)[0][0, 0, 0, 0].item()
bound = 1 / np.sqrt(2 * LAMBDA)
largest_w_on_maps = closed_form_minimiser(maps, LAMBDA)[0].abs().max().item()
check_below(
    "the steepest neuron: |w* - 1/sqrt(2 lambda)| / (1/sqrt(2 lambda))",
    abs(w_steepest - bound) / bound,
    1e-12,
)
check_below(
    "feature maps: largest |w*| / (1/sqrt(2 lambda))", largest_w_on_maps / bound, 1
)

# %% [markdown]
# **4. Adam that settles.** Section 3 blamed Adam's oscillation on its fixed learning rate. Run Adam
# (learning rate 0.05) for 1000 steps on the first image's maps pooled to $8 \times 8$, once with the
# fixed rate and once with the rate annealed to zero along a cosine
# (`torch.optim.lr_scheduler.CosineAnnealingLR`). Compare both end points with the closed form.

# %% jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# With the fixed rate Adam reaches round-off and then oscillates above the minimum, as
# in section 3, and ends with some neurons far from it (the printed numbers depend on
# round-off; the assert does not). As the annealed rate shrinks, the scaled curvature
# times the rate falls back below the stability limit and every error decays: Adam ends
# at the closed form to round-off.
adam_maps = F.adaptive_avg_pool2d(maps[:1], 8)
adam_e_star = minimal_energy(adam_maps, LAMBDA, "exact")
adam_end_gap = {}
for schedule in ("fixed", "cosine"):
    w_adam = torch.zeros_like(adam_maps, requires_grad=True)
    b_adam = torch.zeros_like(adam_maps, requires_grad=True)
    optimiser = torch.optim.Adam([w_adam, b_adam], lr=0.05)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=1000)
        if schedule == "cosine"
        else None
    )
    for _ in range(1000):
        optimiser.zero_grad()
        energy(adam_maps, w_adam, b_adam, LAMBDA).sum().backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
    adam_end_gap[schedule] = (
        (energy(adam_maps, w_adam, b_adam, LAMBDA) - adam_e_star).abs().max().item()
    )
assert adam_end_gap["cosine"] < 1e-10
for schedule, gap in adam_end_gap.items():
    print(f"Adam, {schedule} learning rate: max |e - e*| after 1000 steps = {gap:.1e}")

# %% [markdown]
# ## References
#
# * Yang, L., Zhang, R.-Y., Li, L., Xie, X. (2021). SimAM: A Simple, Parameter-Free Attention
#   Module for Convolutional Neural Networks. *Proceedings of the 38th International Conference on
#   Machine Learning (ICML)*, PMLR 139, 11863–11874. Reference code:
#   [github.com/ZjjConan/SimAM](https://github.com/ZjjConan/SimAM).
# * Authors' repository, issue 11, "A typo of your paper": the authors confirm that equation (3)
#   should have no minus sign. <https://github.com/ZjjConan/SimAM/issues/11>
# * Liu, D. C., Nocedal, J. (1989). On the limited memory BFGS method for large scale optimization.
#   *Mathematical Programming* 45, 503–528.
# * Kingma, D. P., Ba, J. (2015). Adam: A Method for Stochastic Optimization. *ICLR 2015*.
