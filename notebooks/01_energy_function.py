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
# SimAM multiplies every neuron of a feature map by a weight below 1, and the weight says how
# much the neuron stands out from the other neurons of its channel. The paper does not pick this
# weight by hand. It defines an *energy* for each neuron (equations 1 and 2): how well a linear map
# $\hat x = w_t x + b_t$ can separate that neuron, the *target* $t$, from the other $M - 1$ neurons
# of its channel. The best linear map has a closed form (equations 3 and 4), and so has the
# energy at that optimum (equation 5). The module then weighs each neuron by
# $\operatorname{sigmoid}(1/e_t^*)$ (equation 6).
#
# The paper prints equations (3) to (5) without a derivation. This chapter derives them. We
# start from equation (2) alone and let SymPy do the algebra. We set each result beside the
# printed equation and give a verdict on it, and we check each one numerically against the
# course package, `simam.energy`, which is the single implementation the later chapters use.
#
# The plan:
#
# * First, **why an energy function**: the idea from visual neuroscience that the equations
#   encode, and what kind of attention weight it yields.
# 1. **Equations (1) and (2).** The sum over the other $M - 1$ neurons depends on them only
#    through their mean and variance. We show why this holds exactly.
# 2. **The minimiser and the minimum.** We solve the stationarity conditions for $w_t$ and $b_t$,
#    check that the stationary point is a minimum, and compare the results with (3), (4) and (5).
#    One printed sign is wrong.
# 3. **From leave-one-out to channel statistics.** Equation (5) uses one mean and one variance
#    for the whole channel. We work out exactly how these relate to the per-neuron statistics
#    of the derivation and how large the error is, and we settle the question of $1/M$ versus
#    $1/(H W - 1)$ in the variance.
# 4. **The attention weight.** We derive $1/e_t^*$, the refinement (6) and the range of values the
#    weight can take, which turns out to depend strongly on the size of the feature map.
# 5. **Summary** of the verdicts.
#
# The chapter ends with exercises, their solutions collapsed, and the references.
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
# ## Why an energy function
#
# The SimAM paper takes its idea from visual neuroscience (its section 3). The most informative
# neurons are usually those whose firing differs from that of their neighbours, and an active neuron
# tends to suppress the activity of the neurons around it, an effect called spatial suppression
# (Webb et al. 2005). Such neurons deserve priority. Attention itself acts in the brain as a *gain*:
# it scales neuronal responses rather than adding to them (Hillyard et al. 1998; Carrasco 2011).
# Carried over to a feature map, the recipe reads: find the neurons that stand out from the other
# neurons of their channel, and multiply them by a larger weight.
#
# Attention modules differ in the shape of that weight. A **1-D** (channel) attention gives one
# weight per channel, $C \times 1 \times 1$, shared by every position: SE (Hu et al. 2018) and ECA
# (Wang et al. 2020) compute it from the channel's average. A **2-D** (spatial) attention gives one
# weight per position, $1 \times H \times W$, shared by every channel: CBAM's spatial gate (Woo et al.
# 2018) computes it with a $7 \times 7$ convolution over the channel-wise maximum and mean. CBAM
# applies a channel gate and then the spatial gate, so its overall weight is a product
# $A^{\mathrm{ch}} \odot A^{\mathrm{sp}}$ of a $C \times 1 \times 1$ and a $1 \times H \times W$ weight:
# a neuron can only be raised if its whole channel or its whole position is. A **3-D** attention gives every neuron its own weight, $C \times H \times W$. In the brain, attention
# to features and attention to locations work together (Carrasco 2011), and SimAM is such a 3-D
# attention. It has no parameters: its weight comes from a formula, not from learned layers.
#
# The formula is the energy of equation (2). For each neuron $t$ it asks how well a straight line
# $\hat x = w_t x + b_t$ separates $t$ from the other neurons of its channel, sending $t$ to $+1$
# and the others to $-1$. This is a least-squares linear classifier with one input, and a ridge
# penalty $\lambda w_t^2$ keeps it well defined (without it the problem is singular exactly when
# all $M$ neurons of the channel are equal, section 2). If $t$ stands out, a line separates it easily and the minimal energy $e_t^*$ is low; if
# $t$ looks like its neighbours, no line does and the energy stays high. So a low energy marks a
# distinctive neuron, and the module multiplies every neuron by $\operatorname{sigmoid}(1/e_t^*)$,
# a gain, as the neuroscience suggests.
#
# The minimum of a quadratic has a closed form, so the energy costs one mean and one variance per
# channel, with nothing to learn. Deriving that closed form, and checking the paper's printed
# version of it, is the subject of the rest of the chapter.

# %%
import math

import matplotlib.pyplot as plt
import sympy as sp
import torch
from IPython.display import display
from matplotlib.colors import LogNorm

import simam
from simam.energy import channel_statistics, leave_one_out_statistics

QUICK = simam.quick_mode()
generator = simam.seed_everything(0)
print(f"quick mode: {QUICK}")

# %% [markdown]
# The derivations are symbolic, so quick mode changes nothing in this chapter. The numerical checks
# use small random feature maps in double precision. The helpers used throughout are in the next
# cell. `check_close` asserts that two tensors agree and prints the comparison it made (not the
# difference itself, whose last digits depend on the machine). `others_of` builds, by brute force,
# the $M - 1$ "other" neurons of every target neuron. This gives us an independent way to evaluate
# the definitions, at a cost quadratic in $M$, to test the package against. `energy_by_definition`
# evaluates equation (2) with that explicit sum. `sigmoid` serves sections 3 and 4;
# `discordant_pairs`, which counts the pairs of neurons two importances put in opposite order, sits
# folded before the one cell of section 3 that uses it.

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
x = 1.5 * torch.randn(2, 3, 5, 5, generator=generator, dtype=torch.float64) + 0.3

