"""Scores across data sets (sweeper.stats.across), compared with rliable and scipy on the same numbers."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import stats

from sweeper.stats import across

RUNS, TASKS = 10, 6


def _scores(seed: int = 0, shift: float = 0.0) -> np.ndarray:
    """``(n_runs, n_tasks)`` accuracies of one setting: each task its own level, runs spread around it."""
    rng = np.random.default_rng(seed)
    level = np.linspace(0.6, 0.95, TASKS)
    return np.clip(level + shift + rng.normal(0, 0.03, (RUNS, TASKS)), 0, 1).round(2)  # ties, as accuracies have


def test_iqm_trims_a_quarter_of_all_runs_from_each_end():
    scores = np.arange(1.0, 13.0).reshape(4, 3)  # 12 runs: 3 dropped from each end, mean of 4..9
    assert across.interquartile_mean(scores) == pytest.approx(6.5)
    scores[0, 0] = np.nan  # a missing run: 11 left, 2 dropped from each end, mean of 4..10 without 1
    assert across.interquartile_mean(scores) == pytest.approx(np.mean(np.arange(4.0, 11.0)))


def test_stratified_counts_draw_each_tasks_runs_within_that_task():
    counts = across.stratified_counts(np.array([10, 10, 7]), 50, np.random.default_rng(1))
    assert counts.shape == (50, 10, 3)
    assert np.array_equal(counts.sum(axis=1), np.tile([10, 10, 7], (50, 1)))  # every task keeps its runs
    assert not counts[:, 7:, 2].any()  # a task with 7 runs never draws an 8th
    assert counts[:, :7, 2].any(axis=0).all() and (counts == 0).any()  # with replacement


def _expanded(scores: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """One resample (``counts: (n_runs, n_tasks)``) written out: each task's runs repeated as often as drawn."""
    return [np.repeat(scores[:, t], counts[:, t]) for t in range(scores.shape[1])]


@pytest.mark.parametrize("seed", range(5))
def test_each_resample_is_scored_as_the_resample_written_out(seed):
    rng = np.random.default_rng(seed)
    scores = np.stack([_scores(seed), _scores(seed + 10, 0.02)])
    scores[1, 0, 0] = np.nan  # a missing run
    counts = across.stratified_counts(np.full(TASKS, RUNS), 1, rng)  # one resample: its interval is its value
    drawn = [_expanded(s, counts[0]) for s in scores]
    _, ci = across.iqm_intervals(scores, counts)
    assert ci[0] == pytest.approx([across.interquartile_mean(np.concatenate(d)) for d in drawn])
    taus = np.array([0.6, 0.8, 0.9])
    _, band = across.profile_bands(scores, taus, counts)
    expected = [[np.mean([np.mean(x[np.isfinite(x)] > tau) for x in d]) for tau in taus] for d in drawn]
    assert band[0] == pytest.approx(np.array(expected))
    _, ci = across.improvement_intervals(scores, 0, counts)
    # paired: the reference is resampled with the same counts
    contests = [
        np.mean([(a > b) + 0.5 * (a == b) for a in x[np.isfinite(x)] for b in y[np.isfinite(y)]])
        for x, y in zip(drawn[1], drawn[0])
    ]
    assert ci[0] == pytest.approx([0.5, np.mean(contests)])


def test_performance_profile_is_the_share_of_runs_above_tau_per_task():
    scores = np.array([[0.1, 0.5], [0.3, 0.7], [np.nan, 0.9]])  # task 0 has two runs, task 1 three
    profile = across.performance_profile(scores, np.array([0.0, 0.2, 0.6, 1.0]))
    assert profile == pytest.approx([1.0, (1 / 2 + 1) / 2, (0 + 2 / 3) / 2, 0.0])


def test_probability_of_improvement_counts_ties_half_and_averages_over_tasks():
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([[1.0, 5.0], [0.0, 5.0]])
    # task 0: x=1 vs (1, 0): 0.5 + 1; x=2 vs (1, 0): 1 + 1 -> 3.5 / 4; task 1: x never wins -> 0
    assert across.probability_of_improvement(x, y) == pytest.approx((3.5 / 4 + 0.0) / 2)
    assert across.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_the_reference_improves_on_itself_with_probability_one_half_in_every_resample():
    scores = np.stack([_scores(0), _scores(1, 0.05)])
    counts = across.stratified_counts(np.full(TASKS, RUNS), 30, np.random.default_rng(3))
    point, ci = across.improvement_intervals(scores, 0, counts)
    assert point[0] == 0.5 and ci[:, 0] == pytest.approx([0.5, 0.5])
    assert point[1] > 0.7 and ci[0, 1] > 0.5  # 0.05 above on every task: clearly better


def test_lower_is_better_scores_become_the_baseline_mean_over_the_run():
    assert across.normalized(np.array([0.5, 2.0]), 1.0, higher_is_better=False) == pytest.approx([2.0, 0.5])
    assert across.normalized(np.array([0.8, np.nan]), 0.7, higher_is_better=True)[0] == 0.8


