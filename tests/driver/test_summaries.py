"""The interval each trial carries in Optuna's study: a round's trials at once, the same numbers as trial by trial."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sweeper.driver import _optuna
from sweeper.stats import statistics as st


def intervals_resample_by_resample(tasks, repeats, values):
    """What the driver computed before a round was one call: every one of the 10,000 resamples' means."""
    rng = np.random.default_rng(_optuna.CI_SEED)
    counts = [st.bootstrap_counts(repeats, _optuna.CI_RESAMPLES, rng).astype(float) for _ in tasks]
    boot = []
    for task, k in zip(tasks, counts):
        table = np.full((repeats, len(values)), np.nan)
        for i, per_task in enumerate(values):
            for repeat, value in per_task.get(task, {}).items():
                table[repeat, i] = value
        boot.append(st.bootstrap_means(table, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = st.percentile_interval(np.nanmean(np.stack(boot), axis=0), _optuna.CI_CONFIDENCE)
    return [[float(interval[0, i]), float(interval[1, i])] for i in range(len(values))]


def random_round(rng, tasks, repeats, trials):
    """Accuracies on 70 test points (ties galore), some diverged (NaN), some repeats not run yet."""
    out = []
    for _ in range(trials):
        per_task = {}
        for task in tasks:
            runs = {r: float(rng.integers(0, 71)) / 70 for r in range(repeats) if rng.random() > 0.1}
            per_task[task] = {r: math.nan if rng.random() < 0.1 else v for r, v in runs.items()}
        out.append(per_task)
    return out


@pytest.mark.parametrize(("tasks", "repeats"), [(["a"], 1), (["a"], 2), (["a"], 5), (["a"], 10), (["a", "b"], 3)])
def test_a_rounds_intervals_are_those_of_every_resample(tasks, repeats):
    rng = np.random.default_rng(repeats)
    values = random_round(rng, tasks, repeats, 12) + [{t: {r: math.nan for r in range(repeats)} for t in tasks}]

    got = _optuna.Summaries(tasks, repeats).intervals(values)

    expected = intervals_resample_by_resample(tasks, repeats, values)
    for (low, high), (want_low, want_high) in zip(got, expected):
        for value, want in ((low, want_low), (high, want_high)):
            assert (value is None) == (not math.isfinite(want))
            if value is not None:
                assert value == pytest.approx(want, rel=0, abs=1e-12)
    assert got[-1] == [None, None]  # every run diverged: no interval
    assert sum(low is not None for low, _ in got) >= 10


def test_few_repeats_leave_few_distinct_resamples():
    summaries = _optuna.Summaries(["a"], 2)

    # 10,000 resamples of two repeats draw (2, 0), (1, 1) or (0, 2): three means per trial, not 10,000.
    assert summaries.counts[0].shape == (3, 2)
    assert summaries.weights.sum() == _optuna.CI_RESAMPLES


def test_percentiles_by_sorting_are_numpys_of_the_repeated_samples():
    rng = np.random.default_rng(7)
    for _ in range(50):
        distinct, columns = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        samples = rng.integers(0, 9, (distinct, columns)) / 7.0
        samples[rng.random(samples.shape) < 0.2] = np.nan
        weights = rng.integers(1, 30, distinct)

        got = st.percentile_interval_by_sorting(samples, 0.95, weights)
        once_each = st.percentile_interval_by_sorting(samples, 0.9)

        expected = st.percentile_interval(np.repeat(samples, weights, axis=0), 0.95)
        np.testing.assert_array_equal(got, expected)  # to the bit, NaN where a column has no finite sample
        np.testing.assert_array_equal(once_each, st.percentile_interval(samples, 0.9))
