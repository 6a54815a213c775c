"""Checks of simam.energy against equation (2) of the paper, evaluated from its definition.

The reference values here never reuse the library's rewriting of the equation: equation (2) is
summed over the M - 1 other neurons directly (an O(M^2) broadcast), statistics come from NumPy on
explicitly removed neurons, and minima come from numerical optimisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simam.energy import (
    STATISTICS,
    NumericMinimum,
    channel_statistics,
    check_feature_map,
    check_lambda,
    closed_form_minimiser,
    energy,
    importance,
    leave_one_out_statistics,
    minimal_energy,
    neurons_per_channel,
    numeric_minimiser,
    spatial_dims,
)

SHAPES = [(2, 3, 7), (2, 3, 4, 5), (1, 2, 3, 2, 4)]  # 1-D, 2-D and 3-D spatial layouts
LAMBDAS = [0.0, 1e-4, 0.1, 2.0]


def random_map(shape, seed, scale=1.0, offset=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype) * scale + offset


# ----------------------------------------------------------------------------------------------
# Brute-force references, written from the definitions in the paper.
# ----------------------------------------------------------------------------------------------


def brute_energy(x, w, b, lambda_):
    """Equation (2) for every target t, summing over the M - 1 other neurons one by one.

    x, w, b: arrays of shape (N, C, M). Axis -2 of the pair tables indexes the target t, axis -1
    the neuron i it is compared with; the diagonal (i = t) is excluded.
    """
    x, w, b = (np.asarray(a, dtype=np.float64) for a in (x, w, b))
    m = x.shape[-1]
    others = ~np.eye(m, dtype=bool)
    x_hat_i = w[..., :, None] * x[..., None, :] + b[..., :, None]  # w_t x_i + b_t
    pair_terms = (-1.0 - x_hat_i) ** 2
    others_term = np.where(others, pair_terms, 0.0).sum(axis=-1) / (m - 1)
    target_term = (1.0 - (w * x + b)) ** 2
    return others_term + target_term + lambda_ * w**2


def brute_leave_one_out(x):
    """Mean and variance (denominator M - 1) of the other M - 1 neurons, for every target."""
    x = np.asarray(x, dtype=np.float64)
    n, c, m = x.shape
    mean = np.empty_like(x)
    var = np.empty_like(x)
    for i in range(n):
        for j in range(c):
            for t in range(m):
                rest = np.delete(x[i, j], t)
                mean[i, j, t] = rest.mean()
                var[i, j, t] = ((rest - rest.mean()) ** 2).sum() / (m - 1)
    return mean, var


def flat(x: torch.Tensor) -> np.ndarray:
    """(N, C, *spatial) -> NumPy (N, C, M)."""
    return x.detach().reshape(x.shape[0], x.shape[1], -1).numpy()


def assert_within(actual, expected, tolerance, what=""):
    """|actual - expected| <= tolerance elementwise (tolerance broadcasts); inf must match inf."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    same = actual == expected  # also covers equal infinities
    error = np.where(same, 0.0, np.abs(actual - expected))
    tolerance = np.broadcast_to(tolerance, error.shape)
    bad = ~(error <= tolerance)
    if bad.any():
        worst = np.max(error[bad] / tolerance[bad])
        raise AssertionError(f"{what}: {bad.sum()} values off, worst error/tolerance {worst:.3g}")


def energy_scale(x, w, b):
    """Size of the terms of equation (2) at (w, b): round-off in them is relative to this."""
    xmax = x.abs().amax(dim=spatial_dims(x), keepdim=True)
    return (1.0 + w.abs() * xmax + b.abs()) ** 2