# %% [markdown]
# ## 1. Equations (1) and (2): the energy of one neuron
#
# Fix one channel with $M = H W$ neurons. Call the target neuron $t$ and the others
# $x_1, \dots, x_{M-1}$. Map every neuron linearly, $\hat t = w_t t + b_t$ and
# $\hat x_i = w_t x_i + b_t$. Equation (1) measures how far this map is from sending the target
# to a label $y_t$ and every other neuron to a label $y_o$:
#
# $$e_t(w_t, b_t, y, x_i) = (y_t - \hat t)^2 + \frac{1}{M-1} \sum_{i=1}^{M-1} (y_o - \hat x_i)^2. \tag{1}$$
#
# Equation (2) chooses binary labels $y_t = 1$, $y_o = -1$ and adds a ridge penalty
# $\lambda w_t^2$ on the slope:
#
# $$e_t = \frac{1}{M-1} \sum_{i=1}^{M-1} \bigl(-1 - (w_t x_i + b_t)\bigr)^2 + \bigl(1 - (w_t t + b_t)\bigr)^2 + \lambda w_t^2. \tag{2}$$
#
# If a single line can push $t$ to $+1$ and all the others to $-1$, the energy is low and $t$
# is distinctive. If $t$ looks like the rest, no line separates it and the energy stays high.
#
# A direct attack on (2) would carry $M - 1$ separate symbols $x_i$. That is hopeless for
# $M = 1024$, and it is not needed. Write each neighbour as its deviation from the mean of the
# others, $x_i = \mu_t + \delta_i$ with
# $\mu_t = \frac{1}{M-1}\sum_i x_i$ and $\sigma_t^2 = \frac{1}{M-1}\sum_i (x_i - \mu_t)^2 = \frac{1}{M-1}\sum_i \delta_i^2$.
# Then
#
# $$y_o - \hat x_i = \underbrace{(y_o - w_t \mu_t - b_t)}_{o} - w_t \delta_i ,
# \qquad
# \frac{1}{M-1}\sum_i (o - w_t\delta_i)^2 = o^2 - \frac{2 o w_t}{M-1}\underbrace{\sum_i \delta_i}_{=\,0} + w_t^2 \sigma_t^2 .$$
#
# The cross term vanishes because deviations from a mean sum to zero. So, for any $M$ and any labels,
#
# $$\frac{1}{M-1}\sum_{i=1}^{M-1} (y_o - \hat x_i)^2 = (y_o - w_t\mu_t - b_t)^2 + w_t^2 \sigma_t^2 .$$
#
# This is an identity, not an approximation. The other neurons enter the energy only through
# their mean $\mu_t$ and variance $\sigma_t^2$ (with denominator $M - 1$, as in the paper). Let
# SymPy confirm it for $M = 4$ with three explicit neighbours $x_1, x_2, x_3$, and check at the
# same time that (2) is (1) with the binary labels plus the penalty.

# %%
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
# From here on the energy is a function of the five numbers $t, \mu_t, \sigma_t^2, \lambda$ and the
# labels, whatever $M$ is. We keep the labels general for one more step because that will explain
# the sign in equation (3).

# %%
energy_general = (
    (y_t - w * t - b) ** 2 + (y_o - w * mu_t - b) ** 2 + w**2 * sigma2_t + lam * w**2
)
energy_eq2 = energy_general.subs({y_t: 1, y_o: -1})
display(sp.Eq(sp.Symbol("e_t"), energy_eq2))

# %% [markdown]
# The package evaluates (2) in exactly this form: `simam.energy.energy(x, w, b, lambda_)` computes the
# leave-one-out mean and variance of every neuron and plugs them in. We compare it with the
# literal sum of (2), using a random $(w_t, b_t)$ for every neuron, for the paper's CIFAR value
# $\lambda = 10^{-4}$ and its ImageNet value $\lambda = 0.1$.

# %%
w_random = torch.randn(x.shape, generator=generator, dtype=torch.float64)
b_random = torch.randn(x.shape, generator=generator, dtype=torch.float64)
for lambda_ in (1e-4, 0.1):
    check_close(
        f"simam.energy vs equation (2) summed literally, lambda = {lambda_:g}",
        simam.energy.energy(x, w_random, b_random, lambda_),
        energy_by_definition(x, w_random, b_random, lambda_),
    )

# %% [markdown]
# ## 2. The minimiser $(w_t, b_t)$ and the minimal energy
#
# The energy is a quadratic polynomial in $(w_t, b_t)$. A stationary point is where both partial
# derivatives vanish:
#
# $$\frac{\partial e_t}{\partial w_t} = 0, \qquad \frac{\partial e_t}{\partial b_t} = 0 .$$
#
# This is a linear system of two equations in two unknowns. If the Hessian is positive definite
# the solution is the unique global minimum. We solve the system for equation (2) first.

# %%
stationary = sp.solve(
    [sp.diff(energy_eq2, w), sp.diff(energy_eq2, b)], [w, b], dict=True
)
print(f"number of solutions: {len(stationary)}")
w_solved, b_solved = stationary[0][w], stationary[0][b]
display(sp.Eq(w, w_solved), sp.Eq(b, b_solved))

# %% [markdown]
# SymPy expands the denominator. It is easier to read with the shorthand
#
# $$D_t = (t - \mu_t)^2 + 2\sigma_t^2 + 2\lambda ,$$
#
# and the two results then take a compact form: $w_t = 2(t - \mu_t)/D_t$ and
# $b_t = -\tfrac12 (t + \mu_t) w_t$. We assert that the compact forms are the same expressions as
# the solver's output, then display them:

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
# ### Is it a minimum?
#
# The Hessian of a quadratic is a constant matrix. By Sylvester's criterion a symmetric
# $2 \times 2$ matrix is positive definite when its top-left entry and its determinant are both
# positive.

# %%
hessian = sp.hessian(energy_eq2, (w, b))
display(hessian)
print("determinant:")
display(sp.factor(hessian.det()))
assert sp.simplify(hessian.det() - 4 * D_t) == 0

