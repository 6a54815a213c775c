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
# # 1. The energy function, derived
#
# SimAM multiplies every neuron of a feature map by a weight below 1 that says how much the neuron
# stands out from the other neurons of its channel. The paper does not pick this weight by hand.
# It defines an *energy* for each neuron (equations 1 and 2): how well a linear map
# $\hat x = w_t x + b_t$ can separate that neuron, the *target* $t$, from the other $M - 1$ neurons
# of its channel. The best linear map has a closed form (equations 3 and 4), and so has its energy
# (equation 5); the module weighs each neuron by $\operatorname{sigmoid}(1/e_t^*)$ (equation 6).
#
# This chapter first shows the weights on a real picture and works one example by hand. Then it
# derives equations (3) to (5) from equation (2) alone, with SymPy doing the algebra, gives each
# printed equation a verdict, and checks each result against the course package, `simam.energy`,
# the one implementation the later chapters use: the energy of one neuron (section 1), its
# minimiser and minimum, where one printed sign is wrong (section 2), what the printed (5)
# approximates with one mean and one variance per channel (section 3), the attention weight and
# its range (section 4), and the verdicts (section 5).
#
# A section whose heading begins "Deep dive" holds a proof or an analysis that the rest of the
# chapter does not need; the course's website and JupyterLab fold it under its heading. Exercises,
# their solutions collapsed, and the references close the chapter.
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

# %% [markdown]
# ## SimAM on a picture
#
# SimAM sits after a convolution. We pass CIFAR-10 test images, each colour channel normalised with
# CIFAR-10's mean and standard deviation, through one $3 \times 3$ convolution with 16 output
# channels and zero padding, like the first layer of a CIFAR ResNet, with random (seeded) weights:
# [chapter 2](02_closed_form_vs_numeric.ipynb), which uses the same images and filters, explains
# why that is enough for testing a formula. Each image gives 16 channels of $32 \times 32$ neurons,
# $M = 1024$ per channel. `course_cifar10` reads CIFAR-10 from `simam.data_root()`, downloading it
# there first when it is missing.

# %%
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm

import simam
from simam.course import course_cifar10
from simam.data import CIFAR10_MEAN, CIFAR10_STD
from simam.energy import channel_statistics, leave_one_out_statistics

QUICK = simam.quick_mode()
generator = simam.seed_everything(0)
print(f"quick mode: {QUICK}")

# %%
DTYPE = torch.float64
N_IMAGES = 8  # the picture is image 3; section 3's deep dive uses all eight
images, labels, classes = course_cifar10(train=False)
colour_mean = torch.tensor(CIFAR10_MEAN, dtype=DTYPE).view(1, 3, 1, 1)
colour_std = torch.tensor(CIFAR10_STD, dtype=DTYPE).view(1, 3, 1, 1)
normalised = (images[:N_IMAGES].to(DTYPE) / 255 - colour_mean) / colour_std

# the same filters on every machine, and the same as chapter 2's
torch.manual_seed(0)
conv = torch.nn.Conv2d(3, 16, kernel_size=3, padding=1, dtype=DTYPE)
with torch.no_grad():
    feature_maps = conv(normalised)

IMAGE, CHANNEL = 3, 15
picture = feature_maps[IMAGE : IMAGE + 1]  # one feature map, (1, 16, 32, 32)
# SimAM's weight sigmoid(1/e*) of every neuron, with the package's default statistics
weights = torch.sigmoid(simam.importance(picture))
# the module multiplies the feature map by exactly these weights
assert torch.allclose(simam.SimAM()(picture), picture * weights, rtol=1e-12, atol=0)
shown = weights[0, CHANNEL]
print(
    f"test image {IMAGE} ({classes[labels[IMAGE]]}): feature map {tuple(picture.shape)}"
)
print(
    f"channel {CHANNEL}: weights from {shown.min().item():.4f} to "
    f"{shown.max().item():.4f}, median {shown.median().item():.4f}; "
    f"{int((shown > 0.9).sum())} of {shown.numel()} neurons above 0.9"
)

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
axes[0].imshow(images[IMAGE].permute(1, 2, 0).numpy())
axes[0].set_title(f"test image {IMAGE}: {classes[labels[IMAGE]]}")
drawn = axes[1].imshow(picture[0, CHANNEL], cmap="RdBu_r")
fig.colorbar(drawn, ax=axes[1], shrink=0.8)
axes[1].set_title(f"channel {CHANNEL} of the feature map")
drawn = axes[2].imshow(shown, cmap="magma", vmin=shown.min().item(), vmax=1.0)
fig.colorbar(drawn, ax=axes[2], shrink=0.8)
axes[2].set_title("SimAM's weight of each neuron")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Over most of the channel the weights sit near their smallest value, 0.62, where the neurons are
# close to the channel's mean. They rise towards 1 along the aeroplane's outline, where the values
# lie far from the mean, below it or above it (the weight grows with the squared deviation): the
# few neurons that stand out.
#
# Where does the weight come from? Put the values of one channel on a number line and pick one
# neuron, the target $t$. The paper asks how well a straight line $\hat x = w_t x + b_t$ can send
# $t$ to $+1$ and the other $M - 1$ neurons to $-1$. The best such line, in least squares, crosses
# zero at a threshold on the number line. The figure draws it, from the package's
# `closed_form_minimiser`, for the neuron with the largest weight and for the one nearest the
# channel's mean (the vertical spread only keeps the dots apart). The figure's energies are the
# minima of the paper's equation (2), computed from the other neurons themselves
# (`statistics="exact"`; section 3 introduces this option beside the shortcuts `"paper"` and
# `"reference"`).

# %%
channel = picture[:, CHANNEL : CHANNEL + 1]  # (1, 1, 32, 32)
values = channel.flatten()
w_line, b_line = (v.flatten() for v in simam.closed_form_minimiser(channel))
e_line = simam.minimal_energy(channel, statistics="exact").flatten()
loo_mean_line = leave_one_out_statistics(channel)[0].flatten()
targets = {
    "largest weight": int(shown.flatten().argmax()),
    "nearest the mean": int((values - values.mean()).abs().argmin()),
}
spread = torch.rand(values.numel(), generator=torch.Generator().manual_seed(0))

fig, axes = plt.subplots(2, 1, figsize=(9, 4), sharex=True)
for ax, (name, k) in zip(axes, targets.items()):
    t_value = values[k].item()
    threshold = -b_line[k].item() / w_line[k].item()  # where w_t x + b_t = 0
    others = torch.cat([values[:k], values[k + 1 :]])
    with_target = int(((others - threshold) * (t_value - threshold) > 0).sum())
    ax.axvspan(
        threshold,
        values.min().item() if t_value < threshold else values.max().item(),
        color="tab:red",
        alpha=0.08,
    )
    ax.scatter(values, spread, s=4, color="grey", alpha=0.5, label="the other neurons")
    ax.plot(t_value, 0.5, "r*", ms=15, label="target $t$")
    ax.plot(
        loo_mean_line[k].item(), 0.5, "bv", ms=8, label=r"$\mu_t$, mean of the others"
    )
    ax.axvline(
        threshold, color="k", linestyle="--", label=r"threshold $w_t x + b_t = 0$"
    )
    ax.set_yticks([])
    weight_exact = torch.sigmoid(1 / e_line[k]).item()
    ax.set_title(
        f"{name}: $e_t^*$ = {e_line[k].item():.3f}, weight {weight_exact:.3f}, "
        f"{with_target} of {others.numel()} others on $t$'s side",
        fontsize=10,
    )
    print(
        f"{name}: t = {t_value:.4f}, mu_t = {loo_mean_line[k].item():.4f}, threshold "
        f"{threshold:.4f}, others on t's side: {with_target}; e_t* = "
        f"{e_line[k].item():.4f}, sigmoid(1/e_t*) = {weight_exact:.4f} "
        f"(SimAM's, with the channel's statistics: {shown.flatten()[k].item():.4f})"
    )
axes[0].legend(fontsize=8, loc="upper left", ncol=2)
axes[1].set_xlabel(f"value of a neuron of channel {CHANNEL}")
plt.show()

# %% [markdown]
# For the neuron with the largest weight, the threshold leaves all but a few dozen of the others on
# the far side: a line separates it well, its minimal energy $e_t^*$ is low and its weight close
# to 1. For the neuron nearest the mean, hundreds of others lie on each side: no line separates it,
# its energy is 2, that of the trivial line $w_t = b_t = 0$, and its weight sits at the floor.
# (SimAM evaluates the energy with the channel's mean and variance in place of the other neurons'
# own, a shortcut that section 3 examines; on $32 \times 32$ channels the weights differ by about
# 0.001 at most.)

# %% [markdown]
# ## Why an energy function
#
# The SimAM paper takes its idea from visual neuroscience (its section 3). The most informative
# neurons are usually those whose firing differs from their neighbours', and an active neuron tends
# to suppress the activity around it, an effect called spatial suppression (Webb et al. 2005).
# Attention acts in the brain as a *gain*, scaling neuronal responses rather than adding to them
# (Hillyard et al. 1998; Carrasco 2011). For a feature map: find the neurons that stand out from
# their channel, and multiply them by a larger weight.
#
# Attention modules differ in the shape of that weight. A **1-D** (channel) attention gives one
# weight per channel, $C \times 1 \times 1$: SE (Hu et al. 2018) and ECA (Wang et al. 2020) compute
# it from the channel's average. A **2-D** (spatial) attention gives one weight per position,
# $1 \times H \times W$, such as CBAM's spatial gate (Woo et al. 2018), a $7 \times 7$ convolution
# over the channel-wise maximum and mean. CBAM applies a channel gate and then the spatial gate, so
# its overall weight is a product $A^{\mathrm{ch}} \odot A^{\mathrm{sp}}$: a neuron can only be
# raised if its whole channel or its whole position is. A **3-D** attention such as SimAM gives
# every neuron its own weight, $C \times H \times W$, as in the picture above; in the brain,
# attention to features and attention to locations work together (Carrasco 2011).
#
# SimAM's weight comes from the energy of the number line: a least-squares linear classifier with
# one input and a ridge penalty $\lambda w_t^2$ on its slope. The penalty matters most when the
# other $M - 1$ neurons all have one value. Without it, a target that differs from them then has
# energy 0, and a target equal to them (a constant channel) has no unique best line, the one case
# in which the problem is singular (section 2). The minimum of a quadratic has a closed form, so
# the weight costs one mean and one variance per channel, with nothing to learn.
#
# ## A worked example
#
# Sections 1 and 2 derive the best line and its energy:
#
# $$w_t = \frac{2(t - \mu_t)}{D_t}, \qquad b_t = -\tfrac12 (t + \mu_t)\, w_t, \qquad
# e_t^* = \frac{4(\sigma_t^2 + \lambda)}{D_t}, \qquad D_t = (t - \mu_t)^2 + 2\sigma_t^2 + 2\lambda,$$
#
# where $\mu_t$ and $\sigma_t^2$ are the mean and the variance (denominator $M - 1$) of the other
# $M - 1$ neurons. On four numbers: a $2 \times 2$ channel holds $3, 0, 1, 0$, the target is
# $t = 3$, and $\lambda = 0$ keeps the arithmetic exact. The other three neurons have
# $\mu_t = 1/3$ and $\sigma_t^2 = \tfrac13\bigl(2 \cdot (1/3)^2 + (2/3)^2\bigr) = 2/9$, so
#
# $$D_t = \Bigl(\frac83\Bigr)^2 + \frac49 = \frac{68}{9}, \qquad
# w_t = \frac{16/3}{68/9} = \frac{12}{17}, \qquad
# b_t = -\frac{10/3}{2} \cdot \frac{12}{17} = -\frac{20}{17}, \qquad
# e_t^* = \frac{8/9}{68/9} = \frac{2}{17}.$$
#
# The line maps the target to $3 \cdot 12/17 - 20/17 = 16/17$, near its label $+1$, and the others
# to $-20/17$ and $-8/17$; it crosses zero at the threshold $(t + \mu_t)/2 = 5/3$. The importance
# $1/e_t^*$ is $17/2$, the weight $\operatorname{sigmoid}(17/2)$, nearly 1. The cell redoes the
# arithmetic with exact fractions, evaluates equation (2) term by term, and asks the package.

# %%
example_values = [3, 0, 1, 0]
example_target = Fraction(example_values[0])
example_others = [Fraction(v) for v in example_values[1:]]


def energy_by_hand(w_value, b_value):
    """Equation (2) for the example's target with lambda = 0, term by term, in exact
    fractions: the mean over the others of (-1 - x^_i)^2, plus (1 - t^)^2."""
    mapped_others = [w_value * v + b_value for v in example_others]
    mapped_target = w_value * example_target + b_value
    others_term = sum((-1 - v) ** 2 for v in mapped_others) / len(mapped_others)
    return others_term + (1 - mapped_target) ** 2