def test_pairwise_signed_rank_p_values_are_scipys_and_holm_corrects_over_every_pair():
    rng = np.random.default_rng(4)
    means = rng.normal(0.8, 0.05, (12, 4))
    means[:, 1] += 0.03  # setting 1 better than the others on most tasks
    pairs = across.pairwise_signed_rank(means)
    assert [(p["a"], p["b"]) for p in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for pair in pairs:
        d = means[:, pair["a"]] - means[:, pair["b"]]
        assert pair["p_value"] == pytest.approx(stats.wilcoxon(d, zero_method="zsplit").pvalue)
        assert pair["wins"] + pair["losses"] == 12
    raw = np.array([p["p_value"] for p in pairs])
    ordered = np.sort(raw)
    holm = np.minimum(np.maximum.accumulate(ordered * np.arange(6, 0, -1)), 1)
    assert sorted(p["p_adjusted"] for p in pairs) == pytest.approx(holm)
    first = pairs[0]
    assert first["statistic"] < 0  # a = 0 is worse than b = 1
    assert first["verdict"] == ("worse" if first["p_adjusted"] < 0.05 else "no_difference")


def test_pairs_with_ties_or_zeros_get_the_p_value_they_would_get_alone():
    rng = np.random.default_rng(9)
    means = rng.normal(0.8, 0.02, (9, 6)).round(2)  # accuracies of few test points: tied differences
    means[3, 4] = np.nan  # a task without runs of setting 4
    for pair in across.pairwise_signed_rank(means):
        d = means[:, pair["a"]] - means[:, pair["b"]]
        d = d[np.isfinite(d)]
        expected = 1.0 if np.all(d == 0) else stats.wilcoxon(d, zero_method="zsplit").pvalue
        assert pair["p_value"] == pytest.approx(expected), pair
        ranks = stats.rankdata(np.abs(d))
        assert pair["statistic"] == pytest.approx(np.sum(np.sign(d) * ranks))
        assert pair["n_tasks"] == d.size


def test_a_pair_that_always_ties_has_p_one_and_no_verdict():
    means = np.tile([[0.7, 0.7, 0.9]], (8, 1))
    pairs = across.pairwise_signed_rank(means)
    assert pairs[0]["p_value"] == 1.0 and pairs[0]["verdict"] == "no_difference"
    assert pairs[1]["verdict"] == "worse" and pairs[1]["p_adjusted"] < 0.05  # 0.7 < 0.9 on 8 of 8 tasks


# --- against rliable (installed with the dev extra) ------------------------------------------------


def _rliable_library():
    """``rliable.library``, importable beside pandas 3.

    rliable 1.2 caps arch below 8, and arch 7 decorates one plotting method with pandas' private
    ``deprecate_kwarg`` as pandas 2 spelled it (pandas 3 takes the warning class first), so importing it
    fails with a TypeError. The decorator only renames a keyword of that plot; the bootstrap rliable uses
    is untouched, so the import goes through with the old spelling mapped to the new one.
    """
    pytest.importorskip("rliable")
    try:
        from rliable import library
    except TypeError:
        from pandas.util import _decorators

        new_spelling = _decorators.deprecate_kwarg
        for name in [m for m in sys.modules if m == "arch" or m.startswith(("arch.", "rliable.library"))]:
            del sys.modules[name]
        try:
            _decorators.deprecate_kwarg = lambda old, new, *a, **k: new_spelling(FutureWarning, old, new, *a, **k)
            from rliable import library
        finally:
            _decorators.deprecate_kwarg = new_spelling
    return library


def test_iqm_and_its_stratified_interval_agree_with_rliable():
    rly = _rliable_library()
    rlm = pytest.importorskip("rliable.metrics")
    scores = _scores(5)
    assert across.interquartile_mean(scores) == pytest.approx(rlm.aggregate_iqm(scores), abs=1e-12)
    np.random.seed(0)  # rliable's StratifiedBootstrap draws from numpy's global state
    reps = 4000
    points, intervals = rly.get_interval_estimates({"x": scores}, lambda s: np.array([rlm.aggregate_iqm(s)]), reps=reps)
    counts = across.stratified_counts(np.full(TASKS, RUNS), reps, np.random.default_rng(0))
    ours, ci = across.iqm_intervals(scores[None], counts)
    assert ours[0] == pytest.approx(points["x"][0], abs=1e-12)
    # two bootstraps of 4000 resamples: the 2.5% and 97.5% points agree to within Monte Carlo error
    width = intervals["x"][1, 0] - intervals["x"][0, 0]
    assert ci[:, 0] == pytest.approx(intervals["x"][:, 0], abs=0.1 * width)


def test_performance_profile_agrees_with_rliable():
    rly = _rliable_library()
    scores = _scores(6)
    taus = np.linspace(0.5, 1.0, 21)
    np.random.seed(1)
    profiles, bands = rly.create_performance_profile({"x": scores}, taus, reps=2000)
    counts = across.stratified_counts(np.full(TASKS, RUNS), 2000, np.random.default_rng(1))
    ours, band = across.profile_bands(scores[None], taus, counts)
    assert ours[0] == pytest.approx(profiles["x"], abs=1e-12)
    assert band[:, 0] == pytest.approx(bands["x"], abs=0.05)  # shares of 60 runs: 3 runs either way


def test_probability_of_improvement_agrees_with_rliable():
    rlm = pytest.importorskip("rliable.metrics")
    x, y = _scores(7, 0.02), _scores(8)
    assert across.probability_of_improvement(x, y) == pytest.approx(rlm.probability_of_improvement(x, y), abs=1e-12)
    assert across.probability_of_improvement(y, x) == pytest.approx(rlm.probability_of_improvement(y, x), abs=1e-12)
    fewer = y[:7]  # rliable allows different numbers of runs; so do we
    assert across.probability_of_improvement(x, fewer) == pytest.approx(
        rlm.probability_of_improvement(x, fewer), abs=1e-12
    )
