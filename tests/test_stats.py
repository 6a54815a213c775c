"""The statistics behind the course's verdict: Student's t against closed forms, Welch's interval,
the exact permutation test on a case counted by hand, Holm's correction, and the seeds an effect
needs."""

from __future__ import annotations

import math
import statistics

import pytest

from simam import stats


def test_welch_agrees_with_the_closed_forms_of_scipy_s_t_distribution():
    a, b = [86.6, 86.7, 86.3, 86.9, 86.7], [87.6, 86.6, 87.3, 87.0]
    difference, low, high, df, p = stats.welch(b, a)
    assert difference == pytest.approx(statistics.mean(b) - statistics.mean(a))
    assert low < difference < high and 0 < p < 1
    # Cauchy
    assert stats.t_two_sided_p(2.15, 1) == pytest.approx(
        1 - 2 / math.pi * math.atan(2.15), abs=1e-12
    )
    assert stats.t_two_sided_p(-2.15, 2) == pytest.approx(
        1 - 2.15 / math.sqrt(2 + 2.15**2), abs=1e-12
    )
    assert stats.t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-9)


def test_welch_interval_is_the_difference_plus_minus_t_standard_errors():
    a, b = [1.0, 2.0, 4.0], [0.0, 1.0, 1.0, 2.0]
    difference, low, high, df, p = stats.welch(a, b)
    share_a, share_b = statistics.variance(a) / 3, statistics.variance(b) / 4
    assert difference == pytest.approx(7 / 3 - 1)
    assert df == pytest.approx((share_a + share_b) ** 2 / (share_a**2 / 2 + share_b**2 / 3))
    assert (high - low) / 2 == pytest.approx(
        stats.t_quantile(0.975, df) * math.sqrt(share_a + share_b)
    )
    assert p == pytest.approx(stats.t_two_sided_p(difference / math.sqrt(share_a + share_b), df))
    with pytest.raises(ValueError, match="two runs or more"):
        stats.welch([1.0], b)
    with pytest.raises(ValueError, match="constant"):
        stats.welch([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        stats.welch([1.0, float("nan")], b)


def test_permutation_p_counts_every_split(monkeypatch):
    # {1, 2} against {3, 4}: of the 6 ways to split the four values in two pairs, two differ by 2 in
    # size.
    assert (
        stats.permutation_p([1, 2], [3, 4]) == (pytest.approx(2 / 6), True)
        and stats.smallest_permutation_p(2, 2) == 2 / 6
    )
    assert (
        stats.permutation_p([5, 6], [1, 2, 3])
        == (pytest.approx(1 / 10), True)
        == (stats.smallest_permutation_p(2, 3), True)
    )
    p, exact = stats.permutation_p(list(range(10)), [v + 100 for v in range(10)])  # 184,756 splits
    assert exact and p == pytest.approx(2 / math.comb(20, 10))
    a, b = [0.3 * v for v in range(10)], [0.3 * v + 0.5 for v in range(10)]
    p_exact, _ = stats.permutation_p(a, b)
    # too many splits: random ones, with a fixed seed
    monkeypatch.setattr(stats, "EXACT_SPLITS", 1000)
    p_random, exact = stats.permutation_p(a, b)
    assert (
        not exact
        and p_random == pytest.approx(p_exact, abs=0.01)
        and stats.permutation_p(a, b)[0] == p_random
    )


def test_holm_multiplies_the_k_th_smallest_by_m_minus_k_plus_one_and_keeps_the_order():
    assert stats.holm([0.01, 0.04, 0.03, 0.2, 0.005]) == pytest.approx(
        [0.04, 0.09, 0.09, 0.2, 0.025]
    )
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]
    assert stats.holm([]) == []


def test_seeds_needed_is_the_normal_approximation_rounded_up():
    z = statistics.NormalDist().inv_cdf(0.975) + statistics.NormalDist().inv_cdf(0.8)
    assert (
        stats.seeds_needed(0.19, 0.18, 0.40) == math.ceil((0.19**2 + 0.18**2) * z**2 / 0.40**2) == 4
    )
    assert stats.seeds_needed(0.38, 0.36, 0.40) == math.ceil(
        4 * (0.19**2 + 0.18**2) * z**2 / 0.40**2
    )
    with pytest.raises(ValueError, match="non-zero"):
        stats.seeds_needed(0.2, 0.2, 0.0)


def test_mean_interval_is_t_standard_errors_around_the_mean():
    low, high = stats.mean_interval([1.0, 2.0, 3.0])
    assert (low + high) / 2 == pytest.approx(2.0)
    assert (high - low) / 2 == pytest.approx(stats.t_quantile(0.975, 2) * 1 / math.sqrt(3))
