import numpy as np
import pytest
from scipy import stats

from sweeper.stats import statistics as st


def test_signed_rank_p_value_matches_scipy_wilcoxon():
    d = np.random.default_rng(0).normal(0.3, 1.0, size=15)
    result = st.signed_rank_test(d)
    assert result.pvalue == pytest.approx(stats.wilcoxon(d).pvalue)
    ranks = stats.rankdata(np.abs(d))
    assert result.statistic == pytest.approx(ranks[d > 0].sum() - ranks[d < 0].sum())


def test_signed_rank_p_value_with_ties_and_zeros_matches_scipy_zsplit():
    d = np.array([0.0, 0.0, 1.0, 1.0, -1.0, 2.0, 3.0, 3.0, -0.5, 4.0])
    assert st.signed_rank_test(d).pvalue == pytest.approx(stats.wilcoxon(d, zero_method="zsplit").pvalue)


def test_the_exact_signed_rank_p_value_is_scipys_p_to_the_bit():
    # Tied or zero differences of up to 13 pairs: scipy runs a permutation test over every sign flip,
    # whose null distribution sweeper counts; accuracies on 70 test points tie often.
    rng = np.random.default_rng(21)
    checked = 0
    for n in [*rng.integers(1, 10, 40), 13]:  # scipy's own test takes seconds at 13 pairs
        d = rng.integers(-4, 5, n) * rng.choice([1 / 70, 0.1, 0.5, 3.0])
        if np.all(d == 0):
            continue
        assert st.signed_rank_test(d).pvalue == stats.wilcoxon(d, zero_method="zsplit").pvalue, d
        checked += 1
    assert checked > 30
    one_zero = np.array([0.0, 1.0, 2.0, 3.0, 4.0, -5.0, 6.0])  # no ties: the zero alone takes the permutation path
    assert st.exact_signed_rank_p(one_zero) == stats.wilcoxon(one_zero, zero_method="zsplit").pvalue == 0.25
    for n in range(1, 14):  # no ties or zeros: scipy's exact distribution
        d = rng.normal(0.3, 1.0, size=n)
        assert st.signed_rank_test(d).pvalue == stats.wilcoxon(d, zero_method="zsplit").pvalue, d


def test_all_zero_differences_give_p_one():
    assert st.signed_rank_test(np.zeros(8)) == (0.0, 1.0)
    assert np.isnan(st.signed_rank_test(np.array([])).pvalue)


def test_divergence_is_the_largest_loss_in_the_signed_rank_test():
    d = np.array([0.1, 0.2, 0.3, -0.05, 0.4, -np.inf, 0.25, 0.15])
    as_big_loss = np.where(np.isinf(d), -10.0, d)
    assert st.signed_rank_test(d).pvalue == pytest.approx(stats.wilcoxon(as_big_loss).pvalue)


def test_smallest_signed_rank_p_is_what_the_exact_test_reaches():
    assert st.smallest_signed_rank_p(5) == pytest.approx(0.0625)
    assert st.smallest_signed_rank_p(5) == pytest.approx(stats.wilcoxon(np.arange(1.0, 6.0)).pvalue)


def test_paired_differences_point_to_better_and_count_divergence_as_loss():
    config = np.array([0.8, 0.6, np.nan, 0.7, np.nan])
    baseline = np.array([0.7, 0.7, 0.7, np.nan, np.nan])
    d = st.paired_differences(config, baseline, higher_is_better=True)
    np.testing.assert_allclose(d[:2], [0.1, -0.1])
    assert d[2] == -np.inf and d[3] == np.inf and d[4] == 0.0
    flipped = st.paired_differences(config, baseline, higher_is_better=False)
    np.testing.assert_allclose(flipped[:2], [-0.1, 0.1])
    assert flipped[2] == -np.inf  # diverging is a loss whichever way the metric points


def test_probability_of_improvement_counts_ties_half():
    assert st.probability_of_improvement(np.array([1.0, 0.0, -1.0, 0.0])) == 0.5
    assert st.probability_of_improvement(np.array([1.0, 1.0, 0.0])) == pytest.approx(2.5 / 3)
    assert st.probability_of_improvement(np.array([-np.inf, 1.0])) == 0.5