# Hypothesis: float64 feature maps with bounded, finite elements. Magnitudes below 1e-6 are
# replaced by 0 so that squared differences never underflow (a float64 limit, not a library one).
elements = st.floats(
    min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False, allow_subnormal=False
)
elements = elements.map(lambda v: v if abs(v) >= 1e-6 else 0.0)
feature_maps = hnp.arrays(
    np.float64,
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(2, 9)),
    elements=elements,
)
lambdas = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=10.0))
PROPERTY = settings(max_examples=60, deadline=None)


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_leave_one_out_statistics_equal_those_of_the_other_neurons(shape):
    x = random_map(shape, seed=1, scale=3.0, offset=2.0)
    mean, var = leave_one_out_statistics(x)
    assert mean.shape == x.shape and var.shape == x.shape
    ref_mean, ref_var = brute_leave_one_out(flat(x))
    np.testing.assert_allclose(flat(mean), ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(flat(var), ref_var, rtol=1e-10, atol=1e-12)


@PROPERTY
@given(feature_maps)
def test_leave_one_out_statistics_property(a):
    x = torch.from_numpy(a)
    mean, var = leave_one_out_statistics(x)
    ref_mean, ref_var = brute_leave_one_out(a)
    spread = np.ptp(a, axis=-1, keepdims=True)
    assert_within(mean.numpy(), ref_mean, 1e-13 * (1 + np.abs(a).max()), "mean")
    assert_within(
        var.numpy(), ref_var, 1e-9 * np.abs(ref_var) + 1e-13 * (1e-6 + spread**2), "variance"
    )
    assert (var >= 0).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("correction", [0, 1])
def test_channel_statistics_match_numpy(shape, correction):
    x = random_map(shape, seed=2, scale=2.0, offset=-1.0)
    mean, var = channel_statistics(x, correction=correction)
    assert mean.shape == var.shape == x.shape[:2] + (1,) * (x.dim() - 2)
    a = flat(x)
    np.testing.assert_allclose(mean.reshape(a.shape[:2]).numpy(), a.mean(-1), rtol=1e-13)
    np.testing.assert_allclose(
        var.reshape(a.shape[:2]).numpy(), a.var(-1, ddof=correction), rtol=1e-12
    )


# ----------------------------------------------------------------------------------------------
# Equation (2) and its rewriting through the mean and variance of the other neurons
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", LAMBDAS)
def test_energy_equals_bruteforce_equation_2(shape, lambda_):
    x = random_map(shape, seed=3, scale=2.0, offset=0.5)
    w = random_map(shape, seed=4)
    b = random_map(shape, seed=5, scale=3.0)
    e = energy(x, w, b, lambda_)
    assert e.shape == x.shape and e.dtype == torch.float64
    expected = brute_energy(flat(x), flat(w), flat(b), lambda_)
    np.testing.assert_allclose(flat(e), expected, rtol=1e-12, atol=1e-12)


def test_energy_broadcasts_scalar_and_per_channel_parameters():
    x = random_map((2, 3, 4, 4), seed=6)
    # scalars
    np.testing.assert_allclose(
        flat(energy(x, 0.7, -0.2, 0.1)),
        brute_energy(flat(x), np.full(flat(x).shape, 0.7), np.full(flat(x).shape, -0.2), 0.1),
        rtol=1e-12,
    )
    # one (w, b) per channel
    w = random_map((1, 3, 1, 1), seed=7)
    b = random_map((1, 3, 1, 1), seed=8)
    expected = brute_energy(flat(x), flat(w.expand_as(x)), flat(b.expand_as(x)), 0.1)
    np.testing.assert_allclose(flat(energy(x, w, b, 0.1)), expected, rtol=1e-12)
    # at w = b = 0 every term of equation (2) is 1: energy 2, whatever lambda
    assert torch.equal(energy(x, 0.0, 0.0, 5.0), torch.full_like(x, 2.0))


@PROPERTY
@given(feature_maps, lambdas, st.integers(0, 2**32 - 1))
def test_energy_equals_bruteforce_property(a, lambda_, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=a.shape) * rng.choice([0.01, 1.0, 10.0])
    b = rng.normal(size=a.shape) * rng.choice([0.01, 1.0, 10.0])
    x = torch.from_numpy(a)
    e = energy(x, torch.from_numpy(w), torch.from_numpy(b), lambda_)
    scale = energy_scale(x, torch.from_numpy(w), torch.from_numpy(b)).numpy()
    assert_within(e.numpy(), brute_energy(a, w, b, lambda_), 1e-12 * scale, "energy")


# ----------------------------------------------------------------------------------------------
# The closed-form minimiser
# ----------------------------------------------------------------------------------------------


def assert_is_stationary(x, lambda_):
    w, b = closed_form_minimiser(x, lambda_)
    w = w.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    # Each neuron's energy depends on its own (w, b) only, so the gradient of the sum holds the
    # partial derivatives of every neuron's energy.
    energy(x, w, b, lambda_).sum().backward()
    xmax = x.abs().amax(dim=spatial_dims(x), keepdim=True)
    tolerance = 1e-11 * (1 + xmax) * energy_scale(x, w.detach(), b.detach())
    assert (w.grad.abs() <= tolerance).all(), (w.grad.abs() / tolerance).max()
    assert (b.grad.abs() <= tolerance).all(), (b.grad.abs() / tolerance).max()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", LAMBDAS)
def test_gradient_vanishes_at_closed_form(shape, lambda_):
    assert_is_stationary(random_map(shape, seed=9, scale=2.0, offset=1.0), lambda_)


@PROPERTY
@given(feature_maps, lambdas)
def test_gradient_vanishes_at_closed_form_property(a, lambda_):
    assert_is_stationary(torch.from_numpy(a), lambda_)


def assert_minimal_energy_is_attained(x, lambda_):
    w, b = closed_form_minimiser(x, lambda_)
    attained = energy(x, w, b, lambda_)
    formula = minimal_energy(x, lambda_, statistics="exact")
    tolerance = 1e-12 * energy_scale(x, w, b)
    assert ((attained - formula).abs() <= tolerance).all(), (
        (attained - formula).abs() / tolerance
    ).max()
    assert (formula >= 0).all() and (formula <= 2).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", LAMBDAS)
def test_minimal_energy_formula_equals_energy_at_minimiser(shape, lambda_):
    assert_minimal_energy_is_attained(random_map(shape, seed=10, scale=0.5, offset=-3.0), lambda_)


@PROPERTY
@given(feature_maps, lambdas)
def test_minimal_energy_formula_equals_energy_at_minimiser_property(a, lambda_):
    assert_minimal_energy_is_attained(torch.from_numpy(a), lambda_)


@pytest.mark.parametrize("lambda_", LAMBDAS)
@pytest.mark.parametrize("size", [1e-6, 1e-3, 0.1, 1.0, 10.0])
def test_closed_form_is_a_minimum_under_perturbations(lambda_, size):
    x = random_map((2, 3, 5, 5), seed=11, scale=1.5)
    w, b = closed_form_minimiser(x, lambda_)
    best = energy(x, w, b, lambda_)
    loo_mean, loo_var = leave_one_out_statistics(x)
    for seed in range(5):
        dw = random_map(x.shape, seed=100 + seed, scale=size)
        db = random_map(x.shape, seed=200 + seed, scale=size)
        perturbed = energy(x, w + dw, b + db, lambda_)
        # Equation (2) is quadratic in (w, b) and its gradient vanishes at the minimiser, so the
        # increase is exactly the quadratic part: a sum of squares, never negative.
        increase = (
            (db + dw * loo_mean).square()
            + dw.square() * loo_var
            + (dw * x + db).square()
            + lambda_ * dw.square()
        )
        tolerance = 1e-12 * energy_scale(x, w + dw, b + db)
        assert (perturbed >= best - tolerance).all()
        assert ((perturbed - best - increase).abs() <= tolerance).all()
        # ... and strictly positive: with a variance in every channel the minimiser is unique
        assert (increase > 0).all()


def test_sign_of_w_is_opposite_to_the_papers_equation_3():
    """Labels y_t = +1, y_o = -1: the target must come out positive, the others negative."""
    x = random_map((2, 4, 6, 6), seed=12, scale=2.0)
    lambda_ = 1e-4
    w, b = closed_form_minimiser(x, lambda_)
    loo_mean, _ = leave_one_out_statistics(x)
    assert torch.equal(torch.sign(w), torch.sign(x - loo_mean))
    target_output = w * x + b
    others_mean_output = w * loo_mean + b
    assert ((target_output >= 0) & (target_output < 1)).all()
    assert ((others_mean_output <= 0) & (others_mean_output > -1)).all()
    # The sign printed in equation (3), with b from equation (4), is strictly worse wherever
    # t != mu_t.
    w_paper = -w
    b_paper = -0.5 * (x + loo_mean) * w_paper
    assert (energy(x, w_paper, b_paper, lambda_) > energy(x, w, b, lambda_)).all()


# ----------------------------------------------------------------------------------------------
# Agreement with numerical minimisation
# ----------------------------------------------------------------------------------------------

NUMERIC_CASES = [
    # shape, lambda, scale, offset, seed
    ((2, 3, 4, 4), 1e-4, 1.0, 0.0, 20),
    ((1, 4, 9), 0.1, 3.0, -1.0, 21),
    ((2, 2, 2, 3, 3), 1.0, 0.5, 0.3, 22),
    ((3, 2, 5), 0.0, 2.0, 1.0, 23),
    ((1, 3, 6, 6), 1e-2, 10.0, 0.0, 24),
    ((2, 2, 8), 1e-4, 0.3, 0.5, 25),
    ((1, 2, 2), 0.5, 1.0, 0.0, 26),
]


@pytest.mark.parametrize(("shape", "lambda_", "scale", "offset", "seed"), NUMERIC_CASES)
def test_closed_form_equals_lbfgs_minimum(shape, lambda_, scale, offset, seed):
    x = random_map(shape, seed=seed, scale=scale, offset=offset)
    found = numeric_minimiser(x, lambda_, method="lbfgs", steps=80)
    assert isinstance(found, NumericMinimum)
    w, b = closed_form_minimiser(x, lambda_)
    best = minimal_energy(x, lambda_, statistics="exact")
    # the optimiser never beats the closed form, and reaches it
    assert (found.energy >= best - 1e-12).all()
    np.testing.assert_allclose(found.energy.numpy(), best.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(found.w.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(found.b.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # history: starts at w = b = 0 (energy 2 for every neuron), decreases, ends at the minimum
    assert len(found.history) == 81
    assert found.history[0] == 2.0
    assert all(later <= earlier + 1e-12 for earlier, later in zip(found.history, found.history[1:]))
    assert found.history[-1] == pytest.approx(best.mean().item(), abs=1e-9)


def test_closed_form_equals_adam_minimum():
    # Adam with a constant step size does not settle exactly: near the minimum its normalised
    # steps keep a size of order lr and the iterate can wander off again. The tolerances allow
    # for that; this seeded case happens to be within 1e-13 after 300 steps.
    x = random_map((1, 2, 3, 3), seed=27)
    found = numeric_minimiser(x, 0.1, method="adam", steps=300)
    w, b = closed_form_minimiser(x, 0.1)
    best = minimal_energy(x, 0.1)
    assert (found.energy >= best - 1e-12).all()
    np.testing.assert_allclose(found.energy.numpy(), best.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(found.w.numpy(), w.numpy(), rtol=0, atol=1e-2)
    np.testing.assert_allclose(found.b.numpy(), b.numpy(), rtol=0, atol=1e-2)
    assert found.history[0] == 2.0 and found.history[-1] < found.history[0]


def test_numeric_minimiser_leaves_input_alone_and_counts_steps():
    x = random_map((1, 2, 4), seed=28).requires_grad_(True)
    before = x.detach().clone()
    found = numeric_minimiser(x, 0.1, method="sgd", steps=3)
    assert torch.equal(x.detach(), before) and x.grad is None
    assert len(found.history) == 4 and found.w.shape == x.shape and not found.w.requires_grad
    assert numeric_minimiser(x, 0.1, steps=0).history == [2.0]


# ----------------------------------------------------------------------------------------------
# Minimal energy, importance and the shared-statistics forms
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statistics", STATISTICS)
@pytest.mark.parametrize("lambda_", LAMBDAS)
def test_importance_is_reciprocal_of_minimal_energy(statistics, lambda_):
    x = random_map((2, 3, 5, 4), seed=30, scale=2.0)
    imp = importance(x, lambda_, statistics=statistics)
    e = minimal_energy(x, lambda_, statistics=statistics)
    np.testing.assert_allclose(imp.numpy(), 1 / e.numpy(), rtol=1e-12)
    assert (imp >= 0.5).all()


@PROPERTY
@given(feature_maps, lambdas, st.sampled_from(STATISTICS))
def test_importance_is_reciprocal_of_minimal_energy_property(a, lambda_, statistics):
    x = torch.from_numpy(a)
    imp = importance(x, lambda_, statistics=statistics).numpy()
    e = minimal_energy(x, lambda_, statistics=statistics).numpy()
    assert (imp >= 0.5).all() and (e <= 2).all() and (e >= 0).all()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(imp, 1 / e, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", [0.0, 1e-4, 0.1])
def test_shared_statistics_follow_equation_5_and_the_reference_code(shape, lambda_):
    x = random_map(shape, seed=31, scale=2.0, offset=1.0)
    a = flat(x)
    for statistics, ddof in [("paper", 0), ("reference", 1)]:
        mu = a.mean(-1, keepdims=True)
        var = a.var(-1, ddof=ddof, keepdims=True)
        # equation (5) as printed, with the statistics of the whole channel
        e5 = 4 * (var + lambda_) / ((a - mu) ** 2 + 2 * var + 2 * lambda_)
        np.testing.assert_allclose(flat(minimal_energy(x, lambda_, statistics)), e5, rtol=1e-12)
        # the reference code's argument of the sigmoid: d / (4 (v + lambda)) + 0.5
        d = (a - mu) ** 2
        v = d.sum(-1, keepdims=True) / (a.shape[-1] - ddof)
        reference_code = d / (4 * (v + lambda_)) + 0.5
        np.testing.assert_allclose(
            flat(importance(x, lambda_, statistics)), reference_code, rtol=1e-12
        )


def test_exact_and_shared_forms_converge_as_m_grows():
    """The shared statistics differ from the leave-one-out ones by O(1/M) per neuron."""
    g = torch.Generator().manual_seed(32)
    sizes = [4, 16, 64, 256, 1024]
    for lambda_ in [1e-4, 0.1]:
        max_gaps, mean_gaps = [], []
        for m in sizes:
            x = torch.randn((4, 8, m), generator=g, dtype=torch.float64)
            exact = importance(x, lambda_, statistics="exact")
            shared = importance(x, lambda_, statistics="reference")
            gap = (exact - shared).abs() / exact
            max_gaps.append(gap.max().item())
            mean_gaps.append(gap.mean().item())
        # strictly shrinking, by a factor near 4 for each 4-fold M (the largest gap, at the most
        # extreme neuron, also grows slowly with how extreme the largest of 32 M draws is)
        for m, small, big in zip(sizes, max_gaps[1:], max_gaps):
            assert 1.5 < big / small < 8, (m, big, small)
        assert max_gaps[0] / max_gaps[-1] > 30
        assert all(0.5 < m * gap < 40 for m, gap in zip(sizes, max_gaps))
        # the typical gap is ~ 1/M
        assert all(0.5 < m * gap < 2 for m, gap in zip(sizes[1:], mean_gaps[1:]))


def test_paper_and_reference_statistics_differ_only_in_the_variance_denominator():
    x = random_map((1, 2, 5), seed=33)
    m = 5
    mean0, var0 = channel_statistics(x, correction=0)
    mean1, var1 = channel_statistics(x, correction=1)
    assert torch.equal(mean0, mean1)
    torch.testing.assert_close(var1, var0 * m / (m - 1), rtol=1e-14, atol=0)


# ----------------------------------------------------------------------------------------------
# Layouts and dtypes
# ----------------------------------------------------------------------------------------------


def all_outputs(x, lambda_=0.1):
    w, b = closed_form_minimiser(x, lambda_)
    outputs = {"w": w, "b": b, "energy": energy(x, w, b, lambda_)}
    outputs["loo_mean"], outputs["loo_var"] = leave_one_out_statistics(x)
    for statistics in STATISTICS:
        outputs[f"e_{statistics}"] = minimal_energy(x, lambda_, statistics)
        outputs[f"importance_{statistics}"] = importance(x, lambda_, statistics)
    return outputs


@pytest.mark.parametrize("shape", SHAPES)
def test_spatial_layouts_agree_with_the_flattened_map(shape):
    x = random_map(shape, seed=40)
    flattened = x.reshape(shape[0], shape[1], -1)
    assert neurons_per_channel(x) == flattened.shape[-1]
    assert spatial_dims(x) == tuple(range(2, len(shape)))
    for name, value in all_outputs(x).items():
        assert value.shape == x.shape, name
        expected = all_outputs(flattened)[name]
        torch.testing.assert_close(value.reshape(flattened.shape), expected, rtol=1e-13, atol=1e-13)


def test_samples_and_channels_are_independent():
    x = random_map((3, 4, 5, 5), seed=41, scale=2.0)
    batched = all_outputs(x)
    for n in range(3):
        for c in range(4):
            alone = all_outputs(x[n : n + 1, c : c + 1])
            for name, value in alone.items():
                torch.testing.assert_close(
                    batched[name][n : n + 1, c : c + 1], value, rtol=1e-13, atol=1e-13
                )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_lower_precision_keeps_dtype_and_is_close_to_float64(dtype):
    x64 = random_map((2, 3, 4, 4), seed=42)
    low = all_outputs(x64.to(dtype))
    high = all_outputs(x64)
    tolerance = {torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}[dtype]
    for name in ["e_exact", "e_reference", "importance_reference", "w"]:
        assert low[name].dtype == dtype
        torch.testing.assert_close(low[name].double(), high[name], rtol=tolerance, atol=tolerance)


# ----------------------------------------------------------------------------------------------
# Edge cases
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 2, 7), (2, 2, 3, 3), (1, 2, 2, 2, 3)])
@pytest.mark.parametrize("lambda_", [0.0, 1e-4, 1.0])
@pytest.mark.parametrize("value", [0.1, 0.7, -123.456, 0.0])
def test_constant_channels(shape, lambda_, value):
    """A constant channel: every neuron is unremarkable, e* = 2 and importance 1/2 exactly.

    With lambda = 0 every term is 0/0 in the formulas; the documented values are the true minimum
    of equation (2), 2, reached by the minimum-norm minimiser w = b = 0. 0.1 and 0.7 have means
    that do not round-trip through a plain mean (e.g. seven 0.1), which must not matter.
    """
    x = random_map(shape, seed=43)
    x[:, 0] = value  # channel 0 constant, channel 1 random
    for statistics in STATISTICS:
        e = minimal_energy(x, lambda_, statistics)
        imp = importance(x, lambda_, statistics)
        assert torch.isfinite(e).all() and torch.isfinite(imp).all()
        assert (e[:, 0] == 2).all(), statistics
        assert (imp[:, 0] == 0.5).all(), statistics
        assert (e[:, 1] < 2).all()
    w, b = closed_form_minimiser(x, lambda_)
    assert (w[:, 0] == 0).all() and (b[:, 0] == 0).all()
    assert (energy(x, w, b, lambda_)[:, 0] == 2).all()
    mean, var = leave_one_out_statistics(x)
    assert (mean[:, 0] == value).all() and (var[:, 0] == 0).all()
    mean, var = channel_statistics(x, correction=1)
    assert (mean[:, 0] == value).all() and (var[:, 0] == 0).all()


def test_one_neuron_apart_from_equal_others_with_lambda_zero():
    """The others have no variance: with lambda = 0 the target separates perfectly, e* = 0."""
    x = torch.tensor([[[0.3, 0.3, 0.3, 1.3]]], dtype=torch.float64)
    e = minimal_energy(x, 0.0, "exact")
    assert e[0, 0, 3] == 0
    imp = importance(x, 0.0, "exact")
    assert imp[0, 0, 3] == math.inf
    torch.testing.assert_close(imp, 1 / e)
    w, b = closed_form_minimiser(x, 0.0)
    # w = 2 / (t - mu_t)
    torch.testing.assert_close(w[0, 0, 3], torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(energy(x, w, b, 0.0), e, rtol=0, atol=1e-14)
    # with any lambda > 0 everything is finite again
    assert torch.isfinite(importance(x, 1e-4, "exact")).all()


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3, 1, 1), (1, 1, 1, 1, 1)])
@pytest.mark.parametrize("lambda_", [0.0, 1e-4, 0.5])
def test_single_neuron_channels(shape, lambda_):
    """M = 1: the shared statistics define the variance as 0 (e* = 2, importance 1/2), whereas
    equation (2) averages over M - 1 = 0 other neurons and is undefined, which must be said."""
    x = random_map(shape, seed=44)
    for statistics in ["paper", "reference"]:
        assert (minimal_energy(x, lambda_, statistics) == 2).all()
        assert (importance(x, lambda_, statistics) == 0.5).all()
        mean, var = channel_statistics(x, correction=1 if statistics == "reference" else 0)
        assert torch.equal(mean, x) and (var == 0).all()
    exact_calls = [
        lambda: leave_one_out_statistics(x),
        lambda: energy(x, 1.0, 0.0, lambda_),
        lambda: closed_form_minimiser(x, lambda_),
        lambda: minimal_energy(x, lambda_, "exact"),
        lambda: importance(x, lambda_, "exact"),
        lambda: numeric_minimiser(x, lambda_, steps=1),
    ]
    for call in exact_calls:
        with pytest.raises(ValueError, match=r"at least 2 neurons per channel, got M = 1"):
            call()


BAD_MAPS = [
    ([[[1.0, 2.0]]], TypeError, r"must be a torch\.Tensor, got list"),
    (np.zeros((1, 1, 3)), TypeError, r"must be a torch\.Tensor, got ndarray"),
    (2.0, TypeError, r"must be a torch\.Tensor, got float"),
    (torch.arange(6).reshape(1, 2, 3), TypeError, r"floating-point tensor, got dtype torch\.int64"),
    (
        torch.ones(1, 2, 3, dtype=torch.uint8),
        TypeError,
        r"floating-point tensor, got dtype torch\.uint8",
    ),
    (
        torch.ones(1, 2, 3, dtype=torch.bool),
        TypeError,
        r"floating-point tensor, got dtype torch\.bool",
    ),
    (
        torch.ones(1, 2, 3, dtype=torch.cfloat),
        TypeError,
        r"floating-point tensor, got dtype torch\.complex64",
    ),
    (torch.ones(4, 5), ValueError, r"shape \(N, C, \*spatial\).*got shape \(4, 5\)"),
    (torch.ones(5), ValueError, r"shape \(N, C, \*spatial\).*got shape \(5,\)"),
    (torch.ones(2, 3, 0), ValueError, r"at least one neuron per channel.*got shape \(2, 3, 0\)"),
    (
        torch.ones(2, 3, 4, 0),
        ValueError,
        r"at least one neuron per channel.*got shape \(2, 3, 4, 0\)",
    ),
]
ENTRY_POINTS = {
    "check_feature_map": lambda x: check_feature_map(x),
    "channel_statistics": lambda x: channel_statistics(x),
    "leave_one_out_statistics": lambda x: leave_one_out_statistics(x),
    "energy": lambda x: energy(x, 1.0, 0.0),
    "closed_form_minimiser": lambda x: closed_form_minimiser(x),
    "minimal_energy": lambda x: minimal_energy(x),
    "minimal_energy_paper": lambda x: minimal_energy(x, statistics="paper"),
    "importance": lambda x: importance(x),
    "numeric_minimiser": lambda x: numeric_minimiser(x, steps=1),
}


@pytest.mark.parametrize(("bad", "error", "message"), BAD_MAPS)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_bad_feature_maps_are_refused_clearly(entry, bad, error, message):
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](bad)


