"""The statistics the course judges its runs with: Welch's interval and test for a difference of
two means and for any contrast of means, a permutation test (also within strata), intervals from a
pooled spread, Holm's correction for several comparisons, and how many seeds an effect needs.
Student's t distribution, Welch's test and the unstratified permutation test are SciPy's.

Every function takes accuracies (or any numbers) of independent runs, one list per group, and
raises ``ValueError`` where the numbers cannot answer the question (one run, no spread at all).
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

# Above this many ways to split the pooled runs, the permutation test draws random splits instead.
EXACT_SPLITS = 200_000
RANDOM_SPLITS = 100_000


def t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (SciPy's)."""
    from scipy import stats  # imported where used: the library's import stays light

    return float(stats.t.ppf(probability, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (SciPy's)."""
    from scipy import stats

    return float(2 * stats.t.sf(abs(t), df))


def _checked(values: Sequence[float], name: str) -> list[float]:
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"{name}: needs two runs or more to estimate a spread, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}: not every value is a finite number: {values}")
    return values


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The t interval of the mean of ``values``: mean ± t(df = n - 1) · s / sqrt(n)."""
    values = _checked(values, "mean_interval")
    mean, half = statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))
    half *= t_quantile(0.5 + level / 2, len(values) - 1)
    return mean - half, mean + half


def welch(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, float, float, float, float]:
    """Welch's comparison of the means of two groups of runs: (mean(a) - mean(b), the interval's low
    and high ends, the Welch-Satterthwaite degrees of freedom, the two-sided p-value)."""
    from scipy import stats

    a, b = _checked(a, "welch, first group"), _checked(b, "welch, second group")
    if statistics.stdev(a) == statistics.stdev(b) == 0.0:
        raise ValueError("welch: both groups are constant, so the difference has no standard error")
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(level)
    return (
        statistics.mean(a) - statistics.mean(b),
        float(low),
        float(high),
        float(result.df),
        float(result.pvalue),
    )


def welch_from_summaries(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int, level: float = 0.95
) -> tuple[float, float, float, float, float]:
    """:func:`welch` from each group's mean, sample standard deviation and size
    (as papers print them)."""
    if min(n_a, n_b) < 2:
        raise ValueError(f"welch: needs two runs or more per group, got {n_a} and {n_b}")
    share_a, share_b = sd_a**2 / n_a, sd_b**2 / n_b
    error = math.sqrt(share_a + share_b)
    if error == 0.0:
        raise ValueError("welch: both groups are constant, so the difference has no standard error")
    df = (share_a + share_b) ** 2 / (share_a**2 / (n_a - 1) + share_b**2 / (n_b - 1))
    half = t_quantile(0.5 + level / 2, df) * error
    difference = mean_a - mean_b
    return (
        difference,
        difference - half,
        difference + half,
        df,
        t_two_sided_p(difference / error, df),
    )


@functools.lru_cache(maxsize=8)
def _all_splits(total: int, first: int) -> np.ndarray:
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(total), first)), dtype=np.int8
    )
    return flat.reshape(-1, first)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, bool]:
    """Two-sided permutation test of equal means (SciPy's ``permutation_test``): the share of the
    ways to split the pooled runs into groups of the same sizes whose difference of means is at
    least as large in size as the observed one. Exact (every split) up to ``EXACT_SPLITS`` splits,
    else ``RANDOM_SPLITS`` random splits with a fixed seed, p = (hits + 1) / (draws + 1).
    Returns (p, exact)."""
    from scipy import stats

    a, b = _checked(a, "permutation_p, first group"), _checked(b, "permutation_p, second group")
    exact = math.comb(len(a) + len(b), len(a)) <= EXACT_SPLITS

    def distance(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        # Rounded so that a split whose difference equals the observed one only up to the rounding
        # of a float sum counts as a tie (SciPy's own tolerance is relative to the observed value,
        # so an observed difference of 1e-14 would beat an exact 0).
        return np.round(np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis)), 9)

    result = stats.permutation_test(
        (a, b),
        distance,
        permutation_type="independent",
        vectorized=True,
        alternative="greater",
        n_resamples=EXACT_SPLITS if exact else RANDOM_SPLITS,
        rng=np.random.default_rng(0),
    )
    return float(result.pvalue), exact


def smallest_permutation_p(n_a: int, n_b: int) -> float:
    """A lower bound on any p-value of :func:`permutation_p` for groups of these sizes: one split
    (two when the sizes are equal, the mirror split) out of all of them."""
    return (2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for their number of comparisons, in their order:
    the k-th smallest is multiplied by (m - k + 1), made non-decreasing, and capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def seeds_needed(
    sd_a: float, sd_b: float, effect: float, alpha: float = 0.05, power: float = 0.80
) -> int:
    """Runs per group for a two-sided test at ``alpha`` to find a true difference ``effect`` with
    probability ``power``, for groups with standard deviations ``sd_a`` and ``sd_b`` (the normal
    approximation: n = (sd_a^2 + sd_b^2) (z_{1-alpha/2} + z_power)^2 / effect^2, rounded up)."""
    if effect == 0 or not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(
            f"seeds_needed: effect must be non-zero and alpha, power in (0, 1); got {effect}, "
            f"{alpha}, {power}"
        )
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return math.ceil((sd_a**2 + sd_b**2) * z**2 / effect**2 - 1e-12)


def contrast(
    groups: Sequence[Sequence[float]], weights: Sequence[float], level: float = 0.95
) -> tuple[float, float, float, float, float]:
    """Welch's interval and test for a contrast of group means, sum(w_i * mean_i), each group with
    its own variance: its standard error is sqrt(sum(w_i^2 s_i^2 / n_i)) and its degrees of freedom
    Satterthwaite's. With weights (1, -1) this is :func:`welch`; with (1, -1, -1, 1) an interaction.
    Returns (estimate, low, high, degrees of freedom, two-sided p)."""
    if len(groups) != len(weights) or not groups:
        raise ValueError(
            f"contrast: one weight per group, got {len(groups)} groups and {len(weights)} weights"
        )
    groups = [_checked(g, f"contrast, group {i + 1}") for i, g in enumerate(groups)]
    shares = [w**2 * statistics.variance(g) / len(g) for g, w in zip(groups, weights)]
    error = math.sqrt(sum(shares))
    if error == 0.0:
        raise ValueError("contrast: every group is constant, so the contrast has no standard error")
    df = sum(shares) ** 2 / sum(
        share**2 / (len(g) - 1) for share, g in zip(shares, groups) if share > 0
    )
    estimate = sum(w * statistics.mean(g) for g, w in zip(groups, weights))
    half = t_quantile(0.5 + level / 2, df) * error
    return estimate, estimate - half, estimate + half, df, t_two_sided_p(estimate / error, df)


def stratified_permutation_p(
    a: Sequence[float], b: Sequence[float], strata_a: Sequence[str], strata_b: Sequence[str]
) -> tuple[float, bool]:
    """:func:`permutation_p` with the runs exchanged only within their stratum (a CPU model, say),
    so that a difference between strata cannot pass for a difference between the groups. The
    statistic is the difference of the two groups' means; every within-stratum split is enumerated
    up to ``EXACT_SPLITS`` in all, else ``RANDOM_SPLITS`` random ones with a fixed seed.
    Returns (p, exact)."""
    a, b = (
        _checked(a, "stratified_permutation_p, first group"),
        _checked(b, "stratified_permutation_p, second group"),
    )
    if len(strata_a) != len(a) or len(strata_b) != len(b):
        raise ValueError("stratified_permutation_p: one stratum per run")
    observed = abs(statistics.mean(a) - statistics.mean(b))
    pooled = np.array(a + b)
    labels = list(strata_a) + list(strata_b)
    strata = []  # (indices of the stratum's runs, how many of them the first group has)
    for name in dict.fromkeys(labels):
        members = [i for i, label in enumerate(labels) if label == name]
        strata.append((np.array(members), sum(1 for i in members if i < len(a))))
    splits = math.prod(math.comb(len(members), first) for members, first in strata)
    exact = splits <= EXACT_SPLITS
    first_sums = np.zeros(splits if exact else RANDOM_SPLITS)
    generator = np.random.default_rng(0)
    repeat = 1
    for members, first in strata:  # each stratum's sum of the first group's share, over every split
        if exact:
            sums = (
                pooled[members][_all_splits(len(members), first)].sum(axis=1)
                if first
                else np.zeros(1)
            )
            tiled = np.tile(np.repeat(sums, repeat), splits // (len(sums) * repeat))
            first_sums += tiled
            repeat *= len(sums)
        else:
            order = generator.random((RANDOM_SPLITS, len(members))).argsort(axis=1)[:, :first]
            first_sums += pooled[members][order].sum(axis=1)
    differences = np.abs(first_sums / len(a) - (pooled.sum() - first_sums) / len(b))
    at_least = int((differences >= observed - 1e-9 * max(1.0, observed)).sum())
    return (
        (at_least / len(first_sums), True)
        if exact
        else ((at_least + 1) / (len(first_sums) + 1), False)
    )


def pooled_intervals(
    groups: Sequence[Sequence[float]], level: float = 0.95
) -> tuple[list[tuple[float, float]], float, int]:
    """The interval of each group's mean from the spread pooled over all groups:
    mean_i ± t(df) · s_p / sqrt(n_i), s_p^2 = sum((n_i - 1) s_i^2) / df, df = sum(n_i - 1). For many
    small groups with one common spread (seeds of a hyperparameter sweep) these are far steadier
    than each group's own t interval. Returns (intervals, s_p, df)."""
    groups = [[float(v) for v in g] for g in groups]
    if any(not g or not all(math.isfinite(v) for v in g) for g in groups):
        raise ValueError("pooled_intervals: every group needs finite values")
    df = sum(len(g) - 1 for g in groups)
    if df < 1:
        raise ValueError("pooled_intervals: needs a group with two runs or more")
    pooled = math.sqrt(
        sum((len(g) - 1) * statistics.variance(g) for g in groups if len(g) > 1) / df
    )
    t = t_quantile(0.5 + level / 2, df)
    return (
        [
            (
                statistics.mean(g) - t * pooled / math.sqrt(len(g)),
                statistics.mean(g) + t * pooled / math.sqrt(len(g)),
            )
            for g in groups
        ],
        pooled,
        df,
    )