def test_wilson_interval_matches_scipy_and_stays_honest_at_the_edges():
    expected = stats.binomtest(8, 10).proportion_ci(method="wilson")
    np.testing.assert_allclose(st.wilson_interval(8, 10), (expected.low, expected.high))
    low, high = st.wilson_interval(5, 5)
    assert high == 1.0 and low < 0.6


def test_holm_adjusts_a_known_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(st.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    assert st.holm(np.array([0.5, 0.6]))[1] == 1.0  # clipped at 1


def test_verdict_needs_adjusted_significance_and_takes_the_test_direction():
    assert st.verdict(0.01, 12.0) == "better"
    assert st.verdict(0.01, -12.0) == "worse"
    assert st.verdict(0.2, 12.0) == "no_difference"
    assert st.verdict(float("nan"), 12.0) == "no_difference"


def test_interquartile_mean_of_a_known_array():
    assert st.interquartile_mean(np.arange(1.0, 9.0)) == 4.5
    assert st.interquartile_mean(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan, 5.0, 6.0, 7.0])) == pytest.approx(4.5)
    odd = np.random.default_rng(4).normal(size=11)
    assert st.interquartile_mean(odd) == pytest.approx(stats.trim_mean(odd, 0.25))


def test_generalization_gap_is_positive_when_overfitting():
    assert st.generalization_gap(np.array([0.99]), np.array([0.8]), higher_is_better=True)[0] == pytest.approx(0.19)
    assert st.generalization_gap(np.array([0.1]), np.array([0.5]), higher_is_better=False)[0] == pytest.approx(0.4)


def test_bootstrap_means_equal_means_of_explicit_resamples():
    rng = np.random.default_rng(1)
    values = np.column_stack([rng.normal(size=12), np.r_[rng.normal(size=11), np.nan]])
    counts = st.bootstrap_counts(12, 50, rng)
    assert counts.shape == (50, 12) and np.all(counts.sum(axis=1) == 12)
    means = st.bootstrap_means(values, counts)
    for b in range(5):
        resample = np.repeat(values, counts[b], axis=0)
        np.testing.assert_allclose(means[b], np.nanmean(resample, axis=0))


def test_bootstrap_is_reproducible_from_the_generator_passed_in():
    a = st.bootstrap_counts(10, 100, np.random.default_rng(7))
    b = st.bootstrap_counts(10, 100, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(2)
    widths = []
    for n in (10, 40, 160):
        values = rng.normal(size=n)
        lo, hi = st.percentile_interval(st.bootstrap_means(values, st.bootstrap_counts(n, 2000, rng)))
        assert lo < values.mean() < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.3)  # ~1/sqrt(n)


def test_percentile_interval_ignores_empty_resamples():
    samples = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan], [3.0, np.nan]])
    lo, hi = st.percentile_interval(samples, 0.5)
    assert lo[0] == pytest.approx(1.5) and hi[0] == pytest.approx(2.5)
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_probability_of_best_splits_ties_and_sums_to_one():
    boot = np.array([[[1.0, 2.0, 2.0]], [[3.0, 2.0, 1.0]]])  # (n_boot=2, n_tasks=1, n_configs=3)
    np.testing.assert_allclose(st.probability_of_best(boot, higher_is_better=True), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(st.probability_of_best(boot, higher_is_better=False), [0.5, 0.0, 0.5])


def test_probability_of_best_across_tasks_uses_average_rank():
    # config 0 wins three tasks narrowly, config 1 wins one by a mile: 0 has the better average rank
    boot = np.array([[[0.51, 0.50, 0.1], [0.51, 0.50, 0.1], [0.51, 0.50, 0.1], [0.0, 100.0, 0.1]]])
    np.testing.assert_allclose(st.probability_of_best(boot, higher_is_better=True), [1.0, 0.0, 0.0])


def test_average_ranks_put_the_best_first_in_either_direction():
    scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.8, 0.5]])
    np.testing.assert_allclose(st.average_ranks(scores, higher_is_better=True), [1.5, 1.5, 3.0])
    np.testing.assert_allclose(st.average_ranks(scores, higher_is_better=False), [2.5, 2.5, 1.0])