# %% [markdown]
# The determinant is $4 D_t$, and the entry $\partial^2 e_t / \partial b_t^2$ is $4 > 0$. The
# Hessian is therefore positive definite exactly when $D_t > 0$. With $\lambda \ge 0$ and
# $\sigma_t^2 \ge 0$ every term of $D_t$ is non-negative, so $D_t > 0$ whenever
# $\sigma_t^2 + \lambda > 0$. In that case (2) is strictly convex and the stationary point is its
# unique global minimum. $D_t$ can vanish only when $\lambda = 0$ and all $M$ neurons of the
# channel are equal. Then $\hat t$ and every $\hat x_i$ take the same value $w_t t + b_t$, the
# energy is $2 + 2(w_t t + b_t)^2$, and a whole line of pairs reaches the minimum 2. The package
# returns the minimum-norm pair $w_t = b_t = 0$ with energy 2 in that case.
#
# ### The minimal energy
#
# Substituting the minimiser back into (2) gives the minimum:

# %%
e_star_derived = sp.factor(sp.simplify(energy_eq2.subs(stationary[0])))
display(sp.Eq(sp.Symbol("e_t^*"), e_star_derived))
assert sp.simplify(e_star_derived - 4 * (sigma2_t + lam) / D_t) == 0
display(sp.Eq(sp.Symbol("e_t^*"), 4 * (sigma2_t + lam) / D_symbol))

# %% [markdown]
# That is $e_t^* = 4(\sigma_t^2 + \lambda) / D_t$ (the second line, after the assertion).
#
# ### Beside the printed equations (3), (4) and (5)
#
# The paper prints, with the same leave-one-out $\mu_t$ and $\sigma_t^2$,
#
# $$w_t = -\frac{2(t - \mu_t)}{(t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda}, \tag{3}$$
# $$b_t = -\frac{1}{2}(t + \mu_t) w_t, \tag{4}$$
# $$e_t^* = \frac{4(\hat\sigma^2 + \lambda)}{(t - \hat\mu)^2 + 2\hat\sigma^2 + 2\lambda}, \tag{5}$$
#
# where (5) uses the statistics $\hat\mu$ and $\hat\sigma^2$ of the whole channel. Section 3
# deals with that switch. Here we compare the *form* of (5) with leave-one-out statistics. The
# next cell prints derived minus printed, simplified. A zero means the printed equation holds.

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
# * **(4) holds.** In fact it holds for *any* slope. Setting $\partial e_t / \partial b_t = 0$
#   gives $b_t = -\tfrac12 (t + \mu_t) w_t$ whatever $w_t$ is: the optimal intercept puts the
#   decision threshold halfway between $t$ and $\mu_t$.
# * **(3) does not hold: its sign is wrong.** The derived slope is exactly the negative of the
#   printed one. The correct form is
#   $$w_t = +\frac{2(t - \mu_t)}{(t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda}.$$
#   A quick sanity check needs no algebra. The labels ask for $\hat t = w_t t + b_t \approx +1$
#   and $\hat x_i \approx -1$. If $t$ lies above its neighbours ($t > \mu_t$), the line must
#   increase, so $w_t > 0$. The printed (3) gives $w_t < 0$ there. The authors have confirmed
#   the slip: equation (3) should carry no minus sign (authors' repository, issue 11).
# * **(5) holds in form, with leave-one-out statistics**: $e_t^* = 4(\sigma_t^2+\lambda)/D_t$.
#   The sign error in (3) does not reach (5) (see below). Whether (5) also holds with the
#   *channel* statistics it prints is the subject of section 3.
#
# Where does the printed sign come from? Solve (1) with a ridge penalty for general labels
# $y_t, y_o$:

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
# flips $(w_t, b_t)$ to $(-w_t, -b_t)$ and leaves $e_t^*$ unchanged. This is why the
# sign slip in (3) is harmless for SimAM, which uses only $e_t^*$. It is not harmless for anyone
# who evaluates (2) at the printed $(w_t, b_t)$. The excess energy there is

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
#
# **A worked example.** Take a $2 \times 2$ channel with values $3, 0, 1, 0$ and the target
# $t = 3$, with $\lambda = 0$ to keep the numbers exact. The other three neurons have
# $\mu_t = 1/3$ and $\sigma_t^2 = 2/9$.

# %%
example_values = [3, 0, 1, 0]
target_value, rest = (
    sp.Integer(example_values[0]),
    [sp.Integer(v) for v in example_values[1:]],
)
example = {
    t: target_value,
    mu_t: sum(rest) / 3,
    sigma2_t: sum((v - sum(rest) / 3) ** 2 for v in rest) / 3,
    lam: 0,
}
pairs = {
    "derived (3) corrected": (w_derived.subs(example), b_derived.subs(example)),
    "printed (3) with (4)": (
        w_printed.subs(example),
        (-(t + mu_t) * w_printed / 2).subs(example),
    ),
}
for label, (w_value, b_value) in pairs.items():
    energy_value = energy_eq2.subs(example).subs({w: w_value, b: b_value})
    mapped_target = w_value * target_value + b_value
    mapped_others = [w_value * v + b_value for v in rest]
    print(
        f"{label:22s}  w = {str(w_value):7s} b = {str(b_value):7s}  "
        f"t^ = {str(mapped_target):7s} x^ = {[str(v) for v in mapped_others]}  "
        f"energy = {energy_value}"
    )

# %% [markdown]
# The corrected slope maps the target to $16/17 \approx +0.94$ and the others to negative values,
# as the labels ask, and reaches the minimum $2/17 \approx 0.118$. The printed pair maps the
# target to $-16/17$ and the others to positive values. Its energy is $130/17 \approx 7.65$:
# 65 times the minimum, and worse than doing nothing (energy 2). The package agrees. Its
# `closed_form_minimiser` uses the corrected sign, and the energy at the negated pair, which is
# the printed one, is $130/17$:

# %%
x_example = torch.tensor(example_values, dtype=torch.float64).reshape(1, 1, 2, 2)
w_package, b_package = simam.closed_form_minimiser(x_example, lambda_=0.0)
energies = {
    "corrected": simam.energy.energy(x_example, w_package, b_package, lambda_=0.0)[
        0, 0, 0, 0
    ].item(),
    "printed": simam.energy.energy(x_example, -w_package, -b_package, lambda_=0.0)[
        0, 0, 0, 0
    ].item(),
}
print(f"package w_t = {w_package[0, 0, 0, 0].item():.6f} (12/17 = {12 / 17:.6f})")
print(
    f"energy at the corrected pair: {energies['corrected']:.6f} (2/17 = {2 / 17:.6f})"
)
print(
    f"energy at the printed pair:   {energies['printed']:.6f} (130/17 = {130 / 17:.6f})"
)
assert (
    abs(energies["corrected"] - 2 / 17) < 1e-12
    and abs(energies["printed"] - 130 / 17) < 1e-12
)

# %% [markdown]
# ### The sign error at a glance
#
# Equation (2) for one target neuron is a bowl over the $(w_t, b_t)$ plane. The picture below
# draws it for the most distinctive neuron of a channel of $M = 5$ random values, with
# $\lambda = 10^{-4}$. The package's minimiser (the corrected sign) sits at the bottom of the bowl.
# The printed pair is its mirror image through the origin, $(-w_t, -b_t)$, high on the far side,
# outside the white line where the energy is that of doing nothing ($w_t = b_t = 0$, energy 2).
# The grid evaluates (2) through `simam.energy.energy`, which section 1 checked against the literal
# sum.

# %%
lambda_ = 1e-4
channel = torch.randn(
    1, 1, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64
)
target = (channel - channel.mean()).abs().argmax().item()
w_star, b_star = (
    v[0, 0, target].item() for v in simam.closed_form_minimiser(channel, lambda_)
)
pairs = {"corrected (3)": (w_star, b_star), "printed (3)": (-w_star, -b_star)}


def energy_of_target(w, b):
    """Equation (2) for the target neuron of `channel`, at every (w, b) of broadcastable
    w and b."""
    w, b = (
        torch.as_tensor(v, dtype=torch.float64)[..., None, None, None] for v in (w, b)
    )
    return simam.energy.energy(channel, w, b, lambda_)[..., 0, 0, target]


w_axis = torch.linspace(-1.6 * abs(w_star), 1.6 * abs(w_star), 301, dtype=torch.float64)
b_half_width = max(1.6 * abs(b_star), 1.0)
b_axis = torch.linspace(-b_half_width, b_half_width, 301, dtype=torch.float64)
landscape = energy_of_target(w_axis[None, :], b_axis[:, None])
at = {name: energy_of_target(*pair).item() for name, pair in pairs.items()}

loo_mean_5, loo_var_5 = (
    v[0, 0, target].item() for v in leave_one_out_statistics(channel)
)
D_5 = (channel[0, 0, target].item() - loo_mean_5) ** 2 + 2 * loo_var_5 + 2 * lambda_
excess_5 = 8 * (channel[0, 0, target].item() - loo_mean_5) ** 2 / D_5
assert at["corrected (3)"] <= landscape.min().item() + 1e-12  # no grid point is lower
# the excess derived above
assert abs(at["printed (3)"] - at["corrected (3)"] - excess_5) < 1e-12
print(
    "channel:",
    [round(v, 3) for v in channel.flatten().tolist()],
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

# %% [markdown]
# ### The package against the derivation, on a random feature map
#
# We turn the SymPy results into functions (`sp.lambdify`) and evaluate them with leave-one-out
# statistics that `others_of` computes by brute force. Then we compare with the package:
#
# * `closed_form_minimiser` against the derived $(w_t, b_t)$,
# * `minimal_energy(..., statistics="exact")` against the derived $e_t^*$, and against `energy`
#   evaluated at the package's minimiser,
# * and the minimum property itself. Because (2) is quadratic,
#   $e_t\bigl((w_t^*, b_t^*) + \boldsymbol\zeta\bigr) - e_t^* = \tfrac12 \boldsymbol\zeta^\top Q_t\, \boldsymbol\zeta$
#   for any change $\boldsymbol\zeta$ of $(w_t, b_t)$, with $Q_t$ the Hessian below, exactly. So
#   random perturbations must raise the energy by exactly that amount, and never lower it.

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
        dw = 0.5 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        db = 0.5 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
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
# Everything so far uses the statistics of the $M - 1$ *other* neurons. These differ from neuron
# to neuron. The paper then assumes that all neurons of a channel follow one distribution, and
# prints (5) with the mean and variance of the whole channel, target included:
#
# $$\hat\mu = \frac1M \sum_{i=1}^{M} x_i, \qquad \hat\sigma^2 = \frac1M \sum_{i=1}^{M} (x_i - \hat\mu)^2 .$$
#
# The authors' reference code uses the same mean, but divides the sum of squares by $M - 1$
# ($H W - 1$), not by $M$. Asked why, the authors answered that $H W - 1$ gives the unbiased
# estimate of the variance, $H W$ the biased one (authors' repository, issue 4). The package offers
# all three: `statistics="exact"` (leave one out),
# `"paper"` ($1/M$) and `"reference"` ($1/(M-1)$). To compare them we need to know exactly how the
# leave-one-out statistics relate to the channel ones.
#
# ### The down-date identities
#
# Let $S = \sum_{i=1}^{M} (x_i - \hat\mu)^2 = M\hat\sigma^2$ be the channel's sum of squares.
# Removing $t$ from the sum $M\hat\mu$ gives the mean of the others:
#
# $$\mu_t = \frac{M\hat\mu - t}{M - 1}.$$
#
# For their sum of squares about $\mu_t$, shift the centre from $\hat\mu$ to $\mu_t$. By the
# parallel-axis rule (the same cross-term argument as in section 1),
# $\sum_{i \ne t}(x_i - \mu_t)^2 = \sum_{i \ne t}(x_i - \hat\mu)^2 - (M-1)(\mu_t - \hat\mu)^2$.
# The first sum is $S - (t - \hat\mu)^2$. SymPy does the rest with $M$ symbolic:

# %%
M = sp.Symbol("M", integer=True, positive=True)
mu_hat, S = sp.symbols("muhat S", real=True)  # SymPy typesets "muhat" as a hatted mu
sigma2_hat = sp.Symbol("sigmahat^2", nonnegative=True)

loo_mean = (M * mu_hat - t) / (M - 1)
loo_sum_squares = sp.factor(
    (S - (t - mu_hat) ** 2) - (M - 1) * (loo_mean - mu_hat) ** 2
)
print("mu_t - mu_hat =")
display(sp.factor(loo_mean - mu_hat))
print("t - mu_t =")
display(sp.factor(t - loo_mean))
print("(M - 1) sigma_t^2 = sum over the others of (x_i - mu_t)^2 =")
assert sp.simplify(loo_sum_squares - (S - M * (t - mu_hat) ** 2 / (M - 1))) == 0
display(S - M * (t - mu_hat) ** 2 / (M - 1))

# %% [markdown]
# So, with $S = M\hat\sigma^2$,
#
# $$t - \mu_t = \frac{M}{M-1}(t - \hat\mu), \qquad
# (M-1)\,\sigma_t^2 = M\hat\sigma^2 - \frac{M}{M-1}(t - \hat\mu)^2 .$$
#
# These two identities are all the later analysis needs. They also make the exact statistics
# as cheap as the shared ones: one mean and one sum of squares per channel, then a constant
# amount of work per neuron. (This is how `leave_one_out_statistics` computes them.) Here is the
# check with five explicit neurons, the target being the fifth, and then on the random feature map:

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

# %% [markdown]
# ### A bound that falls out: how far a neuron can be from its channel's mean
#
# Since $\sigma_t^2 \ge 0$, the second identity gives
# $(t - \hat\mu)^2 \le (M - 1)\hat\sigma^2$. In terms of the standardised deviation
# $z = (t - \hat\mu)/\hat\sigma$,
#
# $$z^2 \le M - 1,$$
#
# with equality exactly when the other $M - 1$ neurons are all equal. This is Samuelson's
# inequality. It matters twice below. It limits the values of $z$ a small map can have, and it caps
# the attention weight.
#
# ### What equation (5) approximates
#
# Substituting the down-dates into the exact $e_t^* = 4(\sigma_t^2 + \lambda)/D_t$ expresses the
# exact minimal energy in terms of the channel's statistics. It reads best with the shorthand
# $d = t - \hat\mu$ for the target's distance from the channel mean:

# %%
loo_var_in_channel = (M * sigma2_hat - M * (t - mu_hat) ** 2 / (M - 1)) / (M - 1)
channel_substitution = {
    mu_t: loo_mean.subs(S, M * sigma2_hat),
    sigma2_t: loo_var_in_channel,
}
e_star_exact_channel = sp.factor(sp.cancel(e_star_derived.subs(channel_substitution)))

d = sp.Symbol("d", real=True)  # t - muhat
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


e_star_paper = e_star_shared(sigma2_hat)  # denominator M, as (5) prints
# denominator M - 1, as the reference code
e_star_reference = e_star_shared(M * sigma2_hat / (M - 1))
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
    sp.simplify(large_m_limit - e_star_paper.subs(t, mu_hat + d)),
)