mu_hand = sum(example_others) / len(example_others)
var_hand = sum((v - mu_hand) ** 2 for v in example_others) / len(example_others)
D_hand = (example_target - mu_hand) ** 2 + 2 * var_hand  # lambda = 0
w_hand = 2 * (example_target - mu_hand) / D_hand
b_hand = -(example_target + mu_hand) * w_hand / 2
e_hand = 4 * var_hand / D_hand
print(
    f"by hand: mu_t = {mu_hand}, sigma_t^2 = {var_hand}, D_t = {D_hand}, "
    f"w_t = {w_hand}, b_t = {b_hand}, e_t* = {e_hand}"
)
print(f"equation (2) at (w_t, b_t), term by term: {energy_by_hand(w_hand, b_hand)}")
assert energy_by_hand(w_hand, b_hand) == e_hand

channel_2x2 = torch.tensor(example_values, dtype=DTYPE).reshape(1, 1, 2, 2)
w_example, b_example = simam.closed_form_minimiser(channel_2x2, lambda_=0.0)
package = {
    "w_t": w_example[0, 0, 0, 0].item(),
    "b_t": b_example[0, 0, 0, 0].item(),
    "e_t*": simam.minimal_energy(channel_2x2, 0.0, "exact")[0, 0, 0, 0].item(),
}
print(
    "package: " + ", ".join(f"{name} = {value:.6f}" for name, value in package.items())
)
for value, exact in zip(package.values(), (w_hand, b_hand, e_hand)):
    assert abs(value - float(exact)) < 1e-12
shared_importance = simam.importance(channel_2x2, 0.0)[0, 0, 0, 0].item()
print(
    f"importance 1/e_t* = {1 / e_hand}, weight {1 / (1 + math.exp(-1 / e_hand)):.4f}; "
    f"SimAM's default, with the channel's own statistics: importance "
    f"{shared_importance:.4f}, weight {1 / (1 + math.exp(-shared_importance)):.4f}"
)

# %% [markdown]
# The package agrees. The last line previews section 3: SimAM itself uses the mean and variance of
# the whole channel, target included, which here gives an importance of 1 instead of 8.5.
#
# The derivation's helpers: `check_close` asserts that two tensors agree and prints the comparison
# (not the difference, whose last digits depend on the machine); `others_of` lists by brute force
# the other neurons of every target, and `energy_by_definition` sums equation (2) over them. The
# checks use a small random feature map `x`. Quick mode changes nothing in this chapter.

# %%
# ---- Helpers of this chapter ---------------------------------------------------------
# every numerical check: name -> (largest |difference|, largest |expected value|)
CHECKS = {}


def check_close(name, actual, expected, tol=1e-12):
    """Assert that two tensors agree to `tol` everywhere; print the comparison, free of
    round-off."""
    difference = (actual - expected).abs().max().item()
    CHECKS[name] = (difference, expected.abs().max().item())
    print(f"{name}: max |difference| {'<' if difference < tol else '>='} {tol:g}")
    assert difference < tol, f"{name}: max |difference| = {difference:.3g}"


def sigmoid(v):
    """The logistic function of a Python float."""
    return 1.0 / (1.0 + math.exp(-v))