def test_error_message_names_the_argument():
    with pytest.raises(TypeError, match=r"^features must be a torch\.Tensor"):
        check_feature_map([1.0], name="features")


@pytest.mark.parametrize(
    "bad", [-1e-4, -1, float("nan"), float("inf"), -float("inf"), np.float64("nan")]
)
def test_bad_lambda_values_are_refused(bad):
    for call in [
        lambda: check_lambda(bad),
        lambda: energy(random_map((1, 1, 3), 0), 1.0, 0.0, bad),
        lambda: minimal_energy(random_map((1, 1, 3), 0), bad, "paper"),
        lambda: importance(random_map((1, 1, 3), 0), bad),
        lambda: closed_form_minimiser(random_map((1, 1, 3), 0), bad),
        lambda: numeric_minimiser(random_map((1, 1, 3), 0), bad),
    ]:
        with pytest.raises(ValueError, match=r"lambda_ must be a finite real number >= 0, got"):
            call()


@pytest.mark.parametrize("bad", ["0.1", None, True, torch.tensor(0.1), [0.1], 1j])
def test_lambda_of_the_wrong_type_is_refused(bad):
    with pytest.raises(TypeError, match=r"lambda_ must be a finite real number >= 0, got"):
        check_lambda(bad)
    with pytest.raises(TypeError, match=r"lambda_ must be a finite real number"):
        importance(random_map((1, 1, 3), 0), bad)


