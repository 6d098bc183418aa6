"""The statistics of a sweep report: pure functions over arrays, one statistical idea each.

Shapes are stated per function: ``values: (n_repeats,)`` is one configuration's metric over its
repeats, ``scores: (n_tasks, n_configs)`` one summary score per task and configuration.

Conventions shared by every function here:

* A diverged run is ``NaN`` in ``values``. Means, spreads and intervals exclude it; paired
  comparisons count it as a loss (see :func:`paired_differences`).
* *Oriented* differences are positive when the configuration is better than the baseline,
  whichever way the metric points (``higher_is_better``).
* Randomness comes only from a ``numpy.random.Generator`` passed in; nothing here touches a
  global random state.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

# --- one configuration over its repeats ------------------------------------------------------------


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of the finite values (rliable's IQM). ``values: (n_repeats,)``.

    Trims ``floor(n / 4)`` values from each end, as ``scipy.stats.trim_mean(values, 0.25)`` does.
    """
    values = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if values.size == 0:
        return float("nan")
    cut = values.size // 4
    return float(values[cut : values.size - cut].mean())


def generalization_gap(train: np.ndarray, test: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Per-run generalization gap, positive when the model does better on train than on test.

    ``train, test: (n_repeats,)`` of the same metric. For a metric where higher is better
    (accuracy, r2) it is ``train - test``; for a loss or error it is ``test - train``, so that a
    positive gap always means overfitting.
    """
    train = np.asarray(train, dtype=float)
    test = np.asarray(test, dtype=float)
    return train - test if higher_is_better else test - train


# --- bootstrap -------------------------------------------------------------------------------------


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` repeats is drawn in each of ``n_boot`` resamples: ``(n_boot, n)`` ints.

    Equivalent to a resample index matrix ``rng.integers(0, n, (n_boot, n))`` counted per repeat,
    but lets every mean over a resample be one matrix product (:func:`bootstrap_means`). Use one
    counts matrix for every configuration of a task so that resampled repeats stay paired.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)


def repeat_sums(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``counts @ values`` added up repeat by repeat, in repeat order: ``(n_boot,)`` or ``(n_boot, n_configs)``.

    ``counts: (n_boot, n_repeats)``, ``values: (n_repeats,)`` or ``(n_repeats, n_configs)``. A BLAS product
    blocks its sums by the matrices' shapes, so a configuration's sums would change in the last bit with
    the number of configurations beside it (a sweep extended with new ones, a round of another size);
    here each column's sums are the same whatever the other columns hold.
    """
    counts = np.asarray(counts, dtype=float)
    values = np.asarray(values, dtype=float)
    total = np.zeros((counts.shape[0], *values.shape[1:]))
    for j in range(counts.shape[1]):
        total += np.multiply.outer(counts[:, j], values[j])
    return total


def bootstrap_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of the finite values in each resample.

    ``values: (n_repeats,)`` or ``(n_repeats, n_configs)``, NaN excluded;
    ``counts: (n_boot, n_repeats)`` from :func:`bootstrap_counts`.
    Returns ``(n_boot,)`` or ``(n_boot, n_configs)``; NaN where a resample drew no finite value.
    """
    values = np.asarray(values, dtype=float)
    mask = np.isfinite(values)
    total = repeat_sums(counts, np.where(mask, values, 0.0))
    drawn = repeat_sums(counts, mask.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(drawn > 0, total / drawn, np.nan)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """The percentile interval of bootstrap samples. ``samples: (n_boot, ...)`` -> ``(2, ...)``.

    Resamples that are NaN (no finite value drawn) are ignored; all-NaN columns give NaN.
    """
    samples = np.asarray(samples, dtype=float)
    tail = 100.0 * (1.0 - confidence) / 2.0
    q = [tail, 100.0 - tail]
    if not np.isnan(samples).any():
        return np.percentile(samples, q, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanpercentile(samples, q, axis=0)


def distinct_resamples(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a bootstrap counts matrix and how often each occurs.

    ``counts: (n_boot, n)`` from :func:`bootstrap_counts` (or several tasks' side by side) ->
    ``(rows: (n_distinct, n), weights: (n_distinct,))``. Resamples with the same counts have the same
    mean, so with few repeats (3 distinct resamples of 2 repeats, 126 of 5) the means of 10,000
    resamples are a few means with weights: :func:`percentile_interval_by_sorting`.
    """
    rows, weights = np.unique(np.asarray(counts), axis=0, return_counts=True)
    return rows, weights


def percentile_interval_by_sorting(
    samples: np.ndarray, confidence: float = 0.95, weights: np.ndarray | None = None
) -> np.ndarray:
    """:func:`percentile_interval` from one sort per column, optionally of distinct samples with weights.

    ``samples: (n_samples, n_cols)`` -> ``(2, n_cols)``; ``weights: (n_samples,)`` positive integers, how
    often each sample occurs (None: once each). The same numbers as ``percentile_interval(np.repeat(samples,
    weights, axis=0))``: numpy's linear interpolation between the order statistics around ``(n - 1) q``,
    NaN samples left out. Bootstrap means tie often, which slows numpy's partition more than a sort.
    """
    columns = np.ascontiguousarray(np.asarray(samples, dtype=float).T)  # (n_cols, n_samples): rows sort fastest
    tail = 100.0 * (1.0 - confidence) / 2.0
    q = np.true_divide(np.array([tail, 100.0 - tail]), 100)  # as np.percentile turns percents into quantiles
    if weights is None:
        ordered = np.sort(columns, axis=1)  # NaN last
        n = np.count_nonzero(~np.isnan(ordered), axis=1)
    else:
        order = np.argsort(columns, axis=1)  # NaN last; equal values may come in any order, they are equal
        ordered = np.take_along_axis(columns, order, axis=1)
        reach = np.cumsum(np.where(np.isnan(ordered), 0, np.asarray(weights)[order]), axis=1)  # samples <= each
        n = reach[:, -1]
    virtual = (n - 1)[:, None] * q[None, :]  # (n_cols, 2), numpy's "linear" method
    top = virtual >= (n - 1)[:, None]
    lower = np.where(top, n[:, None] - 1, np.floor(virtual)).astype(np.intp)
    upper = np.where(top, n[:, None] - 1, lower + 1)
    gamma = virtual - lower  # numpy: the virtual index less the lower index, as an integer
    ranks = np.maximum(np.concatenate([lower, upper], axis=1), 0)  # (n_cols, 4), 0-based
    if weights is not None:  # the k-th smallest sample is the first whose reach exceeds k
        ranks = np.array([np.searchsorted(r, k, side="right") for r, k in zip(reach, ranks)]).reshape(ranks.shape)
    found = np.take_along_axis(ordered, np.minimum(ranks, columns.shape[1] - 1), axis=1)
    a, b = found[:, :2], found[:, 2:]
    # numpy's _lerp, operation for operation, so the numbers agree to the bit
    diff = b - a
    interval = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return np.where(n[:, None] > 0, interval, np.nan).T.reshape(2, -1)


# --- paired comparison against the baseline --------------------------------------------------------


def paired_differences(values: np.ndarray, baseline: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Oriented per-repeat differences from the baseline: positive where the configuration did better.

    ``values, baseline: (n_repeats,)``, the same repeats in the same order (same data, same initial
    weights). A diverged run (NaN) is worse than any finished run: where only the configuration
    diverged the difference is ``-inf`` (a loss), where only the baseline diverged ``+inf`` (a win),
    where both diverged ``0`` (a tie). Rank-based statistics (:func:`probability_of_improvement`,
    :func:`signed_rank_test`) use these as they are; means must use finite differences only.
    """
    values = np.asarray(values, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if values.shape != baseline.shape:
        raise ValueError(f"values {values.shape} and baseline {baseline.shape} must pair up repeat by repeat")
    sign = 1.0 if higher_is_better else -1.0
    with np.errstate(invalid="ignore"):
        diff = sign * (values - baseline)
    lost, won = np.isnan(values), np.isnan(baseline)
    diff[lost & ~won] = -np.inf
    diff[won & ~lost] = np.inf
    diff[lost & won] = 0.0
    return diff


def probability_of_improvement(differences: np.ndarray) -> float:
    """P(configuration beats baseline on a repeat), ties counting half. ``differences: (n_pairs,)`` oriented.

    Paired version of rliable's probability of improvement: repeats share data and initial weights,
    so each repeat is one contest rather than every run against every run.
    """
    differences = np.asarray(differences, dtype=float)
    if differences.size == 0:
        return float("nan")
    return float(np.mean((differences > 0) + 0.5 * (differences == 0)))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``.

    ``successes`` may be fractional (ties counted half); the interval then treats them as if they
    were that many whole successes. Unlike a bootstrap it stays honest at 0/n and n/n.
    """
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


class SignedRankResult(NamedTuple):
    """``statistic``: sum of signed ranks, positive when the configuration tends to be better."""

    statistic: float
    pvalue: float


def _finite_extremes(differences: np.ndarray) -> np.ndarray:
    """Replace ``±inf`` (divergence) by a magnitude larger than every finite difference.

    Rank-based tests only see the order of ``|d|``, so any such value means "the largest loss/win".
    """
    d = np.asarray(differences, dtype=float)
    finite_abs = np.abs(d[np.isfinite(d)])
    big = 2.0 * finite_abs.max() + 1.0 if finite_abs.size else 1.0
    return np.where(np.isinf(d), np.sign(d) * big, d)


def signed_rank_sum(differences: np.ndarray) -> tuple[float, float]:
    """Sum of signed midranks of ``|d|`` and its variance under the null. ``differences: (n_pairs,)``.

    Zero differences take part in the ranking and contribute nothing to the sum (Wilcoxon's
    ``zsplit``). The null variance is the exact conditional one, ``sum(rank**2)`` over non-zero d.
    """
    d = _finite_extremes(differences)
    if d.size == 0:
        return 0.0, 0.0
    ranks = stats.rankdata(np.abs(d))
    signs = np.sign(d)
    return float(np.sum(signs * ranks)), float(np.sum((signs != 0) * ranks**2))


def signed_rank_test(differences: np.ndarray) -> SignedRankResult:
    """Wilcoxon signed-rank test that the paired differences are centred on zero (two-sided).

    ``differences: (n_pairs,)`` oriented, from :func:`paired_differences`. The p-value of
    ``scipy.stats.wilcoxon(zero_method='zsplit')``: exact for n <= 50 without ties or zeros, an
    exact permutation test for n <= 13 with them, the normal approximation otherwise; up to 13 pairs
    computed here over all sign flips (:func:`exact_signed_rank_p`, scipy's numbers to the bit). All
    differences zero gives p = 1; no pairs give NaN.
    """
    d = _finite_extremes(differences)
    if d.size == 0:
        return SignedRankResult(float("nan"), float("nan"))
    statistic, _ = signed_rank_sum(d)
    if np.all(d == 0):
        return SignedRankResult(0.0, 1.0)
    if d.size <= _SIGN_FLIPS_UP_TO and not np.isnan(d).any():
        return SignedRankResult(statistic, exact_signed_rank_p(d))
    pvalue = stats.wilcoxon(d, zero_method="zsplit").pvalue
    return SignedRankResult(statistic, float(pvalue))


#: Up to this many pairs scipy's wilcoxon tests ties or zeros by all 2**n sign flips (beyond, the normal approximation).
_SIGN_FLIPS_UP_TO = 13


def exact_signed_rank_p(differences: np.ndarray) -> float:
    """The exact two-sided p-value of the signed-rank statistic over all sign flips, for any number of pairs.

    ``differences: (n_pairs,)``, ``±inf`` ranked as the largest loss/win. Under the null every one of the
    ``2**n`` sign assignments is equally likely; the statistic is the sum of the midranks of ``|d|`` where
    ``d > 0``, zeros adding half their rank (``zsplit``). With ties or zeros up to 13 pairs this is the
    permutation test ``scipy.stats.wilcoxon(d, zero_method='zsplit')`` runs (its ``PermutationMethod``, one
    Python call per flip), without them its exact distribution: the same p-value to the bit
    (tests/report/test_statistics.py). The null distribution is counted rather than enumerated: midranks are
    multiples of 1/2, so twice each is an integer and the distribution of twice the sum over the nonzero
    differences flipped is a convolution of two-point distributions on the integers (one array pass a pair;
    n(n + 1) + 1 values at most). Exact where scipy's ``wilcoxon`` falls back on the normal
    approximation (ties or zeros beyond 13 pairs), whose p-value in the far tail is larger by up to an
    order of magnitude (all of 15 differences of one sign: 6.5e-4 against the exact 6.1e-5). All
    differences zero gives 1; none gives NaN.
    """
    d = _finite_extremes(differences)
    if d.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.abs(d))
    nonzero = d != 0
    doubled = np.rint(2.0 * ranks[nonzero]).astype(np.int64)
    if doubled.size == 0:
        return 1.0
    # Counts, not probabilities: every count is an integer below 2**n, exact in float64 up to 53 pairs; past
    # that the counts are rounded relative to their size only, and the p-value is a ratio of sums.
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    reach = 0
    for r in doubled:
        counts[r : reach + r + 1] += counts[: reach + 1].copy()
        reach += int(r)
    observed = int(doubled[d[nonzero] > 0].sum())
    total = counts.sum()
    below, above = counts[: observed + 1].sum() / total, counts[observed:].sum() / total
    return float(min(1.0, 2.0 * min(below, above)))


def stratified_signed_rank_test(differences_by_stratum: list[np.ndarray]) -> SignedRankResult:
    """Signed-rank test pooled over strata (tasks) with ranks taken within each stratum.

    ``differences_by_stratum``: one ``(n_pairs,)`` oriented array per task. Ranking within a task
    keeps data sets of different metric scales from swamping each other; the sums of signed ranks
    and their null variances add up, and the normal approximation gives the two-sided p-value.
    With one stratum this is the large-sample Wilcoxon test.
    """
    sums = [signed_rank_sum(d) for d in differences_by_stratum]
    total = sum(s for s, _ in sums)
    variance = sum(v for _, v in sums)
    if sum(np.size(d) for d in differences_by_stratum) == 0:
        return SignedRankResult(float("nan"), float("nan"))
    if variance == 0:
        return SignedRankResult(0.0, 1.0)
    return SignedRankResult(total, float(2.0 * stats.norm.sf(abs(total) / np.sqrt(variance))))


def smallest_signed_rank_p(n: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can reach with ``n`` pairs: ``2 / 2**n``.

    With 5 repeats it is 0.0625, so no configuration can ever be called different at α = 0.05.
    """
    return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0


def repeats_for_a_verdict(comparisons: int, alpha: float) -> int:
    """The fewest pairs with which the exact signed-rank test, after Holm over ``comparisons`` tests, can
    reach ``alpha`` at all: the smallest n with ``comparisons * 2 / 2**n <= alpha`` (Holm multiplies the
    smallest p-value by the number of tests; :func:`smallest_signed_rank_p`). 6 for one comparison at 0.05."""
    n = 1
    while max(comparisons, 1) * smallest_signed_rank_p(n) > alpha:
        n += 1
    return n


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment for the family of ``p_values: (n_tests,)``; NaN stays NaN.

    Controls the family-wise error rate at the adjusted level under any dependence (the tests
    here share the baseline, so they are dependent).
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return adjusted
    order = ok[np.argsort(p[ok], kind="stable")]
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def verdict(p_adjusted: float, statistic: float, alpha: float = 0.05) -> str:
    """``better``, ``worse`` or ``no_difference`` from an adjusted p-value and the oriented test statistic.

    The direction is the sign of the test's own statistic (sum of signed ranks), so a verdict
    always agrees with the test that produced the p-value.
    """
    if not p_adjusted < alpha or statistic == 0:
        return "no_difference"
    return "better" if statistic > 0 else "worse"


# --- power -----------------------------------------------------------------------------------------


def _paired_t_power(effect_in_sd: float, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """Power of the two-sided paired t-test for a true effect of ``effect_in_sd`` sds, at each ``n``."""
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = stats.t.ppf(1.0 - alpha / 2.0, df)
    ncp = effect_in_sd * np.sqrt(n)
    right_side = stats.nct.sf(crit, df, ncp)
    wrong_side = stats.nct.cdf(-crit, df, ncp)
    # scipy gives NaN far out in the tails, where these are 1 and 0
    right_side = np.where(np.isnan(right_side) & (ncp > crit), 1.0, right_side)
    return right_side + np.nan_to_num(wrong_side)


@functools.lru_cache(maxsize=256)
def _detectable_in_sd(n: int, alpha: float, power: float) -> float:
    hi = 1.0
    while _paired_t_power(hi, n, alpha) < power:
        hi *= 2.0
    return optimize.brentq(lambda e: _paired_t_power(e, n, alpha) - power, 0.0, hi, xtol=1e-6)


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired test at level ``alpha`` detects with ``power``.

    ``sd`` is the standard deviation of the paired differences, ``n`` the number of pairs. Exact
    for the paired t-test (noncentral t); the signed-rank test needs about 5% more pairs under
    normal differences (asymptotic relative efficiency 3/π). NaN when n < 2; 0 when ``sd`` is 0.
    """
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    return float(_detectable_in_sd(int(n), float(alpha), float(power)) * sd)


def repeats_needed(
    effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000
) -> int | None:
    """Fewest pairs for which :func:`minimum_detectable_effect` is at most ``|effect|``; None beyond ``max_n``."""
    effect = abs(effect)
    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0:
        return None
    if sd == 0:
        return 2
    target = effect / sd
    # the z-test needs fewer pairs than the t-test: start just below its answer and walk up
    z = stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)
    start = max(2, int((z / target) ** 2) - 1)
    while start <= max_n:
        ns = np.arange(start, min(start + 64, max_n + 1))
        detects = _paired_t_power(target, ns, alpha) >= power
        if detects.any():
            return int(ns[np.argmax(detects)])
        start = int(ns[-1]) + 1
    return None


# --- several configurations at once ----------------------------------------------------------------


def impute_diverged(values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Replace diverged runs (NaN) by the worst finite value of the whole array.

    ``values: (n_repeats, n_configs)`` of one task. For mean-based rankings (probability of being
    best, ranks across tasks) a diverged run then weighs like the worst run seen, not like nothing.
    """
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    if not ok.any():
        return values.copy()
    worst = values[ok].min() if higher_is_better else values[ok].max()
    return np.where(ok, values, worst)


def settled(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to 10 significant digits of the largest, for telling ties apart from differences.

    Means of runs that are equal in exact arithmetic can differ in the last bits of a float64 sum,
    depending on the order of the terms; compared as they are, such a tie would be broken by rounding.
    Distinct means of the metrics here differ far above 1e-10 of their scale. NaN stays NaN.
    """
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0 or finite.max() == 0:
        return values
    return np.round(values, 9 - int(np.floor(np.log10(finite.max()))))


def ranks(scores: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Rank of each configuration within each row, 1 = best, ties (to :func:`settled` precision) sharing the
    average rank.

    ``scores: (..., n_configs)``; NaN ranks last.
    """
    oriented = settled(scores) * (1.0 if higher_is_better else -1.0)
    oriented = np.where(np.isnan(oriented), -np.inf, oriented)
    return stats.rankdata(-oriented, axis=-1)


def average_ranks(scores: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Average rank of each configuration across tasks (Demšar 2006).

    ``scores: (n_tasks, n_configs)`` -> ``(n_configs,)``.
    """
    return ranks(scores, higher_is_better=higher_is_better).mean(axis=0)


def probability_of_best(boot_scores: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Probability that each configuration is the best, from bootstrap resamples.

    ``boot_scores: (n_boot, n_tasks, n_configs)``: each configuration's mean score per task in each
    resample (repeats resampled jointly across configurations, so pairing is kept). The best in a
    resample is the configuration with the best average rank across tasks — with one task simply
    the best mean. Ties (to :func:`settled` precision) split the win equally. Returns ``(n_configs,)``
    summing to 1.
    """
    boot_scores = np.asarray(boot_scores, dtype=float)
    if boot_scores.shape[1] == 1:  # one task: the best mean, no ranking needed
        oriented = settled(boot_scores[:, 0, :]) * (1.0 if higher_is_better else -1.0)
        oriented = np.where(np.isnan(oriented), -np.inf, oriented)
        is_best = oriented == oriented.max(axis=1, keepdims=True)
    else:
        mean_rank = ranks(boot_scores, higher_is_better=higher_is_better).mean(axis=1)  # (n_boot, n_configs)
        is_best = mean_rank == mean_rank.min(axis=1, keepdims=True)
    return (is_best / is_best.sum(axis=1, keepdims=True)).mean(axis=0)


class FriedmanResult(NamedTuple):
    """Friedman's χ² with its p-value, and Iman and Davenport's less conservative F version."""

    statistic: float
    pvalue: float
    f_statistic: float
    f_pvalue: float


def friedman_test(scores: np.ndarray) -> FriedmanResult:
    """Friedman test that all configurations rank alike across tasks. ``scores: (n_tasks, n_configs)``.

    χ² from ``scipy.stats.friedmanchisquare`` (tie-corrected); the Iman–Davenport statistic
    ``F = (N-1)χ² / (N(k-1) - χ²)`` with (k-1, (k-1)(N-1)) degrees of freedom, as Demšar (2006)
    recommends. Needs at least 3 configurations and 2 tasks.
    """
    scores = np.asarray(scores, dtype=float)
    n_tasks, k = scores.shape
    if k < 3 or n_tasks < 2:
        raise ValueError(f"the Friedman test needs >= 3 configurations and >= 2 tasks, got {k} and {n_tasks}")
    if np.all(scores == scores[:, :1]):
        return FriedmanResult(0.0, 1.0, 0.0, 1.0)
    chi2, p = stats.friedmanchisquare(*scores.T)
    denominator = n_tasks * (k - 1) - chi2
    if denominator <= 0:  # every task ranks the configurations identically
        return FriedmanResult(float(chi2), float(p), float("inf"), 0.0)
    f = (n_tasks - 1) * chi2 / denominator
    f_p = stats.f.sf(f, k - 1, (k - 1) * (n_tasks - 1))
    return FriedmanResult(float(chi2), float(p), float(f), float(f_p))


def nemenyi_critical_difference(n_configs: int, n_tasks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demšar 2006): ``q_α √(k(k+1) / 6N)``.

    ``q_α`` is the studentized range quantile over √2 (1.960 for k = 2, 2.569 for k = 4). Two
    configurations whose average ranks differ by less are not significantly different.
    """
    q = stats.studentized_range.ppf(1.0 - alpha, n_configs, np.inf) / np.sqrt(2.0)
    return float(q * np.sqrt(n_configs * (n_configs + 1) / (6.0 * n_tasks)))


# --- selection -------------------------------------------------------------------------------------


def bootstrap_bias_corrected(
    selection: list[np.ndarray], estimate: list[np.ndarray], counts: list[np.ndarray], *, higher_is_better: bool
) -> np.ndarray:
    """BBC: the performance of *selecting the best configuration*, corrected for the selection's optimism.

    Tsamardinos, Greasidou and Borboudakis 2018 ("Bootstrapping the out-of-sample predictions for
    efficient and accurate cross-validation", Machine Learning 107), with repeats as the resampled units:
    in each bootstrap resample, the configuration with the best mean ``selection`` over the repeats drawn
    (with several tasks: the best average rank of those means) is picked, and scored by its mean
    ``estimate`` over the repeats *not* drawn (out of bag), which took no part in picking it. The mean
    over resamples is the bias-corrected estimate, its percentiles an interval. It answers for the
    procedure "pick the best", not for one named configuration.

    Per task: ``selection[t], estimate[t]: (n_repeats, n_configs)`` (the same matrix when the same data
    both select and estimate), NaN excluded from means; ``counts[t]: (n_boot, n_repeats)`` from
    :func:`bootstrap_counts`. Returns ``(n_boot,)``, the mean over tasks of the picked configuration's
    out-of-bag means; NaN where a resample left no repeat out of bag.
    """
    in_bag = np.stack(
        [bootstrap_means(v, k) for v, k in zip(selection, counts)], axis=1
    )  # (n_boot, n_tasks, n_configs)
    out_of_bag = np.stack([bootstrap_means(v, (k == 0).astype(float)) for v, k in zip(estimate, counts)], axis=1)
    if in_bag.shape[1] == 1:
        oriented = np.where(
            np.isnan(in_bag[:, 0]), -np.inf, settled(in_bag[:, 0]) * (1.0 if higher_is_better else -1.0)
        )
        picked = oriented.argmax(axis=1)  # the first of tied columns: their order says nothing of their test values
    else:
        picked = ranks(in_bag, higher_is_better=higher_is_better).mean(axis=1).argmin(axis=1)
    chosen = out_of_bag[np.arange(len(picked)), :, picked]  # (n_boot, n_tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with nothing out of bag: NaN
        return np.nanmean(chosen, axis=1)
