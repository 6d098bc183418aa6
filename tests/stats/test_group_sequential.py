"""The group-sequential test of raced sweeps (sweeper.stats.group_sequential): its weights, its p-value's
validity under the most adversarial stopping (stop at the look that looks best), and its projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from sweeper.stats import group_sequential as gs
from sweeper.stats import statistics as st


def test_the_weights_are_the_increments_of_t_squared_and_every_extension_keeps_their_sum_below_one():
    points = gs.looks(5, 5, 20, 20)
    assert points.tolist() == [5, 10, 15, 20]
    w = gs.weights(points, 20, 5)
    assert w == pytest.approx((1 - gs.RESERVE) * np.array([1, 3, 5, 7]) / 16, abs=1e-15)  # (t_k^2 - t_{k-1}^2)
    # A last round shorter than a step is a look; looks past the planned maximum halve the reserve each step.
    assert gs.looks(5, 5, 22, 22).tolist() == [5, 10, 15, 20, 22]
    far = gs.looks(5, 5, 20, 1000)
    assert far[-1] == 1000 and gs.weights(far, 20, 5).sum() <= 1.0
    assert gs.weights(far, 20, 5)[4:7] == pytest.approx(gs.RESERVE * np.array([0.5, 0.25, 0.125]))


def test_the_exact_signed_rank_p_is_scipys_permutation_test_to_the_bit_and_its_exact_test_beyond_13_pairs():
    rng = np.random.default_rng(3)
    for _ in range(60):
        d = rng.integers(-3, 4, size=rng.integers(1, 11)) / 10.0  # ties and zeros
        d[rng.random(d.size) < 0.1] = np.inf
        if np.any(d != 0):
            finite = st._finite_extremes(d)  # a diverged run: the largest loss or win
            assert st.exact_signed_rank_p(d) == stats.wilcoxon(finite, zero_method="zsplit").pvalue, d
    for n in (14, 20, 35, 50):
        d = rng.normal(0.3, 1.0, size=n)  # no ties: scipy's exact distribution
        assert st.exact_signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-12)
    # With ties beyond 13 pairs scipy falls back on the normal approximation, ten times larger in the far tail.
    tied = np.array([0.1] * 5 + [0.2] * 10)
    assert st.exact_signed_rank_p(tied) == pytest.approx(2 / 2**15)
    assert stats.wilcoxon(tied, zero_method="zsplit").pvalue > 5 * st.exact_signed_rank_p(tied)


def test_a_configuration_that_stops_at_its_best_look_keeps_the_level_the_naive_test_does_not():
    """Under the null, the p-value taken at whichever look was smallest (the worst a stopping rule can do)
    stays valid; the fixed test read at every look and reported at its smallest does not."""
    rng = np.random.default_rng(2026)
    n_sims, alpha = 4000, 0.05
    d = rng.standard_t(3, size=(n_sims, 30))  # symmetric about 0, heavy tails
    d = np.round(d, 1)  # ties and zeros, as accuracies have
    p, _ = gs.test(d, 5, 5, 30)  # min over all six looks of p_k / w_k: stopping at the best look
    naive = np.array([min(st.exact_signed_rank_p(row[:n]) for n in range(5, 31, 5)) for row in d[:1000]])
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_sims)
    assert (p <= alpha).mean() <= bound and (p <= 0.01).mean() <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / n_sims)
    assert (naive <= alpha).mean() > 0.08  # looking six times at a one-look test: about twice its level


def test_the_p_value_is_the_smallest_look_over_its_weight_and_its_direction_the_test_statistic_there():
    d = np.full((2, 20), np.nan)
    d[0, :15] = -np.arange(1, 16) / 100.0  # every repeat worse: stopped after 15 repeats
    d[1] = np.r_[np.linspace(-1, 1, 10), np.full(10, 0.5)]
    p, sign = gs.test(d, 5, 5, 20)
    w = gs.weights(gs.looks(5, 5, 20, 20), 20, 5)
    expected0 = min(st.exact_signed_rank_p(d[0, :n]) / w[k] for k, n in enumerate([5, 10, 15]))
    assert p[0] == pytest.approx(min(1.0, expected0), rel=1e-12) and sign[0] == -1
    expected1 = min(st.exact_signed_rank_p(d[1, :n]) / w[k] for k, n in enumerate([5, 10, 15, 20]))
    assert p[1] == pytest.approx(min(1.0, expected1), rel=1e-12) and sign[1] == 1


def test_conditional_power_is_lan_and_wittes_b_value_projection():
    d = np.array([[0.3, 0.1, -0.2, 0.4, 0.5, 0.2]])  # 6 of 24 repeats
    total, variance = st.signed_rank_sum(d[0])
    z, t = total / math.sqrt(variance), 6 / 24
    critical = stats.norm.ppf(1 - 0.001 / 2)
    mean = z * math.sqrt(t) + (z / math.sqrt(t)) * (1 - t)  # B(t) + theta (1 - t)
    expected = ndtr((mean - critical) / math.sqrt(1 - t)) + ndtr((-critical - mean) / math.sqrt(1 - t))
    assert gs.conditional_power(d, 24, 0.001)[0] == pytest.approx(expected, rel=1e-12)
    assert 0.0 < expected < 1.0
    assert gs.conditional_power(np.r_[d[0], d[0], d[0], d[0]][None], 24, 0.001)[0] in (0.0, 1.0)  # at the max