def others_of(x):
    """For every neuron t of every channel of x (N, C, *spatial): the other M - 1
    neurons of its channel, as a tensor of shape (N, C, M, M - 1). Quadratic in M; used
    only for checks."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    m = flat.shape[-1]
    keep = ~torch.eye(m, dtype=torch.bool)
    return flat.unsqueeze(-2).expand(n, c, m, m)[..., keep].reshape(n, c, m, m - 1)


def energy_by_definition(x, w, b, lambda_):
    """Equation (2) evaluated literally, with the explicit sum over the other
    neurons."""
    others = others_of(x)
    per_neuron = others.shape[:-1]
    t_, w_, b_ = (
        torch.as_tensor(v, dtype=x.dtype).expand_as(x).reshape(per_neuron)
        for v in (x, w, b)
    )
    mean_over_others = (
        (-1 - (w_[..., None] * others + b_[..., None])).square().mean(dim=-1)
    )
    target = (1 - (w_ * t_ + b_)).square()
    return (mean_over_others + target + lambda_ * w_.square()).reshape(x.shape)


# A small feature map to test on: 2 samples, 3 channels, 5 x 5 neurons (M = 25), not
# centred.
x = 1.5 * torch.randn(2, 3, 5, 5, generator=generator, dtype=DTYPE) + 0.3

# %% [markdown]
# ## 1. Equations (1) and (2): the energy of one neuron
#
# Fix one channel with $M = H W$ neurons, the target $t$ and the others $x_1, \dots, x_{M-1}$, and
# map them linearly, $\hat t = w_t t + b_t$ and $\hat x_i = w_t x_i + b_t$. Equation (1) measures how
# far this map is from sending the target to a label $y_t$ and the others to $y_o$:
#
# $$e_t(w_t, b_t, y, x_i) = (y_t - \hat t)^2 + \frac{1}{M-1} \sum_{i=1}^{M-1} (y_o - \hat x_i)^2. \tag{1}$$
#
# Equation (2) chooses binary labels $y_t = 1$, $y_o = -1$ and adds a ridge penalty
# $\lambda w_t^2$ on the slope:
#
# $$e_t = \frac{1}{M-1} \sum_{i=1}^{M-1} \bigl(-1 - (w_t x_i + b_t)\bigr)^2 + \bigl(1 - (w_t t + b_t)\bigr)^2 + \lambda w_t^2. \tag{2}$$
#
# Rather than carry $M - 1$ symbols $x_i$, write each neighbour as its deviation from the mean of
# the others, $x_i = \mu_t + \delta_i$, with
# $\mu_t = \frac{1}{M-1}\sum_i x_i$ and $\sigma_t^2 = \frac{1}{M-1}\sum_i (x_i - \mu_t)^2 = \frac{1}{M-1}\sum_i \delta_i^2$.
# Then
#
# $$y_o - \hat x_i = \underbrace{(y_o - w_t \mu_t - b_t)}_{o} - w_t \delta_i ,
# \qquad
# \frac{1}{M-1}\sum_i (o - w_t\delta_i)^2 = o^2 - \frac{2 o w_t}{M-1}\underbrace{\sum_i \delta_i}_{=\,0} + w_t^2 \sigma_t^2 .$$
#
# The cross term vanishes because deviations from a mean sum to zero. So, for any $M$ and any labels,
#
# $$\frac{1}{M-1}\sum_{i=1}^{M-1} (y_o - \hat x_i)^2 = (y_o - w_t\mu_t - b_t)^2 + w_t^2 \sigma_t^2 ,$$
#
# an identity, not an approximation: the other neurons enter the energy only through their mean
# and variance. SymPy confirms it for $M = 4$ with three explicit neighbours, and checks that (2)
# is (1) with the binary labels plus the penalty.

# %%
import sympy as sp
from IPython.display import display

t, mu_t, lam = sp.symbols("t mu_t lambda", real=True)
sigma2_t = sp.Symbol("sigma_t^2", nonnegative=True)
w, b = sp.symbols("w_t b_t", real=True)
y_t, y_o = sp.symbols("y_t y_o", real=True)

# M = 4: the target and three others
x1, x2, x3 = neighbours = sp.symbols("x_1:4", real=True)
mean_3 = sum(neighbours) / 3
var_3 = sum((xi - mean_3) ** 2 for xi in neighbours) / 3

eq1_explicit = (y_t - (w * t + b)) ** 2 + sum(
    (y_o - (w * xi + b)) ** 2 for xi in neighbours
) / 3
eq2_explicit = (
    sum((-1 - (w * xi + b)) ** 2 for xi in neighbours) / 3
    + (1 - (w * t + b)) ** 2
    + lam * w**2
)

print("(2) - (1) with y_t = 1, y_o = -1:")
display(sp.expand(eq2_explicit - eq1_explicit.subs({y_t: 1, y_o: -1})))

through_moments = (y_t - (w * t + b)) ** 2 + (y_o - w * mean_3 - b) ** 2 + w**2 * var_3
print("(1) with explicit neighbours minus (1) through their mean and variance:")
display(sp.expand(eq1_explicit - through_moments))


# %% [markdown]
# The same identity for every channel size from $M = 2$ to $M = 9$ (the check is symbolic in the
# neighbours and the labels, so it covers all values they can take):


# %%
def moment_identity_holds(m):
    xs = sp.symbols(f"x_1:{m}", real=True)
    mean = sum(xs) / (m - 1)
    var = sum((xi - mean) ** 2 for xi in xs) / (m - 1)
    explicit = sum((y_o - (w * xi + b)) ** 2 for xi in xs) / (m - 1)
    return sp.expand(explicit - ((y_o - w * mean - b) ** 2 + w**2 * var)) == 0


print({m: moment_identity_holds(m) for m in range(2, 10)})

# %% [markdown]
# From here on the energy is a function of $t, \mu_t, \sigma_t^2, \lambda$ and the labels, whatever
# $M$ is (the general labels explain the sign of equation (3) in a deep dive of section 2).

# %%
energy_general = (
    (y_t - w * t - b) ** 2 + (y_o - w * mu_t - b) ** 2 + w**2 * sigma2_t + lam * w**2
)
energy_eq2 = energy_general.subs({y_t: 1, y_o: -1})
display(sp.Eq(sp.Symbol("e_t"), energy_eq2))

# %% [markdown]
# The package evaluates (2) in this form: `simam.energy.energy(x, w, b, lambda_)` plugs in every
# neuron's leave-one-out mean and variance. The cell compares it with the literal sum of (2), at a
# random $(w_t, b_t)$ for every neuron, for $\lambda = 10^{-4}$ (the paper's CIFAR value) and
# $\lambda = 0.1$.

# %%
w_random = torch.randn(x.shape, generator=generator, dtype=DTYPE)
b_random = torch.randn(x.shape, generator=generator, dtype=DTYPE)
for lambda_ in (1e-4, 0.1):
    check_close(
        f"simam.energy vs equation (2) summed literally, lambda = {lambda_:g}",
        simam.energy.energy(x, w_random, b_random, lambda_),
        energy_by_definition(x, w_random, b_random, lambda_),
    )

# %% [markdown]
# ## 2. The minimiser $(w_t, b_t)$ and the minimal energy
#
# The energy is a quadratic in $(w_t, b_t)$. Setting both partial derivatives to zero gives a linear
# system of two equations in two unknowns, which SymPy solves:

# %%
stationary = sp.solve(
    [sp.diff(energy_eq2, w), sp.diff(energy_eq2, b)], [w, b], dict=True
)
print(f"number of solutions: {len(stationary)}")
w_solved, b_solved = stationary[0][w], stationary[0][b]
display(sp.Eq(w, w_solved), sp.Eq(b, b_solved))

# %% [markdown]
# With the shorthand $D_t = (t - \mu_t)^2 + 2\sigma_t^2 + 2\lambda$ the solution takes the compact
# form of the worked example, $w_t = 2(t - \mu_t)/D_t$ and $b_t = -\tfrac12 (t + \mu_t) w_t$. The
# cell asserts that these are the solver's expressions:

# %%
D_t = (t - mu_t) ** 2 + 2 * sigma2_t + 2 * lam
w_derived = 2 * (t - mu_t) / D_t
b_derived = -sp.Rational(1, 2) * (t + mu_t) * w_derived
assert sp.simplify(w_solved - w_derived) == 0
assert sp.simplify(b_solved - b_derived) == 0
D_symbol = sp.Symbol("D_t")
display(
    sp.Eq(D_symbol, D_t),
    sp.Eq(w, 2 * (t - mu_t) / D_symbol),
    sp.Eq(b, -(t + mu_t) * w / 2),
)

# %% [markdown]
# This is the unique minimum whenever $D_t > 0$: the Hessian of (2) has determinant $4 D_t$ and is
# then positive definite (the deep dive below). Every term of $D_t$ is non-negative, and $D_t$
# vanishes only when $\lambda = 0$ and all $M$ neurons of the channel are equal, the one case in
# which the problem is singular: every neuron then maps to $w_t t + b_t$, the energy is
# $2 + 2(w_t t + b_t)^2$, and a whole line of pairs reaches the minimum 2. The package returns the
# minimum-norm pair $w_t = b_t = 0$.

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: the minimiser is unique
#
# The Hessian of a quadratic is a constant matrix. A symmetric $2 \times 2$ matrix is positive
# definite when its determinant and one of its diagonal entries are positive (by Sylvester's
# criterion; with a positive determinant the two diagonal entries share their sign).

# %%
hessian = sp.hessian(energy_eq2, (w, b))
display(hessian)
print("determinant:")
display(sp.factor(hessian.det()))
assert sp.simplify(hessian.det() - 4 * D_t) == 0

# %% [markdown]
# The determinant is $4 D_t$, and the entry $\partial^2 e_t / \partial b_t^2$ is $4 > 0$. The
# Hessian is therefore positive definite exactly when $D_t > 0$. In that case (2) is strictly convex
# and the stationary point is its unique global minimum. When $D_t = 0$ the Hessian is singular and
# the energy is constant along a line of the $(w_t, b_t)$ plane, the line of minimisers above.

# %% [markdown]
# ### The minimal energy
#
# Substituting the minimiser back into (2) gives the minimum:

# %%
e_star_derived = sp.factor(sp.simplify(energy_eq2.subs(stationary[0])))
display(sp.Eq(sp.Symbol("e_t^*"), e_star_derived))
assert sp.simplify(e_star_derived - 4 * (sigma2_t + lam) / D_t) == 0
display(sp.Eq(sp.Symbol("e_t^*"), 4 * (sigma2_t + lam) / D_symbol))

# %% [markdown]
# That is $e_t^* = 4(\sigma_t^2 + \lambda) / D_t$. When the other $M - 1$ neurons all have one value,
# $\sigma_t^2 = 0$ and the minimum is $4\lambda / D_t$: without the penalty it is 0 for a target
# that differs from them, which a line then maps to $+1$ and all of them to $-1$ exactly.
#
# ### Beside the printed equations (3), (4) and (5)
#
# The paper prints, with the same leave-one-out $\mu_t$ and $\sigma_t^2$,
#
# $$w_t = -\frac{2(t - \mu_t)}{(t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda}, \tag{3}$$
# $$b_t = -\frac{1}{2}(t + \mu_t) w_t, \tag{4}$$
# $$e_t^* = \frac{4(\hat\sigma^2 + \lambda)}{(t - \hat\mu)^2 + 2\hat\sigma^2 + 2\lambda}, \tag{5}$$
#
# where (5) uses the statistics $\hat\mu$ and $\hat\sigma^2$ of the whole channel (section 3). Here
# we compare the *form* of (5), with leave-one-out statistics. The cell prints derived minus
# printed, simplified: a zero means the printed equation holds.

# %%
w_printed = -2 * (t - mu_t) / ((t - mu_t) ** 2 + 2 * sigma2_t + 2 * lam)
b_printed = -sp.Rational(1, 2) * (t + mu_t) * w  # (4) as a relation between b_t and w_t
e_star_printed_form = 4 * (sigma2_t + lam) / ((t - mu_t) ** 2 + 2 * sigma2_t + 2 * lam)

print("(3): derived w_t - printed w_t =")
display(sp.factor(sp.simplify(w_derived - w_printed)))
print("(3): derived w_t + printed w_t =")
display(sp.simplify(w_derived + w_printed))
print("(4): derived b_t - printed b_t, the printed one taken at the derived w_t =")
display(sp.simplify(b_derived - b_printed.subs(w, w_derived)))
print("(4) as a condition: d e_t / d b_t at b_t = -(t + mu_t) w_t / 2, for every w_t =")
display(sp.simplify(sp.diff(energy_eq2, b).subs(b, b_printed)))
print("(5) in leave-one-out statistics: derived e_t* - printed form =")
display(sp.simplify(e_star_derived - e_star_printed_form))

# %% [markdown]
# **Verdicts:**
#
# * **(4) holds**, for *any* slope: $\partial e_t / \partial b_t = 0$ gives
#   $b_t = -\tfrac12 (t + \mu_t) w_t$ whatever $w_t$ is, a threshold halfway between $t$ and
#   $\mu_t$, as on the number line of the opening section.
# * **(3) does not hold: its sign is wrong.** The derived slope is exactly the negative of the
#   printed one; the correct form is $w_t = +2(t - \mu_t)/D_t$. No algebra is needed to see it: the
#   labels ask for $\hat t \approx +1$ and $\hat x_i \approx -1$, so if $t$ lies above its
#   neighbours ($t > \mu_t$) the line must increase, $w_t > 0$, where the printed (3) gives
#   $w_t < 0$. The authors have confirmed the slip (authors' repository, issue 11).
# * **(5) holds in form, with leave-one-out statistics**: $e_t^* = 4(\sigma_t^2+\lambda)/D_t$.
#   Whether (5) also holds with the *channel* statistics it prints is the subject of section 3.
#
# The slip does not reach (5): the printed pair is the exact minimiser for the *swapped* labels
# $y_t = -1$, $y_o = +1$, which leave $e_t^*$ unchanged (the deep dive below). So it is harmless for
# SimAM, which uses only $e_t^*$, but not for anyone who evaluates (2) at the printed
# $(w_t, b_t)$. On the worked example:

# %%
w_printed_hand, b_printed_hand = -w_hand, -b_hand  # (3) as printed, with (4)
e_printed_hand = energy_by_hand(w_printed_hand, b_printed_hand)
e_printed_package = simam.energy.energy(channel_2x2, -w_example, -b_example, 0.0)
print(
    f"printed pair: w_t = {w_printed_hand}, b_t = {b_printed_hand}, maps the target to "
    f"{w_printed_hand * example_target + b_printed_hand}; energy by hand "
    f"{e_printed_hand}, by the package {e_printed_package[0, 0, 0, 0].item():.6f}"
)
print(
    f"{e_printed_hand / e_hand} times the minimum {e_hand}; "
    f"the trivial pair w_t = b_t = 0 has energy {energy_by_hand(0, 0)}"
)
assert abs(e_printed_package[0, 0, 0, 0].item() - float(e_printed_hand)) < 1e-12

# %% [markdown]
# The printed pair maps the target to $-16/17$, the wrong side; its energy $130/17 \approx 7.65$ is
# 65 times the minimum, and worse than doing nothing, as it is for every neuron (the deep dive).

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: where the printed sign comes from
#
# Solve (1) with a ridge penalty for general labels $y_t, y_o$:

# %%
stationary_general = sp.solve(
    [sp.diff(energy_general, w), sp.diff(energy_general, b)], [w, b], dict=True
)[0]
w_general = sp.factor(stationary_general[w])
e_star_general = sp.factor(sp.simplify(energy_general.subs(stationary_general)))
display(sp.Eq(w, w_general), sp.Eq(sp.Symbol("e_t^*"), e_star_general))

swapped = {y_t: -1, y_o: 1}
print("w_t with the labels swapped (y_t = -1, y_o = +1) minus printed (3):")
display(sp.simplify(w_general.subs(swapped) - w_printed))
print("e_t* with the labels swapped minus e_t* with the paper's labels:")
display(
    sp.simplify(e_star_general.subs(swapped) - e_star_general.subs({y_t: 1, y_o: -1}))
)

# %% [markdown]
# The printed (3) is the exact minimiser for the *swapped* labels $y_t = -1$, $y_o = +1$.
# The slope scales with $y_t - y_o$. The minimal energy depends on the labels only through
# $(y_t - y_o)^2$:
#
# $$e_t^* = \frac{(y_t - y_o)^2 (\sigma_t^2 + \lambda)}{(t - \mu_t)^2 + 2\sigma_t^2 + 2\lambda},$$
#
# which also shows where the 4 in (5) comes from: $(1 - (-1))^2 = 4$. Swapping the labels
# flips $(w_t, b_t)$ to $(-w_t, -b_t)$ and leaves $e_t^*$ unchanged. The energy of (2) at the
# printed pair is another matter:

# %%
e_at_printed = energy_eq2.subs(
    {w: w_printed, b: -sp.Rational(1, 2) * (t + mu_t) * w_printed}
)
excess = sp.factor(sp.simplify(e_at_printed - e_star_derived))
print("e_t at the printed (w_t, b_t) minus e_t* =")
display(excess)
assert sp.simplify(excess - 8 * (t - mu_t) ** 2 / D_t) == 0
print("e_t at w_t = b_t = 0:")
display(energy_eq2.subs({w: 0, b: 0}))
u = (t - mu_t) ** 2 / D_t
above_two = [4 * u, 2 * u**2, 4 * (t - mu_t) ** 2 * (sigma2_t + lam) / D_t**2]
assert sp.simplify(e_at_printed - 2 - sum(above_two)) == 0
print("e_t at the printed pair minus 2 =")
display(sp.Add(*above_two))
positive_lambda = {lam: sp.Symbol("lambda", positive=True)}
signs = [term.subs(positive_lambda).is_nonnegative for term in above_two]
print(
    f"SymPy finds each of the {len(above_two)} terms non-negative for lambda > 0: "
    f"{all(signs)}"
)
assert all(signs)

# %% [markdown]
# The excess is $8(t - \mu_t)^2 / D_t$. It is positive for every neuron that differs from the
# mean of its neighbours. Even the trivial map $w_t = b_t = 0$ has energy 2, and the printed pair
# never does better than that. With $\chi_t = (t - \mu_t)^2/D_t$ its energy is
# $$e_t = 2 + 4\chi_t + 2\chi_t^2 + \frac{4(t-\mu_t)^2(\sigma_t^2+\lambda)}{D_t^2} \ \ge\ 2 .$$
# The last cell asserts the identity and lets SymPy decide the sign of each term from the
# assumptions alone ($t, \mu_t$ real, $\sigma_t^2 \ge 0$, $\lambda > 0$; at $\lambda = 0$ the bound
# follows by continuity).

# %% [markdown]
# ### The sign error at a glance
#
# Equation (2) for one target neuron is a bowl over the $(w_t, b_t)$ plane, drawn below for the
# most distinctive neuron of a channel of $M = 5$ random values, with $\lambda = 10^{-4}$. The
# package's minimiser sits at the bottom. The printed pair, its mirror image $(-w_t, -b_t)$, lies
# high on the far side, outside the white line where the energy is 2, that of $w_t = b_t = 0$. The
# cell asserts that no point of the grid lies below the minimiser, and that the two pairs differ in
# energy by $8(t - \mu_t)^2/D_t$, the excess the deep dive above derives.

# %%
lambda_ = 1e-4
channel_5 = torch.randn(
    1, 1, 5, generator=torch.Generator().manual_seed(5), dtype=DTYPE
)
target = (channel_5 - channel_5.mean()).abs().argmax().item()
w_star, b_star = (
    v[0, 0, target].item() for v in simam.closed_form_minimiser(channel_5, lambda_)
)
pairs = {"corrected (3)": (w_star, b_star), "printed (3)": (-w_star, -b_star)}


def energy_of_target(w, b):
    """Equation (2) for the target neuron of `channel_5`, at every (w, b) of
    broadcastable w and b."""
    w, b = (torch.as_tensor(v, dtype=DTYPE)[..., None, None, None] for v in (w, b))
    return simam.energy.energy(channel_5, w, b, lambda_)[..., 0, 0, target]


w_axis = torch.linspace(-1.6 * abs(w_star), 1.6 * abs(w_star), 301, dtype=DTYPE)
b_half_width = max(1.6 * abs(b_star), 1.0)
b_axis = torch.linspace(-b_half_width, b_half_width, 301, dtype=DTYPE)
landscape = energy_of_target(w_axis[None, :], b_axis[:, None])
at = {name: energy_of_target(*pair).item() for name, pair in pairs.items()}

loo_mean_5, loo_var_5 = (
    v[0, 0, target].item() for v in leave_one_out_statistics(channel_5)
)
D_5 = (channel_5[0, 0, target].item() - loo_mean_5) ** 2 + 2 * loo_var_5 + 2 * lambda_
excess_5 = 8 * (channel_5[0, 0, target].item() - loo_mean_5) ** 2 / D_5
assert at["corrected (3)"] <= landscape.min().item() + 1e-12  # no grid point is lower
assert abs(at["printed (3)"] - at["corrected (3)"] - excess_5) < 1e-12
print(
    "channel:",
    [round(v, 3) for v in channel_5.flatten().tolist()],
    f"target: neuron {target}",
)
print(f"lowest energy on the 301 x 301 grid: {landscape.min().item():.4f}")
for name, energy_value in at.items():
    print(f"energy at the {name} pair: {energy_value:.4f}")
print(
    f"difference {at['printed (3)'] - at['corrected (3)']:.4f} = "
    f"8 (t - mu_t)^2 / D_t = {excess_5:.4f}"
)

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.5))
levels = [2.0**k for k in range(-4, 7)]
filled = ax.contourf(
    w_axis, b_axis, landscape, levels=levels, norm=LogNorm(), extend="both"
)
fig.colorbar(filled, ticks=levels, format="%g", label="energy $e_t$ (log scale)")
ax.contour(w_axis, b_axis, landscape, levels=[2.0], colors="white", linewidths=1.5)
ax.plot(
    *pairs["corrected (3)"],
    "r*",
    ms=14,
    label=f"corrected (3): $e_t$ = {at['corrected (3)']:.3f}",
)
ax.plot(
    *pairs["printed (3)"],
    "wX",
    ms=10,
    mec="k",
    label=f"printed (3): $e_t$ = {at['printed (3)']:.3f}",
)
ax.plot(0, 0, "ko", ms=5, label="$w_t = b_t = 0$: $e_t$ = 2 (white line)")
ax.set_xlabel("$w_t$")
ax.set_ylabel("$b_t$")
ax.set_title("Equation (2) for the most distinctive of M = 5 neurons")
ax.legend(fontsize=8, loc="lower left")
plt.show()

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: the package against the derivation, on a random feature map
#
# We turn the SymPy results into functions (`sp.lambdify`) and evaluate them with leave-one-out
# statistics that `others_of` computes by brute force. Then we compare with the package:
#
# * `closed_form_minimiser` against the derived $(w_t, b_t)$,
# * `minimal_energy(..., statistics="exact")` against the derived $e_t^*$, and against `energy`
#   evaluated at the package's minimiser,
# * and the minimum property itself. Because (2) is quadratic,
#   $e_t\bigl((w_t, b_t) + \boldsymbol\zeta\bigr) - e_t^* = \tfrac12 \boldsymbol\zeta^\top Q_t\, \boldsymbol\zeta$
#   exactly, for any change $\boldsymbol\zeta$ of the minimiser $(w_t, b_t)$, with $Q_t$ the
#   Hessian of the first deep dive of this section. So random perturbations must raise the energy
#   by exactly that amount, and never lower it.

# %%
to_torch = {
    name: sp.lambdify((t, mu_t, sigma2_t, lam), expression, modules="math")
    for name, expression in {
        "w": w_derived,
        "b": b_derived,
        "e*": e_star_derived,
    }.items()
}
others = others_of(x)
loo_mean_brute = others.mean(dim=-1).reshape(x.shape)
loo_var_brute = others.var(dim=-1, correction=0).reshape(x.shape)

for lambda_ in (1e-4, 0.1):
    w_pkg, b_pkg = simam.closed_form_minimiser(x, lambda_)
    e_pkg = simam.minimal_energy(x, lambda_, statistics="exact")
    args = (x, loo_mean_brute, loo_var_brute, lambda_)
    check_close(
        f"closed_form_minimiser w vs derived, lambda = {lambda_:g}",
        w_pkg,
        to_torch["w"](*args),
    )
    check_close(
        f"closed_form_minimiser b vs derived, lambda = {lambda_:g}",
        b_pkg,
        to_torch["b"](*args),
    )
    check_close(
        f"minimal_energy exact vs derived e*, lambda = {lambda_:g}",
        e_pkg,
        to_torch["e*"](*args),
    )
    check_close(
        f"minimal_energy exact vs energy at minimiser, lambda = {lambda_:g}",
        e_pkg,
        simam.energy.energy(x, w_pkg, b_pkg, lambda_),
    )

# %%
for lambda_ in (1e-4, 0.1):
    w_pkg, b_pkg = simam.closed_form_minimiser(x, lambda_)
    e_pkg = simam.minimal_energy(x, lambda_, statistics="exact")
    args = (x, loo_mean_brute, loo_var_brute, lambda_)
    h_ww, h_wb, h_bb = (
        sp.lambdify((t, mu_t, sigma2_t, lam), hessian[i, j], modules="math")(*args)
        for i, j in ((0, 0), (0, 1), (1, 1))
    )
    worst_mismatch, smallest_rise = 0.0, math.inf
    for _ in range(20):
        dw = 0.5 * torch.randn(x.shape, generator=generator, dtype=DTYPE)
        db = 0.5 * torch.randn(x.shape, generator=generator, dtype=DTYPE)
        rise = simam.energy.energy(x, w_pkg + dw, b_pkg + db, lambda_) - e_pkg
        quadratic_form = 0.5 * (h_ww * dw * dw + 2 * h_wb * dw * db + h_bb * db * db)
        worst_mismatch = max(worst_mismatch, (rise - quadratic_form).abs().max().item())
        smallest_rise = min(smallest_rise, rise.min().item())
    check_close(
        f"20 random perturbations: rise = quadratic form, lambda = {lambda_:g}",
        torch.tensor(worst_mismatch),
        torch.tensor(0.0),
        1e-10,
    )
    print(
        f"lambda = {lambda_:g}: no perturbation lowered the energy: {smallest_rise > 0}"
    )
    assert smallest_rise > 0

# %% [markdown]
# ## 3. From leave-one-out statistics to channel statistics
#
# Everything so far uses the statistics of the $M - 1$ *other* neurons, which differ from neuron
# to neuron. The paper prints (5) with the mean and variance of the whole channel instead, target
# included:
#
# $$\hat\mu = \frac1M \sum_{i=1}^{M} x_i, \qquad \hat\sigma^2 = \frac1M \sum_{i=1}^{M} (x_i - \hat\mu)^2 = \frac{S}{M},$$
#
# with $x_1, \dots, x_M$ from here on all $M$ neurons of the channel, the target among them, and
# $S$ the channel's sum of squared deviations. The authors' reference code uses the same mean,
# but divides $S$ by $M - 1$ ($H W - 1$), not by $M$. Asked why, the authors answered that
# $H W - 1$ gives the unbiased estimate of the variance, $H W$ the biased one (authors' repository,
# issue 4). We write that variance $s^2 = S/(M-1)$. The package offers all three:
# `statistics="exact"` (leave one out), `"paper"` ($\hat\sigma^2$) and `"reference"` ($s^2$, its
# default, since the paper's published numbers come from it).
#
# ### The down-date identities
#
# Removing $t$ from the channel's sums gives the statistics of the others exactly (the deep dive
# below derives the identities):
#
# $$\mu_t = \frac{M\hat\mu - t}{M - 1}, \qquad t - \mu_t = \frac{M}{M-1}(t - \hat\mu), \qquad
# (M-1)\,\sigma_t^2 = M\hat\sigma^2 - \frac{M}{M-1}(t - \hat\mu)^2 .$$
#
# They make the exact statistics as cheap as the shared ones: one mean and one sum of squares per
# channel, then a constant amount of work per neuron, which is how `leave_one_out_statistics`
# computes them. Speed is no reason for the approximation. In SymPy, for the derivations below, and
# then the package against brute force, on the random feature map:

# %%
M = sp.Symbol("M", integer=True, positive=True)
mu_hat, S = sp.symbols("muhat S", real=True)  # SymPy typesets "muhat" as a hatted mu
sigma2_hat = sp.Symbol("sigmahat^2", nonnegative=True)
# the down-dates: mu_t, and (M - 1) sigma_t^2, the others' sum of squares about mu_t
loo_mean = (M * mu_hat - t) / (M - 1)
loo_sum_squares = S - M * (t - mu_hat) ** 2 / (M - 1)
print("t - mu_t =")
display(sp.factor(t - loo_mean))

# %%
loo_mean_pkg, loo_var_pkg = leave_one_out_statistics(x)
check_close(
    "leave_one_out_statistics mean vs brute force", loo_mean_pkg, loo_mean_brute
)
check_close(
    "leave_one_out_statistics variance vs brute force", loo_var_pkg, loo_var_brute
)
flat = x.reshape(*x.shape[:2], -1)
for correction in (0, 1):
    channel_mean, channel_var = channel_statistics(x, correction=correction)
    check_close(
        f"channel_statistics mean, correction = {correction}",
        channel_mean.flatten(),
        flat.mean(-1).flatten(),
    )
    check_close(
        f"channel_statistics variance, correction = {correction}",
        channel_var.flatten(),
        flat.var(-1, correction=correction).flatten(),
    )

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: the down-date identities, derived
#
# Removing $t$ from the sum $M\hat\mu$ gives the mean of the others, $\mu_t = (M\hat\mu - t)/(M - 1)$.
# For their sum of squares about $\mu_t$, shift the centre from $\hat\mu$ to $\mu_t$. By the
# parallel-axis rule (the same cross-term argument as in section 1),
# $\sum_{i \ne t}(x_i - \mu_t)^2 = \sum_{i \ne t}(x_i - \hat\mu)^2 - (M-1)(\mu_t - \hat\mu)^2$.
# The first sum is $S - (t - \hat\mu)^2$. SymPy does the rest with $M$ symbolic:

# %%
parallel_axis = (S - (t - mu_hat) ** 2) - (M - 1) * (loo_mean - mu_hat) ** 2
print("mu_t - mu_hat =")
display(sp.factor(loo_mean - mu_hat))
print("(M - 1) sigma_t^2 by the parallel-axis rule, minus the down-date:")
display(sp.simplify(parallel_axis - loo_sum_squares))
assert sp.simplify(parallel_axis - loo_sum_squares) == 0

# %% [markdown]
# With $S = M\hat\sigma^2$ these are the identities above. The check with five explicit neurons,
# the target being the fifth:

# %%
five = sp.symbols("x_1:6", real=True)
target_5, others_5 = five[4], five[:4]
mean_5 = sum(five) / 5
sum_squares_5 = sum((xi - mean_5) ** 2 for xi in five)
mean_others_5 = sum(others_5) / 4
sum_squares_others_5 = sum((xi - mean_others_5) ** 2 for xi in others_5)
print(
    "mean identity, explicit minus down-dated:",
    sp.simplify(mean_others_5 - loo_mean.subs({M: 5, mu_hat: mean_5, t: target_5})),
)
print(
    "sum-of-squares identity, explicit minus down-dated:",
    sp.expand(
        sum_squares_others_5
        - loo_sum_squares.subs({M: 5, mu_hat: mean_5, t: target_5, S: sum_squares_5})
    ),
)

# %% [markdown]
# ### A bound that falls out: how far a neuron can be from its channel's mean
#
# Since $\sigma_t^2 \ge 0$, the last identity gives
# $(t - \hat\mu)^2 \le (M - 1)\hat\sigma^2$. In terms of the standardised deviation
# $z = (t - \hat\mu)/\hat\sigma$,
#
# $$z^2 \le M - 1,$$
#
# with equality exactly when the other $M - 1$ neurons are all equal. This is Samuelson's
# inequality. It limits the values of $z$ a small map can have, and section 4 shows that it caps
# the attention weight.
#
# ### What equation (5) approximates
#
# Substituting the down-dates into the exact $e_t^* = 4(\sigma_t^2 + \lambda)/D_t$ expresses the
# exact minimal energy in terms of the channel's statistics. It reads best with the shorthand
# $d = t - \hat\mu$ for the target's distance from the channel mean:

# %%
channel_substitution = {
    mu_t: loo_mean,
    sigma2_t: loo_sum_squares.subs(S, M * sigma2_hat) / (M - 1),
}
e_star_exact_channel = sp.factor(sp.cancel(e_star_derived.subs(channel_substitution)))

d = sp.Symbol("d", real=True)  # t - muhat
z = sp.Symbol("z", real=True)  # d / sigmahat, the standardised deviation
exact_numerator = M * ((M - 1) * sigma2_hat - d**2) + (M - 1) ** 2 * lam
exact_denominator = (
    M * (M - 2) * d**2 + 2 * M * (M - 1) * sigma2_hat + 2 * (M - 1) ** 2 * lam
)
assert (
    sp.cancel(
        e_star_exact_channel.subs(t, mu_hat + d)
        - 4 * exact_numerator / exact_denominator
    )
    == 0
)
display(sp.Eq(sp.Symbol("e_t^*"), exact_numerator / exact_denominator * 4))


def e_star_shared(variance):
    """The form of (5) evaluated with the channel mean and a given channel variance."""
    return 4 * (variance + lam) / ((t - mu_hat) ** 2 + 2 * variance + 2 * lam)


e_star_by_name = {
    "exact": e_star_exact_channel,
    "paper": e_star_shared(sigma2_hat),  # denominator M, as (5) prints
    "reference": e_star_shared(M * sigma2_hat / (M - 1)),  # M - 1, as the code
}
# Numerator and denominator are both of degree 2 in M, so the limit M -> infinity is the
# ratio of their M^2 coefficients.
assert sp.degree(exact_numerator, M) == sp.degree(exact_denominator, M) == 2
large_m_limit = (
    4 * sp.Poly(exact_numerator, M).LC() / sp.Poly(exact_denominator, M).LC()
)
print("e_t* for M -> infinity =")
display(large_m_limit)
print(
    "minus the printed (5):",
    sp.simplify(large_m_limit - e_star_by_name["paper"].subs(t, mu_hat + d)),
)

# %% [markdown]
# $$e_t^* = \frac{4\,[M((M-1)\hat\sigma^2 - d^2) + (M-1)^2\lambda]}{M(M-2)\,d^2 + 2M(M-1)\,\hat\sigma^2 + 2(M-1)^2\lambda}.$$
#
# Letting $M \to \infty$ gives $4(\hat\sigma^2 + \lambda)/(d^2 + 2\hat\sigma^2 + 2\lambda)$, the printed
# (5), as the last lines confirm. So (5) with channel statistics is **not** the minimum of (2) but
# its large-$M$ limit. The target's distance from the mean is under-estimated by the factor
# $(M-1)/M$, because $\hat\mu$ includes $t$ itself, and the variance of the others is replaced by
# the channel's, which contains $t$'s own contribution. Both effects shrink as $1/M$; the deep dive
# measures them, for $\hat\sigma^2$ and for $s^2$.

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: leave-one-out against channel statistics
#
# This is the course's one analysis of what the shortcut costs SimAM. With the channel's statistics
# the energy takes the form of (5),
#
# $$e_t^{\text{shared}} = \frac{4(v + \lambda)}{(t - \hat\mu)^2 + 2v + 2\lambda},$$
#
# with $v$ the paper's $\hat\sigma^2 = S/M$ or the reference code's $s^2 = S/(M-1)$. How far does
# the importance $1/e_t^{\text{shared}}$ lie from the exact one, in the order it gives the neurons
# and in value? The answers, derived below and then measured on the feature maps of the opening
# section:
#
# 1. **Order.** Within a channel all three importances rank the neurons identically. Across the
#    channels of a layer the reference code's importance is one and the same increasing function of
#    the exact importance in every channel, for any $\lambda$; the paper's is so only for
#    $\lambda = 0$.
# 2. **Value.** Both shared versions under-estimate the exact importance of every neuron, and the
#    reference code's $1/(M-1)$ under-estimates it more than the paper's $1/M$. Both errors shrink
#    like $1/M$: a neuron one standard deviation from its channel's mean is 33% more important
#    than the paper's formula says and 45% more important than the reference code says on a
#    $2\times2$ map, and 0.07% and 0.10% more important on a $32\times32$ map.
#
# So the reference code's denominator is farther from the exact value, though an exact monotone
# transform of it across a layer. The authors' unbiasedness argument does not make it the better
# one: unbiasedness concerns estimating a population's variance from a sample, while (2) asks for
# the variance of the other $M - 1$ neurons themselves, which the down-date gives exactly.
#
# #### Within a channel: one order
#
# With $d^2$ as the variable and the channel's $M$, $\hat\sigma^2$, $\lambda$ fixed, the slopes of
# the three importances are:

# %%
d2 = sp.Symbol("d^2", nonnegative=True)  # the squared deviation (t - muhat)^2
importance_of_d2 = {
    name: sp.simplify((1 / e).subs(t, mu_hat + sp.sqrt(d2)))
    for name, e in e_star_by_name.items()
}
spread_sum = M * (M - 1) * sigma2_hat + (M - 1) ** 2 * lam  # the bracket Gamma below
neat_slope = {
    "exact": M**2 * spread_sum / (4 * (spread_sum - M * d2) ** 2),
    "paper": 1 / (4 * (sigma2_hat + lam)),
    "reference": (M - 1) / (4 * (M * sigma2_hat + (M - 1) * lam)),
}
for name, expression in importance_of_d2.items():
    assert sp.simplify(sp.diff(expression, d2) - neat_slope[name]) == 0
    print(f"d(1/e*) / d(d^2) with {name} statistics =")
    display(neat_slope[name])

# %% [markdown]
# The paper's and the reference code's slopes are positive constants. The exact slope is
# $M^2 \Gamma / (4 (\Gamma - M d^2)^2)$ with $\Gamma = M(M-1)\hat\sigma^2 + (M-1)^2\lambda > 0$,
# positive too; its denominator never vanishes, because by the down-date identity
# $\Gamma - M d^2 = (M-1)^2(\sigma_t^2 + \lambda)$. So all three importances increase with $d^2$, and
# sorting a channel's neurons by any of them sorts them by $d^2$. On random channels of three sizes,
# for two values of $\lambda$:

# %%
for side in (2, 4, 8):
    channels = torch.randn(
        4,
        64,
        side,
        side,
        generator=torch.Generator().manual_seed(side),
        dtype=DTYPE,
    )
    order_by_d2 = (
        (channels - channels.mean(dim=(2, 3), keepdim=True))
        .square()
        .flatten(2)
        .argsort(dim=-1)
    )
    agree = torch.ones(channels.shape[:2], dtype=torch.bool)
    for lambda_ in (1e-4, 0.1):
        for name in ("exact", "paper", "reference"):
            order = (
                simam.importance(channels, lambda_, statistics=name)
                .flatten(2)
                .argsort(dim=-1)
            )
            agree &= (order == order_by_d2).all(dim=-1)
    print(
        f"{side}x{side}: channels whose neurons all six importances order exactly "
        f"as d^2: {int(agree.sum())} of {agree.numel()}"
    )
    assert agree.all()

# %% [markdown]
# #### In value: the paper's $1/M$ is the closer
#
# With $\lambda = 0$ and $t = \hat\mu + z\hat\sigma$, all three versions depend only on $M$ and $z$:

# %%
sigma_hat = sp.Symbol("sigmahat", positive=True)
standardise = {t: mu_hat + z * sigma_hat, sigma2_hat: sigma_hat**2, lam: 0}
inverse = {
    name: sp.simplify(1 / e.subs(standardise)) for name, e in e_star_by_name.items()
}
neat = {
    "exact": M * z**2 / (M - 1 - z**2) / 4 + sp.Rational(1, 2),
    "paper": z**2 / 4 + sp.Rational(1, 2),
    "reference": (M - 1) * z**2 / M / 4 + sp.Rational(1, 2),
}
for name in inverse:
    assert sp.simplify(inverse[name] - neat[name]) == 0
    print(f"1/e* with {name} statistics =")
    display(neat[name])

# %% [markdown]
# $$\frac{1}{e^*_\text{exact}} = \frac{M}{M - 1 - z^2}\cdot\frac{z^2}{4} + \frac12, \qquad
# \frac{1}{e^*_\text{paper}} = \frac{z^2}{4} + \frac12, \qquad
# \frac{1}{e^*_\text{reference}} = \frac{M-1}{M}\cdot\frac{z^2}{4} + \frac12 .$$
#
# The three differ only in the coefficient of $z^2/4$. Because $z^2 \le M - 1$, these coefficients
# are ordered: $\frac{M}{M-1-z^2} > 1 > \frac{M-1}{M}$ (for $z \ne 0$). Both shared versions
# *under-estimate* the importance, and the reference code's $1/(M-1)$ under-estimates it more.
# This is not a property of $\lambda = 0$ alone. For any $\lambda \ge 0$ the differences, exact
# minus paper and paper minus reference, factor into non-negative pieces:

# %%
quadratic_part = {
    name: sp.together(1 / e - sp.Rational(1, 2)) for name, e in e_star_by_name.items()
}
exact_minus_paper = (
    d**2
    * (M * sigma2_hat + M * d**2 + (2 * M - 1) * lam)
    / (
        4
        * (sigma2_hat + lam)
        * (M * ((M - 1) * sigma2_hat - d**2) + (M - 1) ** 2 * lam)
    )
)
paper_minus_reference = (
    sigma2_hat * d**2 / (4 * (sigma2_hat + lam) * (M * sigma2_hat + (M - 1) * lam))
)
for_d = {t: mu_hat + d}
assert (
    sp.simplify(
        (quadratic_part["exact"] - quadratic_part["paper"]).subs(for_d)
        - exact_minus_paper
    )
    == 0
)
assert (
    sp.simplify(
        (quadratic_part["paper"] - quadratic_part["reference"]).subs(for_d)
        - paper_minus_reference
    )
    == 0
)
print("1/e*_exact - 1/e*_paper =")
display(exact_minus_paper)
print("1/e*_paper - 1/e*_reference =")
display(paper_minus_reference)

# %% [markdown]
# In the first difference the numerator $d^2\,[M\hat\sigma^2 + M d^2 + (2M-1)\lambda]$ is
# non-negative, and the bracket in the denominator is, by the down-date identity,
# $M((M-1)\hat\sigma^2 - d^2) + (M-1)^2\lambda = (M-1)^2(\sigma_t^2 + \lambda)$, which is positive.
# The second difference is non-negative term by term. So
# $1/e^*_\text{exact} \ge 1/e^*_\text{paper} \ge 1/e^*_\text{reference}$ for every neuron.
#
# How large is the gap? The ratios of the exact importance to the shared ones, minus one, are
# exact functions of $M$ and $z$:

# %%
excess_ratio = {
    name: sp.factor(sp.simplify(inverse["exact"] / inverse[name] - 1))
    for name in ("paper", "reference")
}
neat_excess = {
    "paper": z**2 * (1 + z**2) / ((M - 1 - z**2) * (2 + z**2)),
    "reference": z**2
    * ((M - 1) * z**2 + 2 * M - 1)
    / ((M - 1 - z**2) * ((M - 1) * z**2 + 2 * M)),
}
for name, expression in excess_ratio.items():
    assert sp.simplify(expression - neat_excess[name]) == 0
    print(f"(exact 1/e*) / ({name} 1/e*) - 1 =")
    display(neat_excess[name])
    print("   to leading order in 1/M:")
    display(sp.factor(sp.limit(M * expression, M, sp.oo)) / M)

# %% [markdown]
# For large $M$ the relative error is about $z^2(1+z^2)/((2+z^2)M)$ for the paper's
# statistics and $z^2/M$ for the reference code's. The paper's error is the reference code's
# times $(1+z^2)/(2+z^2)$: half of it for neurons near the mean, two thirds at $z = 1$, and 0.91
# of it at $z = 3$, where the two are nearly equally wrong. The table evaluates the exact ratios
# for typical deviations $z = 0.5, 1, 2, 3$ on square maps from $2\times2$ to $32\times32$. Entries
# with $z^2 > M - 1$ cannot occur (Samuelson) and are left out. The last column, $\Delta\omega$, is
# what the network actually sees: the largest difference, over the listed $z$, between the
# attention weights $\operatorname{sigmoid}(1/e^*)$ with exact and with reference statistics.

# %%
ratio_functions = {
    name: sp.lambdify((M, z), inverse["exact"] / inverse[name], "math")
    for name in ("paper", "reference")
}
inverse_functions = {
    name: sp.lambdify((M, z), inverse[name], "math") for name in inverse
}


z_values = (0.5, 1.0, 2.0, 3.0)
map_sizes = (4, 9, 16, 64, 256, 1024)
print("ratio of exact to shared 1/e* (lambda = 0), as paper / reference")
print(
    f"{'M':>5} {'map':>6} | "
    + " | ".join(f"{f'z = {zv:g}':^15}" for zv in z_values)
    + " | max Delta omega"
)
for m in map_sizes:
    side = math.isqrt(m)
    cells, weight_gap = [], 0.0
    for zv in z_values:
        if zv**2 >= m - 1:
            cells.append(f"{'-':^15}")
            continue
        cells.append(
            f"{ratio_functions['paper'](m, zv):6.4f} / "
            f"{ratio_functions['reference'](m, zv):6.4f}"
        )
        gap = sigmoid(inverse_functions["exact"](m, zv)) - sigmoid(
            inverse_functions["reference"](m, zv)
        )
        weight_gap = max(weight_gap, gap)
    print(
        f"{m:>5} {f'{side}x{side}':>6} | " + " | ".join(cells) + f" | {weight_gap:.4f}"
    )

# %% [markdown]
# On a $2\times2$ map a neuron one standard deviation from the mean is 33% more important than the
# paper's formula says, and 45% more important than the reference code says. The attention
# weights then differ by 0.066. On $8\times8$ maps the gap is 0.2% to 0.4% at $|z| = 0.5$, 1% to 7%
# for $1 \le |z| \le 2$ and 15% to 17% at $|z| = 3$. On $32\times32$ maps it is below 1% for
# $|z| \le 3$. The same ratios as curves:

# %%
fig, ax = plt.subplots(figsize=(7, 4))
m_grid = [2**k for k in range(2, 13)]
for zv, colour in zip((1.0, 2.0, 3.0), ("tab:blue", "tab:orange", "tab:green")):
    valid = [m for m in m_grid if zv**2 < m - 1]
    for name, style in (("paper", "-"), ("reference", "--")):
        ax.loglog(
            valid,
            [ratio_functions[name](m, zv) - 1 for m in valid],
            style,
            color=colour,
            label=f"z = {zv:g}, {name}",
        )
ax.set_xlabel("M, neurons per channel")
ax.set_ylabel("exact 1/e* / shared 1/e*  - 1")
ax.set_title(
    "Relative under-estimate of the importance by shared statistics (lambda = 0)"
)
ax.legend(fontsize=8, ncol=2)
ax.grid(True, which="both", alpha=0.3)
plt.show()

# %% [markdown]
# #### Across the channels of a layer
#
# The reference code's importance is $r_t/4 + 1/2$ with
#
# $$r_t = \frac{(t - \hat\mu)^2}{s^2 + \lambda},$$
#
# the neuron's squared distance from its channel's mean in units of the regularised spread. By the
# down-dates, with $t - \mu_t = \frac{M}{M-1}(t - \hat\mu)$ and
# $\sigma_t^2 + \lambda = s^2 + \lambda - \frac{M}{(M-1)^2}(t - \hat\mu)^2$, the exact minimum is a
# function of $r_t$ and $M$ alone, for every $\lambda$ (exercise 4 works it out):
#
# $$e^{\text{reference}} = \frac{4}{r_t + 2}, \qquad
# e^{\text{exact}} = \frac{4\bigl((M-1)^2 - M r_t\bigr)}{M(M-2)\,r_t + 2(M-1)^2}.$$
#
# For $M \ge 2$ the exact energy decreases as $r_t$ grows (its numerator falls, its denominator does
# not), and so does the reference code's. So within a layer of maps of one size the reference code's
# importance is an increasing function of the exact one, the same function in every channel, and
# the exact importance can be recovered from the reference code's output with no second pass over
# the data. The paper's, which weighs $\lambda$ against $S/M$ instead of $S/(M-1)$, is such a
# function only for $\lambda = 0$. On one layer whose channels have different scales, here is how
# many pairs of neurons each shared version orders differently from the exact importance:


# %% jupyter={"source_hidden": true}
def discordant_pairs(a, b):
    """How many pairs of entries the tensors a and b (same shape) put in strictly
    opposite order."""
    a, b = a.flatten(), b.flatten()
    return (
        int(((a[:, None] - a[None, :]) * (b[:, None] - b[None, :]) < 0).sum().item())
        // 2
    )


# %%
scales = torch.linspace(0.05, 2.0, 64, dtype=DTYPE).reshape(1, 64, 1, 1)
layer = scales * torch.randn(
    1, 64, 4, 4, generator=torch.Generator().manual_seed(3), dtype=DTYPE
)
pair_count = layer.numel() * (layer.numel() - 1) // 2
for lambda_ in (0.0, 1e-4, 0.1):
    exact = simam.importance(layer, lambda_, statistics="exact")
    swapped_pairs = {
        name: discordant_pairs(simam.importance(layer, lambda_, statistics=name), exact)
        for name in ("paper", "reference")
    }
    print(
        f"lambda = {lambda_:g}: pairs ordered differently from the exact importance, "
        f"of {pair_count}: "
        f"paper {swapped_pairs['paper']}, reference {swapped_pairs['reference']}"
    )
    assert swapped_pairs["reference"] == 0 and (
        lambda_ > 0 or swapped_pairs["paper"] == 0
    )

# %% [markdown]
# Across channels the reference code's $1/(M-1)$ keeps the exact order and the paper's $1/M$ does
# not once $\lambda > 0$, though the swaps are rare: 14 pairs of half a million at
# $\lambda = 10^{-4}$, about a thousand at $\lambda = 0.1$.
#
# #### On real feature maps
#
# The opening section's feature maps, all eight images, average-pooled to $H \times W$ from
# $2\times2$ to $32\times32$: the sizes of feature maps deeper in a network. For each size and each
# shared version the table gives the median, the 99th percentile and the maximum over the neurons
# of the relative under-estimate of the importance,
# $(1/e^{\text{exact}})/(1/e^{\text{shared}}) - 1 = e^{\text{shared}}/e^{\text{exact}} - 1$, and the
# largest change of the attention weight ("max Da"), at $\lambda = 10^{-4}$; the last column is the
# median, over the neurons, of the paper's under-estimate divided by the reference code's. The cell
# then checks the claims above on every neuron: the exact energy is the formula in $r_t$; neither
# shared version over-estimates the importance, and the paper's is never the farther; sorted by the
# reference code's energy over a whole layer (all channels of one image), or by either shared
# energy within a channel, the exact energy never decreases. (The package's three `statistics`
# options are compared here with each other; that the exact one is the true minimum of (2) was
# checked in section 2.)


# %% jupyter={"source_hidden": true}
def exact_from_r(r, m):
    """The exact minimum of equation (2) as a function of r = (t - mean)^2 / (s^2 +
    lambda) and M."""
    return 4 * ((m - 1) ** 2 - m * r) / (m * (m - 2) * r + 2 * (m - 1) ** 2)


def descents(shared, exact):
    """Sorted by the shared energy along the last dimension, how often the exact energy
    decreases."""
    return int((exact.gather(-1, shared.argsort(-1)).diff(dim=-1) < -1e-12).sum())


# %%
LAMBDA = 1e-4
print(
    f"{'map':>6} | {'paper: median':>13} {'p99':>9} {'max':>9} {'max Da':>7} "
    f"| {'reference: median':>17} {'p99':>9} {'max':>9} {'max Da':>7} "
    f"| {'paper / ref':>11}"
)
real_maps = {}  # M -> (r_t, the reference code's under-estimate), for the figure
from_r, exact_energies = [], []
over_estimates = farther = wrong_order = 0
for side in (2, 4, 8, 16, 32):
    maps = torch.nn.functional.adaptive_avg_pool2d(feature_maps, side)
    m = side * side
    energy_of = {
        name: simam.minimal_energy(maps, LAMBDA, name)
        for name in ("exact", "paper", "reference")
    }
    mean, variance = channel_statistics(maps, correction=1)
    r = (maps - mean).square() / (variance + LAMBDA)
    from_r.append(exact_from_r(r, m).flatten())
    exact_energies.append(energy_of["exact"].flatten())
    over_estimates += sum(
        int((energy_of[name] < energy_of["exact"] - 1e-12).sum())
        for name in ("paper", "reference")
    )
    farther += int((energy_of["paper"] > energy_of["reference"] + 1e-12).sum())
    wrong_order += descents(
        energy_of["reference"].flatten(1), energy_of["exact"].flatten(1)
    )
    wrong_order += sum(
        descents(energy_of[name].flatten(2), energy_of["exact"].flatten(2))
        for name in ("paper", "reference")
    )
    shortfall = {
        name: (energy_of[name] / energy_of["exact"] - 1).flatten()
        for name in ("paper", "reference")
    }
    row = []
    for name, values_ in shortfall.items():
        weight_gap = (
            (torch.sigmoid(1 / energy_of["exact"]) - torch.sigmoid(1 / energy_of[name]))
            .max()
            .item()
        )
        row.append(
            f"{values_.median().item():13.2e} {values_.quantile(0.99).item():9.2e} "
            f"{values_.max().item():9.2e} {weight_gap:7.4f}"
        )
    error_ratio = (shortfall["paper"] / shortfall["reference"]).median().item()
    print(
        f"{f'{side}x{side}':>6} | " + f" | {'':4}".join(row) + f" | {error_ratio:11.2f}"
    )
    real_maps[m] = (r.flatten(), shortfall["reference"])

check_close(
    "exact energy vs the formula in r, every map size",
    torch.cat(from_r),
    torch.cat(exact_energies),
)
print(f"neurons whose importance a shared version over-estimates: {over_estimates}")
print(f"neurons where the paper's importance is the farther from the exact: {farther}")
print(f"decreases of the exact energy in the sorted orders: {wrong_order}")
assert over_estimates == farther == wrong_order == 0

# %% [markdown]
# Each neuron's under-estimate by the reference code's statistics, against its $r_t$, with the
# exact function of $r_t$ and $M$ derived above drawn as a line for each size (5,000 neurons of
# each size drawn at random):

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
pick = torch.Generator().manual_seed(0)
for i, (m, (r_m, shortfall_m)) in enumerate(real_maps.items()):
    shown_neurons = torch.randperm(r_m.numel(), generator=pick)[:5000]
    ax.scatter(
        r_m[shown_neurons], shortfall_m[shown_neurons], s=2, alpha=0.4, color=f"C{i}"
    )
    r_grid = torch.logspace(-6, math.log10((m - 1) ** 2 / m), 400, dtype=DTYPE)[:-1]
    ax.plot(
        r_grid,
        4 / (r_grid + 2) / exact_from_r(r_grid, m) - 1,
        color=f"C{i}",
        linewidth=1,
        label=f"M = {m}",
    )
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlim(1e-4, 1e3)
ax.set_ylim(1e-8, 1e3)
ax.set_xlabel(r"$r_t = (t - \hat\mu)^2 / (s^2 + \lambda)$")
ax.set_ylabel("under-estimate of the importance")
ax.set_title(
    "The reference code's statistics against the exact ones, real feature maps"
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Every neuron lies on the line of its $M$: the error is not noise but a fixed function of how far
# the neuron stands out, largest for the most distinctive neurons, the ones attention is meant to
# find. The paper's under-estimate is, in the median, 0.60 to 0.72 of the reference code's. On
# $32 \times 32$ maps the importance of a typical neuron is under-estimated by a few parts in ten
# thousand and the attention weights move by about 0.001 at most. At $8 \times 8$, the last stage
# of a CIFAR ResNet, the under-estimate reaches tens of percent for the most distinctive neurons.
# At $2 \times 2$ it is tens of percent for the median neuron and more than an order of magnitude
# for the largest, and the weights move by about a quarter. The under-estimate is large where the
# denominator $(M-1)^2 - M r_t$ of $e^{\text{exact}}$ is small, and by the down-dates
# $(M-1)^2 - M r_t = (M-1)^2 (\sigma_t^2 + \lambda)/(s^2 + \lambda)$: where the other neurons are
# nearly equal, the target is nearly a perfect spike against them and its exact importance very
# large, while the shared statistics, which include the target, cannot see this. Either way the
# shortcut changes the spacing of the importances, hence the weights, not which neurons count as
# more important within a channel, and it matters most at small $M$.

# %% [markdown]
# ### The verdict on (5)
#
# The form of (5) is the exact minimum of (2) with the leave-one-out $\mu_t, \sigma_t^2$. With the
# channel's $\hat\mu$ and $\hat\sigma^2$, as printed, it is its large-$M$ limit. That
# under-estimates the importance $1/e_t^*$ of every neuron, and the reference code's $s^2$ does so a
# little more; both errors shrink like $1/M$, large on $2\times2$ and $3\times3$ maps, below 1% on
# $32\times32$ maps for $|z| \le 3$. All three versions rank the neurons of a channel identically,
# and $s^2$ also keeps the exact order across the channels of a layer (the deep dive above).

# %% [markdown]
# ## 4. The importance $1/e_t^*$ and the refinement (6)
#
# Inverting the form of (5) splits the importance into a distance term and a constant; the cell
# does it for a general mean `mu` and variance `sigma^2`, whichever statistics they are:

# %%
mu_sym, sigma2_sym = sp.symbols("mu sigma^2", positive=True)
e_star_form = 4 * (sigma2_sym + lam) / ((t - mu_sym) ** 2 + 2 * sigma2_sym + 2 * lam)
importance_form = (t - mu_sym) ** 2 / (sigma2_sym + lam) / 4 + sp.Rational(1, 2)
assert sp.simplify(1 / e_star_form - importance_form) == 0
print("1/e_t* =")
display(importance_form)

# %% [markdown]
# With the channel's mean $\hat\mu$ and the reference code's variance $s^2$ it reads
#
# $$\frac{1}{e_t^*} = \frac{(t - \hat\mu)^2}{4(s^2 + \lambda)} + \frac12 ,$$
#
# which is exactly what the reference code computes. (With $\hat\sigma^2$ in place of $s^2$ it is
# the inverse of the printed (5); with $\mu_t$ and $\sigma_t^2$ in place of $\hat\mu$ and $s^2$, the
# exact importance.) The refinement (6) multiplies every neuron by the sigmoid of its importance:
#
# $$\tilde X = \operatorname{sigmoid}\!\left(\frac{1}{E}\right) \odot X, \tag{6}$$
#
# where $E$ holds the $e_t^*$ of all neurons. It is a definition, so there is only something to
# check: `simam.importance` must equal $1/$`simam.minimal_energy` for every choice of statistics,
# and with `statistics="reference"` the reference code's formula, written out here in torch:

# %%
for name in ("exact", "paper", "reference"):
    for lambda_ in (1e-4, 0.1):
        check_close(
            f"importance vs 1/minimal_energy, {name}, lambda = {lambda_:g}",
            simam.importance(x, lambda_, statistics=name),
            1 / simam.minimal_energy(x, lambda_, statistics=name),
        )

lambda_ = 1e-4
squared_distance = (x - x.mean(dim=(2, 3), keepdim=True)).square()
variance_hw_minus_1 = squared_distance.sum(dim=(2, 3), keepdim=True) / (
    x.shape[2] * x.shape[3] - 1
)
reference_inverse_energy = (
    squared_distance / (4 * (variance_hw_minus_1 + lambda_)) + 0.5
)
check_close(
    "importance reference vs reference-code formula",
    simam.importance(x, lambda_),
    reference_inverse_energy,
)
refined = x * torch.sigmoid(simam.importance(x, lambda_))
check_close(
    "X * sigmoid(1/E) vs reference-code output",
    refined,
    x * torch.sigmoid(reference_inverse_energy),
)

# %% [markdown]
# ### The weight as a function of how far a neuron stands out
#
# What SimAM does to a neuron depends on three numbers only: its standardised deviation
# $z = (t - \hat\mu)/\hat\sigma$, the channel size $M$, and $\lambda/\hat\sigma^2$, since $\lambda$
# acts only relative to the channel's variance. With the reference code's statistics the weight is
#
# $$\operatorname{sigmoid}\left(\frac{z^2}{4\,\bigl(M/(M-1) + \lambda/\hat\sigma^2\bigr)} + \frac12\right).$$
#
# The next cell turns the three energies of section 3 into weight curves of $(M, z, \lambda)$, with
# $\hat\sigma = 1$, and checks them against `simam.SimAM` on channels standardised to mean 0 and
# variance 1, where each value *is* its neuron's $z$.

# %%
# z in units of sigmahat, lambda in units of sigmahat^2
at_unit_spread = {
    t: z,
    mu_hat: 0,
    sigma2_hat: 1,
}
weight_curve = {
    name: sp.lambdify(
        (M, z, lam), 1 / (1 + sp.exp(-1 / e.subs(at_unit_spread))), "math"
    )
    for name, e in e_star_by_name.items()
}
standardised = {}
for m in (4, 9, 64):
    values = torch.randn(
        1, 1, m, generator=torch.Generator().manual_seed(m), dtype=DTYPE
    )
    standardised[m] = (values - values.mean()) / values.std(correction=0)

for m, lambda_, exact in (
    (4, 1e-4, False),
    (4, 1e-4, True),
    (9, 1e-4, False),
    (9, 1e-4, True),
    (64, 1e-4, False),
    (64, 1e-4, True),
    (64, 0.1, False),
    (64, 1.0, False),
):
    values = standardised[m]
    curve = weight_curve["exact" if exact else "reference"]
    on_curve = torch.tensor(
        [curve(m, zv, lambda_) for zv in values.flatten().tolist()], dtype=DTYPE
    )
    check_close(
        f"SimAM(lambda_={lambda_:g}, exact={exact}) vs the weight curve, M = {m}",
        simam.SimAM(lambda_=lambda_, exact=exact)(values),
        values * on_curve.reshape(values.shape),
    )

# %% [markdown]
# The curves, with those channels' neurons as dots: on the left the module's weight on $8\times8$
# maps for three values of $\lambda/\hat\sigma^2$; on the right several map sizes at
# $\lambda = 10^{-4}\hat\sigma^2$, reference statistics solid and exact dashed, each curve ending at
# Samuelson's bound $z^2 \le M - 1$.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
z_axis = [i / 100 for i in range(401)]
dots = {
    m: (values.abs().flatten(), (simam.SimAM()(values) / values).flatten())
    for m, values in standardised.items()
}
for lambda_, colour in zip((1e-4, 0.1, 1.0), ("C0", "C1", "C2")):
    left.plot(
        z_axis,
        [weight_curve["reference"](64, zv, lambda_) for zv in z_axis],
        color=colour,
        label=f"$\\lambda$ = {lambda_:g} $\\hat\\sigma^2$",
    )
left.plot(*dots[64], "k.", label="SimAM on a standardised channel, M = 64")
for m, colour in zip((4, 9, 64, 1024), ("C3", "C4", "C0", "C5")):
    reachable = [zv for zv in z_axis if zv**2 < m - 1]
    right.plot(
        reachable,
        [weight_curve["reference"](m, zv, 1e-4) for zv in reachable],
        color=colour,
        label=f"M = {m}",
    )
    right.plot(
        reachable,
        [weight_curve["exact"](m, zv, 1e-4) for zv in reachable],
        "--",
        color=colour,
    )
    if m in dots:
        right.plot(*dots[m], ".", color=colour)
for ax in (left, right):
    ax.axhline(sigmoid(0.5), color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("$|z|$ = distance from the channel mean / $\\hat\\sigma$")
left.legend(fontsize=8, loc="upper left")
right.legend(fontsize=8, loc="lower right")
left.set_ylabel("attention weight sigmoid(1/$e^*$)")
left.set_title("M = 64 (8x8), reference statistics")
right.set_title("$\\lambda = 10^{-4} \\hat\\sigma^2$; solid: reference, dashed: exact")
plt.show()

# %%
for zv in (0.0, 1.0, 2.0, 3.0):
    print(
        f"|z| = {zv:g}: weight {weight_curve['reference'](1024, zv, 1e-4):.4f} "
        f"(reference statistics, 32x32 map, lambda = 1e-4 sigmahat^2)"
    )

# %% [markdown]
# The weight starts at $\operatorname{sigmoid}(1/2) \approx 0.62$ for a neuron at its channel's mean
# and rises with $z^2$: about 0.82 two standard deviations out, 0.94 three out. It depends on $z$
# alone, whatever the channel's scale, as long as $\lambda \ll \hat\sigma^2$; a large
# $\lambda/\hat\sigma^2$ flattens the curve and pulls channels of small variance towards the floor.
# From $8\times8$ maps on, the map size hardly matters. On smaller maps the reference code's curve
# is lower (the factor $(M-1)/M$) and ends early, at $|z| = \sqrt 3$ on $2\times2$ maps, while the
# exact weight rises much faster there: the gap of section 3.

# %% [markdown]
# ### The range of the attention weight
#
# **Lower bound.** The distance term is non-negative, so $1/e_t^* \ge 1/2$: the weight is at least
# $\operatorname{sigmoid}(1/2) \approx 0.6225$, that of a neuron exactly at its channel's mean.
# SimAM never damps a neuron below 62% of its value, a soft gate between 0.62 and 1, not between 0
# and 1. (A user of the reference code asked whether so narrow a range limits the attention,
# reading it as $(0.5, 1)$; authors' repository, issue 4.)
#
# **Upper bound, which depends on $M$.** With shared statistics, Samuelson's bound $z^2 \le M - 1$
# caps the importance and the weight. With the reference code's $s^2$ no weight on a $2 \times 2$
# map exceeds 0.7432, a band 0.12 wide in which the module can hardly tell neurons apart;
# $4 \times 4$ maps allow up to 0.982, and from $8 \times 8$ on the cap is irrelevant. The exact
# statistics have no such cap. The deep dive derives the bounds and checks the package on them.

# %% [markdown] jp-MarkdownHeadingCollapsed=true
# ### Deep dive: the cap on small maps
#
# With shared statistics and $\lambda = 0$, Samuelson's bound $(t-\hat\mu)^2 \le (M-1)\hat\sigma^2$
# caps the importance:
#
# $$\frac{1}{e_t^*} \le \frac{M-1}{4} + \frac12 \ \text{(paper, } 1/M\text{)}, \qquad
# \frac{1}{e_t^*} \le \frac{(M-1)\hat\sigma^2}{4 \cdot \frac{M}{M-1}\hat\sigma^2} + \frac12 = \frac{(M-1)^2}{4M} + \frac12 \ \text{(reference, } 1/(M-1)\text{)}.$$
#
# Equality holds for a single spike on an otherwise constant channel. A positive $\lambda$ only
# lowers the bound. The exact version has no such cap. When the other $M - 1$ neurons are
# all equal, $\sigma_t^2 = 0$, so $e_t^* = 4\lambda/D_t$ tends to 0 as $\lambda \to 0$. The
# bounds are checked in SymPy below, and then the package is run on spike maps, where it must
# reach them exactly.

# %%
importance_at_unit_spread = {
    name: 1 / e.subs({**at_unit_spread, lam: 0}) for name, e in e_star_by_name.items()
}
spike_bound = {
    "paper": (M - 1) / 4 + sp.Rational(1, 2),
    "reference": (M - 1) ** 2 / M / 4 + sp.Rational(1, 2),
}
for name, expression in spike_bound.items():
    at_the_bound = importance_at_unit_spread[name].subs(z, sp.sqrt(M - 1))
    assert sp.simplify(at_the_bound - expression) == 0
    print(f"largest 1/e* with {name} statistics (at z^2 = M - 1) =")
    display(expression)
print("exact 1/e* as z^2 approaches M - 1, for M = 4 and M = 1024:")
display(
    [
        sp.limit(
            importance_at_unit_spread["exact"].subs(M, m), z, sp.sqrt(m - 1), dir="-"
        )
        for m in (4, 1024)
    ]
)

# %%
bound_functions = {
    name: sp.lambdify(M, expression, "math") for name, expression in spike_bound.items()
}
print(
    f"{'map':>6} {'M':>5} | {'max 1/e* paper':>14} {'reference':>10} | "
    f"{'weight range (reference statistics)':>36}"
)
for side in (1, 2, 3, 4, 7, 8, 14, 16, 32):
    m = side * side
    spike = torch.zeros(1, 1, side, side, dtype=DTYPE)
    spike[0, 0, 0, 0] = 1.0
    reached = {
        name: simam.importance(spike, 0.0, statistics=name).max().item()
        for name in ("paper", "reference")
    }
    for name in reached:
        assert abs(reached[name] - bound_functions[name](m)) < 1e-9 * max(
            1.0, reached[name]
        )
    upper = sigmoid(bound_functions["reference"](m))
    upper_text = (
        f"{upper:.4f}"
        if upper < 0.99995
        else f"1 - {sigmoid(-bound_functions['reference'](m)):.1e}"
    )
    print(
        f"{f'{side}x{side}':>6} {m:>5} | {bound_functions['paper'](m):14.4f} "
        f"{bound_functions['reference'](m):10.4f} "
        f"| [{sigmoid(0.5):.4f}, {upper_text}]"
    )

spike = torch.zeros(1, 1, 2, 2, dtype=DTYPE)
spike[0, 0, 0, 0] = 1.0
for lambda_ in (0.0, 1e-4):
    e_exact = simam.minimal_energy(spike, lambda_, statistics="exact")[
        0, 0, 0, 0
    ].item()
    print(
        f"2x2 spike, exact statistics, lambda = {lambda_:g}: e* = {e_exact:.3e}, "
        f"1/e* = {(1 / e_exact if e_exact > 0 else math.inf):.1f}"
    )

# %% [markdown]
# The spike maps reach the bounds exactly (asserted in the loop). With exact statistics the
# same $2\times2$ spike has $e_t^* = 0$ when $\lambda = 0$, and $1/e_t^* = (t - \mu_t)^2/(4\lambda) + \tfrac12 = 2500.5$
# with $\lambda = 10^{-4}$ (here $t - \mu_t = 1$): the cap is a property of the shared statistics.
# For them, the consequence for small maps is large:
#
# * **$1\times1$** (global features): every neuron is its channel's mean, so the weight is the
#   constant $\operatorname{sigmoid}(1/2) = 0.6225$. SimAM merely rescales. The reference formula
#   here computes the variance as $0/(H W - 1) = 0/0$, so its variance and its output are NaN
#   whatever $\lambda$ is. The package defines the variance of a single neuron as 0 and returns
#   $1/e^* = 1/2$.
# * **$2\times2$**: even the most extreme neuron possible gets at most $\operatorname{sigmoid}(1.0625)
#   = 0.7432$ with the reference statistics. All weights lie in $[0.6225, 0.7432]$, a band 0.12 wide.
#   The module can hardly distinguish neurons at this size.
# * **$4\times4$** already allows weights up to 0.982, and from $8\times8$ on the cap is
#   irrelevant: a neuron can be driven to a weight indistinguishable from 1.
#
# In CIFAR ResNets, SimAM sees $32\times32$, $16\times16$ and $8\times8$ maps, where the cap does
# not bind. In an ImageNet ResNet-50's last stage ($7\times7$) a neuron can still reach a weight
# of $\operatorname{sigmoid}(12.26) \approx 1 - 5\times10^{-6}$.
#
# The feature map of the opening picture fills part of this range. Its smallest and largest weights
# over the 16 channels, at full size and average-pooled to smaller maps:

# %%
print(f"{'map':>6} | {'smallest weight':>15} {'largest weight':>15}")
for side in (2, 4, 8, 32):
    pooled_picture = torch.nn.functional.adaptive_avg_pool2d(picture, side)
    weights_pooled = torch.sigmoid(simam.importance(pooled_picture))
    assert weights_pooled.min().item() >= sigmoid(0.5) - 1e-12
    assert (
        weights_pooled.max().item()
        <= sigmoid(bound_functions["reference"](side * side)) + 1e-12
    )
    print(
        f"{f'{side}x{side}':>6} | {weights_pooled.min().item():15.4f} "
        f"{weights_pooled.max().item():15.4f}"
    )

# %% [markdown]
# ## 5. The verdicts, equation by equation
#
# First, all numerical checks of this chapter, with the largest absolute difference each one found,
# and the largest difference relative to the size of the values compared (taken as at least 1).
# The differences are round-off, and their digits vary from machine to machine; the assertion
# checks what must hold anywhere, that none exceeds $10^{-10}$ of the size of the values compared.

# %% tags=["nbval-ignore-output"]
for name, (difference, _size) in CHECKS.items():
    print(f"{difference:9.2e}  {name}")
largest_relative = max(
    difference / max(size, 1.0) for difference, size in CHECKS.values()
)
print(f"{len(CHECKS)} checks; largest relative difference: {largest_relative:.1e}")
assert largest_relative < 1e-10

# %% [markdown]
# The verdicts:
#
# | equation | what the paper prints | verdict | evidence |
# | --- | --- | --- | --- |
# | (1) | energy of neuron $t$ against labels $y_t, y_o$ | **holds** (a definition) | the others enter only through $\mu_t$ and $\sigma_t^2$, exactly (symbolic for $M = 2 \dots 9$) |
# | (2) | (1) with $y_t = 1$, $y_o = -1$, plus $\lambda w_t^2$ | **holds** | (2) $-$ (1) $= \lambda w_t^2$; one minimum unless $\lambda = 0$ and all $M$ neurons are equal; `simam.energy.energy` equals the literal sum |
# | (3) | $w_t = -2(t-\mu_t)/D_t$ | **does not hold: wrong sign**; correct is $w_t = +2(t-\mu_t)/D_t$ (authors' issue 11) | derived $+$ printed $= 0$; the printed pair is the minimiser for swapped labels and exceeds the minimum by $8(t-\mu_t)^2/D_t$ ($130/17$ instead of $2/17$ on the worked example) |
# | (4) | $b_t = -\tfrac12(t+\mu_t)w_t$ | **holds** (for any $w_t$) | $\partial e_t/\partial b_t = 0$ at that $b_t$ identically |
# | (5) | $e_t^* = 4(\hat\sigma^2+\lambda)/((t-\hat\mu)^2+2\hat\sigma^2+2\lambda)$ with channel statistics | **exact with leave-one-out statistics; with channel statistics its large-$M$ limit** | it under-estimates $1/e^*$, at $z = 1$ by 33% on $2\times2$ maps and 0.07% on $32\times32$; the reference code's $H W - 1$ ranks a channel's neurons as the exact energy does but is farther from it in value |
# | (6) | $\tilde X = \operatorname{sigmoid}(1/E) \odot X$ | **holds** (a definition) | `simam.importance` equals $1/$`minimal_energy` and the reference formula; weights lie in $[0.6225, 1)$, only $[0.6225, 0.7432]$ on $2\times2$ maps |
#
# ## What this chapter established
#
# - The energy (2) of a neuron has one minimum, in closed form; the printed (3) has the wrong sign
#   of $w_t$ (the authors' issue 11), and (4) holds.
# - (5) is exact with leave-one-out statistics and an approximation with a channel's statistics;
#   the reference code's $HW - 1$ ranks a channel's neurons as the exact energy does, but is
#   farther from it in value than the printed $M$.
# - A neuron's weight $\operatorname{sigmoid}(1/e_t^*)$ depends only on $z$, $M$ and
#   $\lambda/\hat\sigma^2$, and never falls below $\operatorname{sigmoid}(1/2)$; the package agrees
#   with every derivation.
#
# Next, [chapter 2](02_closed_form_vs_numeric.ipynb) checks the closed form against numerical
# minimisation on real CIFAR-10 feature maps.

# %% [markdown]
# ## Exercises
#
# Each solution is a collapsed cell that checks its answer; open it after trying.
#
# **1. Other labels.** Equation (1) allows any labels. With $y_t = 1$ and $y_o = 0$ (a 0/1 classifier
# instead of $\pm 1$), what are the minimiser $w_t$ and the minimal energy? What happens to the
# importance $1/e_t^*$ and to the order of the neurons, and would SimAM's weights change?

# %% jupyter={"source_hidden": true} tags=["solution"]
# The general solution of section 2 scales w_t with (y_t - y_o) and e_t* with
# (y_t - y_o)^2: with labels 1 and 0, w_t is halved and e_t* is a quarter of (2)'s. The
# importance is 4 times larger, so the order of the neurons is the same, but
# sigmoid(4/e*) differs from sigmoid(1/e*): the weights would change (a neuron at the
# mean would get sigmoid(2) = 0.88 instead of 0.62).
zero_one = {y_t: 1, y_o: 0}
assert sp.simplify(w_general.subs(zero_one) - w_derived / 2) == 0
assert sp.simplify(e_star_general.subs(zero_one) - e_star_derived / 4) == 0
print("with labels 1 and 0: e_t* =")
display(sp.factor(e_star_general.subs(zero_one)))
print(
    f"weight of a neuron at its channel mean: sigmoid(2) = {sigmoid(2.0):.4f} "
    f"instead of {sigmoid(0.5):.4f}"
)

# %% [markdown]
# **2. The sign, by hand.** A channel holds the four values $0, 0, 0, 1$; the target is the $1$, and
# $\lambda = 0$. Compute $\mu_t$, $\sigma_t^2$, the corrected $(w_t, b_t)$ and the printed one, and the
# energy (2) at both, by hand. Then check with the package.

# %% jupyter={"source_hidden": true} tags=["solution"]
# The others are 0, 0, 0: mu_t = 0, sigma_t^2 = 0, so D_t = 1. Corrected: w_t = 2,
# b_t = -(1 + 0) 2 / 2 = -1, mapping the target to +1 and the others to -1 exactly:
# energy 0. Printed: w_t = -2, b_t = +1, mapping the target to -1 and the others to +1:
# energy (1 - (-1))^2 + (-1 - 1)^2 = 8.
four = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).reshape(1, 1, 2, 2)
w_four, b_four = (
    v[0, 0, 1, 1].item() for v in simam.closed_form_minimiser(four, lambda_=0.0)
)
corrected_energy = simam.energy.energy(four, w_four, b_four, lambda_=0.0)[
    0, 0, 1, 1
].item()
printed_energy = simam.energy.energy(four, -w_four, -b_four, lambda_=0.0)[
    0, 0, 1, 1
].item()
assert abs(w_four - 2) < 1e-12 and abs(b_four + 1) < 1e-12
assert abs(corrected_energy) < 1e-12 and abs(printed_energy - 8) < 1e-12
print(
    f"corrected: w = {w_four:.4f}, b = {b_four:.4f}, energy {corrected_energy:.4f}; "
    f"printed: w = {-w_four:.4f}, b = {-b_four:.4f}, energy {printed_energy:.4f}"
)

# %% [markdown]
# **3. The cap on a $3 \times 3$ map.** With the reference code's statistics and $\lambda = 0$, what
# is the largest attention weight any neuron of a $3\times3$ map can get, and which channel reaches
# it? What would it be with the paper's $1/M$?

# %% jupyter={"source_hidden": true} tags=["solution"]
# Samuelson: z^2 <= M - 1 = 8, reached by a single spike on a constant channel.
# Reference statistics: 1/e* <= (M - 1)^2 / (4 M) + 1/2 = 64/36 + 1/2 = 41/18, weight
# sigmoid(41/18) = 0.907. Paper's 1/M: 1/e* <= (M - 1)/4 + 1/2 = 5/2, weight
# sigmoid(5/2) = 0.924.
spike_3x3 = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
spike_3x3[0, 0, 1, 1] = 5.0
largest = {
    name: simam.importance(spike_3x3, 0.0, statistics=name).max().item()
    for name in ("reference", "paper")
}
assert (
    abs(largest["reference"] - 41 / 18) < 1e-12
    and abs(largest["paper"] - 5 / 2) < 1e-12
)
for name, value in largest.items():
    print(f"{name}: largest 1/e* = {value:.4f}, largest weight = {sigmoid(value):.4f}")

# %% [markdown]
# **4. Nothing is lost.** Show that the exact importance of a neuron can be computed from the
# reference code's importance $1/e^\text{reference}$ and $M$ alone, for any $\lambda$, without a
# second look at the data. Check it on a random $4\times4$ map. (Hint: $1/e^\text{reference} =
# r_t/4 + 1/2$ with $r_t = d^2/(s^2 + \lambda)$; write $\sigma_t^2 + \lambda$ and $t - \mu_t$ with the down-dates.)

# %% jupyter={"source_hidden": true} tags=["solution"]
# With s_sym = s^2 + lambda = S/(M-1) + lambda: t - mu_t = M d/(M-1) and
# sigma_t^2 + lambda = s_sym - M d^2/(M-1)^2, so
#   e_exact = 4 (sigma_t^2 + lambda) / ((t - mu_t)^2 + 2 (sigma_t^2 + lambda))
#           = 4 ((M-1)^2 - M r) / (M (M-2) r + 2 (M-1)^2),   r = 4/e_reference - 2,
# a decreasing function of r alone: the same in every channel, whatever lambda is.
r_sym = sp.Symbol("r", nonnegative=True)
s_sym = sp.Symbol("s", positive=True)
d_of_r = sp.sqrt(r_sym * s_sym)  # d^2 = r (s^2 + lambda)
loo_spread = s_sym - M * d_of_r**2 / (M - 1) ** 2  # sigma_t^2 + lambda
e_exact_of_r = 4 * loo_spread / ((M * d_of_r / (M - 1)) ** 2 + 2 * loo_spread)
assert (
    sp.simplify(
        e_exact_of_r
        - 4 * ((M - 1) ** 2 - M * r_sym) / (M * (M - 2) * r_sym + 2 * (M - 1) ** 2)
    )
    == 0
)
random_map = torch.randn(
    2, 8, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64
)
m = 16
for lambda_ in (1e-4, 0.1):
    # from the reference code's output only
    r_values = 4 * simam.importance(random_map, lambda_) - 2
    exact_from_reference = (m * (m - 2) * r_values + 2 * (m - 1) ** 2) / (
        4 * ((m - 1) ** 2 - m * r_values)
    )
    check_close(
        f"exact importance from the reference one, lambda = {lambda_:g}",
        exact_from_reference,
        simam.importance(random_map, lambda_, statistics="exact"),
        1e-10,
    )

# %% [markdown]
# **5. Why "3-D".** CBAM's overall weight is a product $A^{\mathrm{ch}} \odot A^{\mathrm{sp}}$ of a channel weight and a spatial
# weight. Can SimAM's weights always be written that way? Try a map of two $2\times2$ channels, each
# with a single spike, at different positions.

# %% jupyter={"source_hidden": true} tags=["solution"]
# A product A^ch * A^sp makes the C x HW matrix of weights have rank one: every 2 x 2
# minor vanishes. Spikes at positions 0 (channel 0) and 3 (channel 1) give the weights
# [[H, L, L, L], [L, L, L, H]] with H > L, whose minor over positions 0 and 3 is
# H^2 - L^2 > 0: no product of a channel weight and a spatial weight gives it. Each
# neuron's weight depends on its own channel and position jointly.
two_spikes = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
two_spikes[0, 0, 0, 0] = two_spikes[0, 1, 1, 1] = 1.0
weights = torch.sigmoid(simam.importance(two_spikes)).reshape(2, 4)
minor = (weights[0, 0] * weights[1, 3] - weights[0, 3] * weights[1, 0]).item()
singular_values = torch.linalg.svdvals(weights)
assert minor > 0.1 and singular_values[1].item() > 0.05
print(
    f"weights:\n{weights.numpy().round(4)}\nminor over positions 0 and 3: {minor:.4f}; "
    f"second singular value {singular_values[1].item():.4f} (0 for a product)"
)

# %% [markdown]
# ## References
#
# * Yang, L., Zhang, R.-Y., Li, L., Xie, X. (2021). SimAM: A Simple, Parameter-Free Attention
#   Module for Convolutional Neural Networks. *Proceedings of the 38th International Conference on
#   Machine Learning (ICML)*, PMLR 139, 11863–11874. Reference code:
#   [github.com/ZjjConan/SimAM](https://github.com/ZjjConan/SimAM).
# * Authors' repository, issue 11, "A typo of your paper": the authors confirm that equation (3)
#   should have no minus sign. <https://github.com/ZjjConan/SimAM/issues/11>
# * Authors' repository, issue 4, on the implementation: why the variance divides by $H W - 1$
#   (the authors: the unbiased variance), and the question whether the range of
#   $\operatorname{sigmoid}(1/E)$ limits the attention. <https://github.com/ZjjConan/SimAM/issues/4>
# * Webb, B. S., Dhruv, N. T., Solomon, S. G., Tailby, C., Lennie, P. (2005). Early and late
#   mechanisms of surround suppression in striate cortex of macaque. *Journal of Neuroscience*
#   25(50), 11666–11675.
# * Hillyard, S. A., Vogel, E. K., Luck, S. J. (1998). Sensory gain control (amplification) as a
#   mechanism of selective attention: electrophysiological and neuroimaging evidence.
#   *Philosophical Transactions of the Royal Society of London B* 353(1373), 1257–1270.
# * Carrasco, M. (2011). Visual attention: the past 25 years. *Vision Research* 51(13), 1484–1525.
# * Hu, J., Shen, L., Sun, G. (2018). Squeeze-and-Excitation Networks. *CVPR 2018*.
# * Woo, S., Park, J., Lee, J.-Y., Kweon, I. S. (2018). CBAM: Convolutional Block Attention Module.
#   *ECCV 2018*.
# * Wang, Q., Wu, B., Zhu, P., Li, P., Zuo, W., Hu, Q. (2020). ECA-Net: Efficient Channel Attention
#   for Deep Convolutional Neural Networks. *CVPR 2020*.