def test_friedman_matches_scipy_and_the_average_rank_formula():
    scores = np.random.default_rng(3).normal(size=(8, 4))
    n, k = scores.shape
    result = st.friedman_test(scores)
    expected = stats.friedmanchisquare(*scores.T)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.pvalue == pytest.approx(expected.pvalue)
    r = st.average_ranks(scores, higher_is_better=True)
    assert result.statistic == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4))
    f = (n - 1) * result.statistic / (n * (k - 1) - result.statistic)
    assert result.f_statistic == pytest.approx(f)
    assert result.f_pvalue == pytest.approx(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def test_friedman_of_identical_configurations_finds_nothing():
    assert st.friedman_test(np.ones((4, 3))).pvalue == 1.0


def test_nemenyi_critical_difference_matches_demsar_2006():
    # Demšar (2006), section 3.2.2: four classifiers on 14 data sets, CD = 1.25 at α = 0.05
    assert st.nemenyi_critical_difference(4, 14) == pytest.approx(1.25, abs=0.005)
    assert st.nemenyi_critical_difference(2, 1) == pytest.approx(1.960 * np.sqrt(1.0), abs=1e-3)


def test_minimum_detectable_effect_matches_paired_t_power():
    # G*Power: paired t-test, two-sided α = 0.05, power 0.8, n = 20 -> d = 0.6604
    assert st.minimum_detectable_effect(1.0, 20) == pytest.approx(0.6604, abs=1e-3)
    assert st.minimum_detectable_effect(2.0, 20) == pytest.approx(2 * 0.6604, abs=2e-3)
    assert st.minimum_detectable_effect(1.0, 80) < st.minimum_detectable_effect(1.0, 20) / 1.9
    assert np.isnan(st.minimum_detectable_effect(1.0, 1))


def test_repeats_needed_is_the_fewest_that_detect_the_effect():
    n = st.repeats_needed(0.5, 1.0, alpha=0.01)
    assert (
        st.minimum_detectable_effect(1.0, n, alpha=0.01) <= 0.5 < st.minimum_detectable_effect(1.0, n - 1, alpha=0.01)
    )
    assert st.repeats_needed(0.0, 1.0) is None
    assert st.repeats_needed(1e-4, 1.0, max_n=1000) is None


def test_impute_diverged_uses_the_worst_finite_run():
    values = np.array([[0.5, np.nan], [0.9, 0.7]])
    assert st.impute_diverged(values, higher_is_better=True)[0, 1] == 0.5
    assert st.impute_diverged(values, higher_is_better=False)[0, 1] == 0.9


def test_means_equal_in_exact_arithmetic_tie_whatever_the_order_of_their_terms():
    # Shares of 70 samples: the same multiset in another order sums to a different last bit in float64.
    a = np.array([51, 52, 53, 57, 61, 49, 55]) / 70
    b = a[[2, 4, 3, 6, 5, 0, 1]]
    assert a.mean() != b.mean()
    scores = np.array([[a.mean(), b.mean(), a.mean() - 0.01]])
    np.testing.assert_array_equal(st.ranks(scores, higher_is_better=True), [[1.5, 1.5, 3.0]])
    boot = np.stack([scores] * 4)  # (n_boot, n_tasks, n_configs)
    np.testing.assert_array_equal(st.probability_of_best(boot, higher_is_better=True), [0.5, 0.5, 0.0])


def test_a_configurations_bootstrap_means_do_not_depend_on_the_configurations_beside_it():
    rng = np.random.default_rng(3)
    values = rng.random((7, 40))  # float64 metrics: a BLAS product's blocking would show in the last bit
    counts = st.bootstrap_counts(7, 2_000, rng)
    alone = np.stack([st.bootstrap_means(values[:, c], counts) for c in range(40)], axis=1)
    for width in (3, 17, 40):
        assert np.array_equal(st.bootstrap_means(values[:, :width], counts), alone[:, :width])
    # and they are the resamples' means, to rounding
    np.testing.assert_allclose(alone, (counts @ values) / 7, rtol=1e-14)