# %% [markdown]
# $$e_t^* = \frac{4\,[M((M-1)\hat\sigma^2 - d^2) + (M-1)^2\lambda]}{M(M-2)\,d^2 + 2M(M-1)\,\hat\sigma^2 + 2(M-1)^2\lambda}.$$
#
# Dividing numerator and denominator by $M^2$ and letting $M \to \infty$ gives
# $4(\hat\sigma^2 + \lambda)/(d^2 + 2\hat\sigma^2 + 2\lambda)$, the printed (5). The last lines above
# confirm it. So (5), as printed with channel statistics, is **not** the minimum of (2). It is the
# large-$M$ limit of that minimum. The target's distance from the mean is
# under-estimated by the factor $(M-1)/M$, because $\hat\mu$ includes $t$ itself. The variance of
# the others is replaced by the channel's, which contains $t$'s own contribution. Both effects
# shrink as $1/M$.
#
# ### Importance, and which denominator is closer
#
# SimAM uses the *importance* $1/e_t^*$. The reference code divides the channel's sum of squares
# by $H W - 1 = M - 1$ where (5) prints $M$, and the authors explain the $H W - 1$ as the unbiased
# variance estimate (authors' repository, issue 4). Which denominator is better? The question has
# two parts with different answers, and this subsection settles both:
#
# 1. **Which neurons of a channel count as more important: the denominator changes nothing.** Within
#    one channel $M$, $\hat\sigma^2$ and $\lambda$ are fixed, and the exact importance, the paper's and
#    the reference code's are all increasing functions of the same squared deviation
#    $d^2 = (t - \hat\mu)^2$. All three rank the neurons of a channel identically.
# 2. **How large the importances are: the paper's $1/M$ is closer to the exact value.** Both shared
#    versions under-estimate the exact (leave-one-out) importance of every neuron, and the reference
#    code's $1/(M-1)$ under-estimates it more. Both errors shrink like $1/M$. For a neuron one
#    standard deviation from its channel's mean, the paper's error is 33% against the reference
#    code's 45% on a $2\times2$ map, and 0.07% against 0.10% on a $32\times32$ map; over the
#    neurons of random maps, the paper's error is typically 0.6 to 0.7 times the reference code's
#    (all computed below).
#
# A third fact completes the story, and [chapter 2](02_closed_form_vs_numeric.ipynb) measures it on real feature maps. *Across* the
# channels of a layer (same $M$, different variances) the reference code's importance is one and the
# same increasing function of the exact importance in every channel, so it orders all neurons of
# the layer as the exact energy does, for any $\lambda$. The paper's $1/M$ does so only for
# $\lambda = 0$. The reference code's denominator is farther from the exact value, but it is an
# exact monotone transform of it.
#
# **The ranking.** With $d^2$ as the variable and the channel's $M$, $\hat\sigma^2$, $\lambda$
# fixed, the slopes of the three importances are:

# %%
d2 = sp.Symbol("d^2", nonnegative=True)  # the squared deviation (t - muhat)^2
e_star_by_name = {
    "exact": e_star_exact_channel,
    "paper": e_star_paper,
    "reference": e_star_reference,
}
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
        dtype=torch.float64,
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
# **The values.** With $\lambda = 0$ and $t = \hat\mu + z\hat\sigma$, all three versions depend only
# on $M$ and $z$:

# %%
z = sp.Symbol("z", real=True)
sigma_hat = sp.Symbol("sigmahat", positive=True)
standardise = {t: mu_hat + z * sigma_hat, sigma2_hat: sigma_hat**2, lam: 0}
inverse = {
    "exact": sp.simplify(1 / e_star_exact_channel.subs(standardise)),
    "paper": sp.simplify(1 / e_star_paper.subs(standardise)),
    "reference": sp.simplify(1 / e_star_reference.subs(standardise)),
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
# **The paper's $1/M$ is always the closer of the two to the exact importance.** This is not a
# property of $\lambda = 0$ alone. For any $\lambda \ge 0$ the differences, exact minus paper and
# paper minus reference, factor into non-negative pieces:

# %%
quadratic_part = {
    "exact": sp.together(1 / e_star_exact_channel - sp.Rational(1, 2)),
    "paper": sp.together(1 / e_star_paper - sp.Rational(1, 2)),
    "reference": sp.together(1 / e_star_reference - sp.Rational(1, 2)),
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
# for typical deviations
# $z = 0.5, 1, 2, 3$ on square maps from $2\times2$ to $32\times32$. Entries with $z^2 > M - 1$
# cannot occur (Samuelson) and are left out. The last column, $\Delta\omega$, is what the network
# actually sees: the largest difference, over the listed $z$, between the attention weights
# $\operatorname{sigmoid}(1/e^*)$ with exact and with reference statistics.

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
# for $1 \le |z| \le 2$ and 15% to 17% at $|z| = 3$. On $32\times32$ maps it is below 1% for $|z| \le 3$. The same ratios as curves:

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
# The table assumed particular values of $z$. On actual data, the package gives the same picture.
# For random Gaussian maps of each size (64 channels, $\lambda = 10^{-4}$), here are the median and
# 99th percentile of the relative under-estimate of $1/e^*$ by each shared version, and the largest
# attention-weight difference from the exact version ("max Da"). The last column is the median,
# over the neurons, of the paper's under-estimate divided by the reference code's. The cell asserts
# that neither shared version over-estimates and that the paper's is the closer for every neuron.
# (The package's three `statistics` options are compared with each other; that the exact one is the
# true minimum was checked in section 2.)

# %%
print(
    f"{'map':>6} | {'paper: median':>13} {'p99':>9} {'max Da':>7} "
    f"| {'reference: median':>17} {'p99':>9} {'max Da':>7} | {'paper / ref':>11}"
)
for side in (2, 3, 4, 8, 16, 32):
    maps = torch.randn(1, 64, side, side, generator=generator, dtype=torch.float64)
    exact = simam.importance(maps, 1e-4, statistics="exact")
    shared = {
        name: simam.importance(maps, 1e-4, statistics=name)
        for name in ("paper", "reference")
    }
    assert (
        shared["paper"] >= shared["reference"]
    ).all()  # the paper's is closer, for every neuron
    shortfall = {name: exact / importance_ - 1 for name, importance_ in shared.items()}
    row = []
    for name in ("paper", "reference"):
        assert shortfall[name].min().item() > -1e-12  # shared never over-estimates
        weight_gap = (torch.sigmoid(exact) - torch.sigmoid(shared[name])).max().item()
        row.append(
            f"{shortfall[name].median().item():13.2e} "
            f"{shortfall[name].quantile(0.99).item():9.2e} {weight_gap:7.4f}"
        )
    error_ratio = (shortfall["paper"] / shortfall["reference"]).median().item()
    print(
        f"{f'{side}x{side}':>6} | " + f" | {'':4}".join(row) + f" | {error_ratio:11.2f}"
    )
z_squared = (
    (
        (maps - maps.mean((2, 3), keepdim=True)) ** 2
        / maps.var((2, 3), correction=0, keepdim=True)
    )
    .median()
    .item()
)
print(
    f"median z^2 over the 32x32 maps' neurons: {z_squared:.2f}, "
    f"where (1 + z^2)/(2 + z^2) = {(1 + z_squared) / (2 + z_squared):.2f}"
)

# %% [markdown]
# The medians follow the analytic table. The paper's under-estimate is, in the median, 0.59 to 0.71
# times the reference code's: near $(1+z^2)/(2+z^2)$ at the median $z^2$ of a Gaussian neuron
# (the last line). The 99th percentiles on the smallest maps are large
# because a Gaussian $2\times2$ channel sometimes has three nearly equal neurons. Then
# $\sigma_t^2 \approx 0$, the target is nearly a perfect spike against its neighbours, and the exact
# importance is very large, while the shared statistics, which include the target, cannot see
# this. The weight differences in the "max Da" columns reach 0.24 (paper) and 0.27 (reference) at
# $2\times2$, and about 0.001 at $32\times32$.
#
# **Across the channels of a layer.** The reference code's importance is $r/4 + 1/2$ with
# $r = d^2/(S/(M-1) + \lambda)$, and by the down-dates the exact importance is a function of $r$
# and $M$ alone, for every $\lambda$ ([chapter 2](02_closed_form_vs_numeric.ipynb) derives it). So within a layer of maps of one size
# the reference code's importance is an increasing function of the exact one, the same function in
# every channel, while the paper's, which weighs $\lambda$ against $S/M$, is so only for
# $\lambda = 0$. On one layer with channels of different scales, here is how many pairs of neurons
# each shared version orders differently from the exact importance:

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
scales = torch.linspace(0.05, 2.0, 64, dtype=torch.float64).reshape(1, 64, 1, 1)
layer = scales * torch.randn(
    1, 64, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64
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
# $\lambda = 10^{-4}$, about a thousand at $\lambda = 0.1$, mostly involving channels of small
# variance, where $\lambda$ matters. Within a channel (the check before the table) both keep it.
# One more fact, about cost: **speed is no reason for the approximation.** Thanks to the
# down-dates, the exact version costs one mean and one sum of squares per channel, the same as the
# shared ones.

# %% [markdown]
# **Verdict on (5):** the form $4(\sigma_t^2 + \lambda)/((t-\mu_t)^2 + 2\sigma_t^2 + 2\lambda)$ is
# the exact minimum of (2) with the leave-one-out $\mu_t, \sigma_t^2$. With the channel's $\hat\mu$
# and $\hat\sigma^2$ in their place, as printed, it is an approximation. It always over-estimates
# $e_t^*$ (under-estimates the importance), by a relative amount
# $z^2(1+z^2)/((M-1-z^2)(2+z^2))$ when $\lambda = 0$. That is large on $2\times2$ and $3\times3$
# maps and below 1% on $32\times32$ maps for $|z| \le 3$. On the denominator: $H W - 1$ and the
# printed $M$ rank the neurons of a channel identically; in value, $H W - 1$ is *farther* from the
# exact energy than $1/M$, for every neuron. It is not an unbiased-variance refinement of (5):
# unbiasedness concerns estimating a population's variance from a sample, while (2) asks for the
# variance of the other $M - 1$ neurons themselves, which the down-date gives exactly. It is a
# second, slightly larger approximation, which orders the neurons of a whole layer as the exact
# energy does. The paper's published numbers come from it.
#
# ## 4. The importance $1/e_t^*$ and the refinement (6)
#
# Inverting the form of (5) splits the importance into a distance term and a constant. The cell does
# it for a general mean and variance, the SymPy symbols `mu` and `sigma^2`, since the form is the
# same whichever statistics go into it:

# %%
mu_sym, sigma2_sym = sp.symbols("mu sigma^2", positive=True)
e_star_form = 4 * (sigma2_sym + lam) / ((t - mu_sym) ** 2 + 2 * sigma2_sym + 2 * lam)
importance_form = (t - mu_sym) ** 2 / (sigma2_sym + lam) / 4 + sp.Rational(1, 2)
assert sp.simplify(1 / e_star_form - importance_form) == 0
print("1/e_t* =")
display(importance_form)

# %% [markdown]
# With the channel's mean $\hat\mu$ and the variance $s^2 = S/(M-1)$, the sum of squares divided by
# $H W - 1$, it reads
#
# $$\frac{1}{e_t^*} = \frac{(t - \hat\mu)^2}{4(s^2 + \lambda)} + \frac12 ,$$
#
# which is exactly what the reference code computes. (With $\hat\sigma^2$ in place of $s^2$ it is
# the inverse of the printed (5); with $\mu_t$ and $\sigma_t^2$ in place of $\hat\mu$ and $s^2$, the
# exact importance.) The refinement (6) multiplies every neuron by the sigmoid of its importance:
#
# $$\tilde X = \operatorname{sigmoid}\!\left(\frac{1}{E}\right) \odot X, \tag{6}$$
#
# where $E$ holds the $e_t^*$ of all neurons of all channels. It is a definition. There is nothing
# to derive, only to check. `simam.importance` must equal $1/$`simam.minimal_energy` for every
# choice of statistics, and with `statistics="reference"` it must equal the reference code's
# formula, which we write out directly in torch:

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
# Measured in units of its channel's spread, what SimAM does to a neuron depends on three numbers
# only: its standardised deviation $z = (t - \hat\mu)/\hat\sigma$ (with the paper's $\hat\sigma^2$,
# denominator $M$), the channel size $M$, and $\lambda/\hat\sigma^2$, since $\lambda$ acts only
# relative to the channel's variance. With the reference code's statistics the module's weight is
#
# $$\operatorname{sigmoid}\left(\frac{z^2}{4\,\bigl(M/(M-1) + \lambda/\hat\sigma^2\bigr)} + \frac12\right).$$
#
# The next cell turns the three energies of section 3 into weight curves of $(M, z, \lambda)$, with
# $\hat\sigma = 1$, and checks them against `simam.SimAM` on constructed channels: random values
# standardised to mean 0 and variance 1, so that each value *is* its neuron's $z$.

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
        1, 1, m, generator=torch.Generator().manual_seed(m), dtype=torch.float64
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
        [curve(m, zv, lambda_) for zv in values.flatten().tolist()], dtype=torch.float64
    )
    check_close(
        f"SimAM(lambda_={lambda_:g}, exact={exact}) vs the weight curve, M = {m}",
        simam.SimAM(lambda_=lambda_, exact=exact)(values),
        values * on_curve.reshape(values.shape),
    )

# %% [markdown]
# The curves, with the constructed channels' neurons as dots. On the left the module's weight
# (reference statistics) on $8\times8$ maps for three values of $\lambda/\hat\sigma^2$; on the right
# for several map sizes at $\lambda = 10^{-4}\hat\sigma^2$, the reference code's weight solid and the
# exact one dashed, each curve ending where Samuelson's bound $z^2 \le M - 1$ ends the possible
# deviations.

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
# and rises with $z^2$; a neuron two standard deviations out already gets about 0.82, three out
# about 0.94. The weight is a function of $z$ alone, whatever the channel's scale, as long as
# $\lambda \ll \hat\sigma^2$: the paper's CIFAR value $\lambda = 10^{-4}$ is negligible for any channel
# whose variance is well above $10^{-4}$. A large $\lambda/\hat\sigma^2$ flattens the curve, so
# channels of small variance are pulled towards the floor $0.62$. From $8\times8$ maps on, the map
# size hardly matters for the reference code's weight. On smaller maps its curve is lower (the
# factor $(M-1)/M$ in front of $z^2$) and ends early, at $|z| = \sqrt 3$ on $2\times2$ maps, while the
# exact weight rises much faster there: the gap that section 3 measured.

# %% [markdown]
# ### The range of the attention weight
#
# **Lower bound, for any input.** The distance term is non-negative, so $1/e_t^* \ge 1/2$, and the
# weight is at least $\operatorname{sigmoid}(1/2) \approx 0.6225$. A neuron exactly at its channel's mean
# gets this weight. SimAM never damps a neuron below 62% of its value. It acts as a soft gate
# between 0.62 and 1, not between 0 and 1. (A user of the reference code asked whether so narrow a
# range limits the attention, reading it as $(0.5, 1)$ from the sigmoid of a positive number; the
# floor is in fact 0.62; authors' repository, issue 4.)
#
# **Upper bound, which depends on $M$.** With shared statistics and $\lambda = 0$,
# Samuelson's bound $(t-\hat\mu)^2 \le (M-1)\hat\sigma^2$ caps the importance:
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
spike_bound = {
    "paper": (M - 1) / 4 + sp.Rational(1, 2),
    "reference": (M - 1) ** 2 / M / 4 + sp.Rational(1, 2),
}
for name, expression in spike_bound.items():
    assert sp.simplify(inverse[name].subs(z, sp.sqrt(M - 1)) - expression) == 0
    print(f"largest 1/e* with {name} statistics (at z^2 = M - 1) =")
    display(expression)
print("exact 1/e* as z^2 approaches M - 1, for M = 4 and M = 1024:")
display(
    [
        sp.limit(inverse["exact"].subs(M, m), z, sp.sqrt(m - 1), dir="-")
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
    spike = torch.zeros(1, 1, side, side, dtype=torch.float64)
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

spike = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
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
# For a random map the weights fill part of this range. The quick look below takes one Gaussian
# channel per size:

# %%
print(f"{'map':>6} | {'smallest weight':>15} {'largest weight':>15}")
for side in (2, 4, 8, 32):
    weights = torch.sigmoid(
        simam.importance(
            torch.randn(1, 1, side, side, generator=generator, dtype=torch.float64)
        )
    )
    assert weights.min().item() >= sigmoid(0.5) - 1e-12
    assert (
        weights.max().item()
        <= sigmoid(bound_functions["reference"](side * side)) + 1e-12
    )
    print(
        f"{f'{side}x{side}':>6} | {weights.min().item():15.4f} "
        f"{weights.max().item():15.4f}"
    )

# %% [markdown]
# All numerical checks of this chapter, with the largest absolute difference each one found, and the
# largest difference relative to the size of the values compared (taken as at least 1). The
# differences are round-off and vary slightly between machines, so this cell's output is not
# compared when the notebook is tested; its assertion bounds them instead.

# %% tags=["nbval-ignore-output"]
for name, (difference, _size) in CHECKS.items():
    print(f"{difference:9.2e}  {name}")
largest_relative = max(
    difference / max(size, 1.0) for difference, size in CHECKS.values()
)
print(f"{len(CHECKS)} checks; largest relative difference: {largest_relative:.1e}")
assert largest_relative < 1e-10

# %% [markdown]
# ## 5. The verdicts, equation by equation
#
# | equation | what the paper prints | verdict | evidence |
# | --- | --- | --- | --- |
# | (1) | energy of neuron $t$ against labels $y_t, y_o$ | **holds** (a definition) | the sum over the others equals $(y_o - w_t\mu_t - b_t)^2 + w_t^2\sigma_t^2$ exactly (cross term $\sum_i\delta_i = 0$), checked symbolically for $M = 2 \dots 9$; its regularised minimum is $(y_t-y_o)^2(\sigma_t^2+\lambda)/D_t$ |
# | (2) | (1) with $y_t = 1$, $y_o = -1$, plus $\lambda w_t^2$ | **holds** | (2) $-$ (1) $= \lambda w_t^2$ symbolically; strictly convex when $\sigma_t^2 + \lambda > 0$ (Hessian determinant $4D_t$); `simam.energy.energy` equals the literal sum |
# | (3) | $w_t = -2(t-\mu_t)/D_t$ | **does not hold: wrong sign**; correct is $w_t = +2(t-\mu_t)/D_t$, as the authors confirm (issue 11) | derived $+$ printed $= 0$; the printed form is the minimiser for swapped labels; it exceeds the minimum by $8(t-\mu_t)^2/D_t$ (example $3,0,1,0$: energy $130/17$ instead of $2/17$; the energy landscape of a 5-neuron channel shows the printed pair on the far side of the bowl) |
# | (4) | $b_t = -\tfrac12(t+\mu_t)w_t$ | **holds** (for any $w_t$) | $\partial e_t/\partial b_t = 0$ at that $b_t$ identically |
# | (5) | $e_t^* = 4(\hat\sigma^2+\lambda)/((t-\hat\mu)^2+2\hat\sigma^2+2\lambda)$ with channel statistics | **holds exactly with leave-one-out statistics; with channel statistics an approximation** | exact form in channel statistics derived; it under-estimates $1/e^*$ by $z^2(1+z^2)/((M-1-z^2)(2+z^2))$ ($\lambda = 0$), at $z = 1$ 33% on $2\times2$ maps and 0.07% on $32\times32$; the reference code's $H W - 1$ ranks the neurons of a channel exactly as $1/M$ and the exact energy do, but is farther from the exact value than $1/M$, for every neuron (at $z = 1$ on large maps the error with $1/M$ is two thirds of that with $H W - 1$) |
# | (6) | $\tilde X = \operatorname{sigmoid}(1/E) \odot X$ | **holds** (a definition) | $1/e_t^* = (t-\hat\mu)^2/(4(s^2+\lambda)) + \tfrac12$ with the reference code's $s^2$; `simam.importance` equals $1/$`minimal_energy` and the reference formula; weights lie in $[0.6225,\ \operatorname{sigmoid}((M-1)^2/(4M)+\tfrac12)]$, only $[0.6225, 0.7432]$ on $2\times2$ maps |
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
#           = 4 ((M-1)^2 - M r) / (M (M-2) r + 2 (M-1)^2),   r = 4 I - 2,
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