def test_lambda_accepts_python_and_numpy_reals():
    x = random_map((1, 2, 6), seed=45)
    expected = importance(x, 0.25)
    for value in [0.25, np.float64(0.25), np.float32(0.25)]:
        torch.testing.assert_close(importance(x, value), expected)
    torch.testing.assert_close(importance(x, 0), importance(x, 0.0))


def test_unknown_statistics_are_refused():
    x = random_map((1, 1, 4), seed=46)
    for call in [
        lambda: minimal_energy(x, statistics="mean"),
        lambda: importance(x, statistics="Exact"),
    ]:
        with pytest.raises(
            ValueError, match=r"statistics must be one of \('exact', 'paper', 'reference'\)"
        ):
            call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "newton"}, r"method must be 'lbfgs', 'adam' or 'sgd', got 'newton'"),
        ({"steps": -1}, r"steps must be an integer >= 0, got -1"),
        ({"steps": 2.5}, r"steps must be an integer >= 0, got 2\.5"),
        ({"lr": 0.0}, r"lr must be a finite number > 0, got 0\.0"),
        ({"lr": -0.1, "method": "adam"}, r"lr must be a finite number > 0"),
        ({"lr": float("nan")}, r"lr must be a finite number > 0"),
    ],
)
def test_numeric_minimiser_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        numeric_minimiser(random_map((1, 1, 4), seed=47), **kwargs)
