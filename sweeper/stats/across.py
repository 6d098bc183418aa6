"""Which noise settings generalize across data sets: aggregate scores over tasks, as rliable computes them.

Pure functions over arrays, in rliable's layout (Agarwal et al. 2021, "Deep reinforcement learning at the
edge of the statistical precipice", NeurIPS): ``scores: (n_runs, n_tasks)`` is one setting's normalized
score of each run (repeat) on each task, ``scores: (n_settings, n_runs, n_tasks)`` every setting's. NaN is
a run that is missing (a partial sweep); every statistic leaves it out.

* **Normalized scores** (:func:`normalized`): tasks must be on one scale before runs of different tasks
  are pooled. Higher-is-better metrics here are already on one (accuracy is a share of the test part,
  R² is 1 − MSE / the targets' variance), so they stay as they are; lower-is-better ones (loss, MSE,
  ECE) become the ratio of the task's baseline mean to the run's value, 1 = as good as no noise (the
  baseline is the reference score, as human and random scores are in Atari's normalized score).
  Unlike a min-max over all settings, neither rule depends on which other settings are in the sweep.
* **Interquartile mean** with **stratified bootstrap** intervals: the mean of the middle 50% of all
  runs of all tasks; a resample draws runs with replacement within each task (:func:`stratified_counts`).
* **Performance profile**: the fraction of runs whose score exceeds τ, averaged over tasks, for a grid of τ.
* **Probability of improvement** P(X > Y): per task the Mann–Whitney U statistic over the runs of two
  settings divided by the number of pairs (ties half), averaged over tasks.
* **Pairwise signed-rank tests with Holm** over the per-task means (Benavoli, Corani & Mangili 2016,
  "Should we really use post-hoc tests based on mean-ranks?", JMLR 17): a mean-rank post-hoc test such
  as Nemenyi's decides whether A differs from B by ranks that depend on every other setting in the pool;
  the Wilcoxon signed-rank test on A's and B's per-task scores depends on A and B only.

Randomness comes only from a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
from scipy import stats

from sweeper.stats import statistics as st
from sweeper.stats.matrices import TaskMatrix

#: What a task's scores are divided by or kept as, by direction (see the module's docstring).
NORMALIZATION = {
    True: "as they are (accuracy and R² share one scale over data sets)",
    False: "the data set's no-noise mean over the run's value (1 = as good as no noise)",
}


def normalized(values: np.ndarray, baseline_mean: float, *, higher_is_better: bool) -> np.ndarray:
    """One task's values on the scale every task shares: as they are, or the baseline's mean over them.

    ``values: (...)`` of one task's metric (NaN stays NaN); ``baseline_mean`` that task's no-noise mean.
    A lower-is-better value of 0 (a perfect run) becomes +inf, which ranks above everything.
    """
    values = np.asarray(values, dtype=float)
    if higher_is_better:
        return values.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return baseline_mean / values


def interquartile_mean(scores: np.ndarray) -> float:
    """IQM over every finite run of every task. ``scores: (n_runs, n_tasks)``.

    rliable's ``aggregate_iqm``: ``scipy.stats.trim_mean(scores, 0.25, axis=None)``.
    """
    return st.interquartile_mean(np.asarray(scores, dtype=float).ravel())


def stratified_counts(runs_per_task: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each run of each task is drawn in each stratified bootstrap resample.

    ``runs_per_task: (n_tasks,)``, task t's runs being rows ``[0, runs_per_task[t])``; returns
    ``(n_boot, max runs, n_tasks)`` ints, each task's column summing to its number of runs. Stratified
    bootstrap (Agarwal et al. 2021, Sec. 4): runs are drawn with replacement within each task, so every
    resample keeps every task with its number of runs. Use one draw for every setting: repeats are paired
    across settings (same data and initial weights), and resampling them jointly keeps the pairs. Counts
    rather than drawn rows make every statistic of a resample a weighted sum over the runs.
    """
    runs_per_task = np.asarray(runs_per_task, dtype=int)
    counts = np.zeros((n_boot, int(runs_per_task.max()), runs_per_task.size), dtype=np.int64)
    for t, n in enumerate(runs_per_task):
        counts[:, :n, t] = st.bootstrap_counts(int(n), n_boot, rng)
    return counts


def weighted_iqm(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The IQM of each resample, given as how often each run is drawn.

    ``scores: (n_runs, n_tasks)``, NaN left out; ``weights: (n_boot, n_runs, n_tasks)`` -> ``(n_boot,)``.
    A run drawn w times fills w places of the resample's sorted values; the IQM keeps places
    ``[floor(n/4), n - floor(n/4))`` (``scipy.stats.trim_mean(., 0.25)``), so each run counts with the
    overlap of its places and those.
    """
    flat = np.asarray(scores, dtype=float).ravel()
    finite = np.isfinite(flat)
    order = np.argsort(flat[finite], kind="stable")
    values = flat[finite][order]
    w = np.asarray(weights, dtype=float).reshape(len(weights), -1)[:, finite][:, order]  # (n_boot, n_finite)
    n = w.sum(axis=1, keepdims=True)
    cut = np.floor(n / 4)
    upper = np.cumsum(w, axis=1)
    kept = np.clip(np.minimum(upper, n - cut) - np.maximum(upper - w, cut), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (kept @ values) / (n - 2 * cut)[:, 0]


def iqm_intervals(scores: np.ndarray, counts: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's IQM and its stratified bootstrap percentile interval.

    ``scores: (n_settings, n_runs, n_tasks)``; ``counts`` from :func:`stratified_counts`.
    Returns ``(n_settings,)`` point estimates and ``(2, n_settings)`` intervals.
    """
    point = np.array([interquartile_mean(s) for s in scores])
    samples = np.stack([weighted_iqm(s, counts) for s in scores], axis=1)  # (n_boot, n_settings)
    return point, st.percentile_interval(samples, confidence)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with a score above each τ, averaged over tasks.

    ``scores: (..., n_runs, n_tasks)``, ``taus: (n_taus,)`` -> ``(..., n_taus)``. Each task weighs the
    same (with as many runs on every task this is rliable's fraction over all runs).
    """
    scores = np.asarray(scores, dtype=float)
    each = scores.reshape(-1, *scores.shape[-2:])  # (settings, n_runs, n_tasks)
    profiles = [_weighted_profile(s, taus, _by_task(np.ones((1, *s.shape))))[0] for s in each]  # every run once
    return np.stack(profiles).reshape(*scores.shape[:-2], len(taus))


def _by_task(counts: np.ndarray) -> np.ndarray:
    """``counts: (n_boot, n_runs, n_tasks)`` as contiguous floats ``(n_tasks, n_boot, n_runs)``: one matrix
    product per task (a strided operand would take numpy's slow path)."""
    return np.ascontiguousarray(np.asarray(counts, dtype=float).transpose(2, 0, 1))


def _weighted_profile(scores: np.ndarray, taus: np.ndarray, by_task: np.ndarray) -> np.ndarray:
    """The profile of each resample. ``scores: (n_runs, n_tasks)``, ``by_task: (n_tasks, n_boot, n_runs)``
    from :func:`_by_task` -> ``(n_boot, n_taus)``."""
    finite = np.isfinite(scores)
    above = ((scores[..., None] > taus) & finite[..., None]).astype(float)  # (n_runs, n_tasks, n_taus)
    drawn = by_task @ np.ascontiguousarray(above.transpose(1, 0, 2))  # (n_tasks, n_boot, n_taus): drawn runs above τ
    with np.errstate(invalid="ignore", divide="ignore"):
        per_task = drawn / (by_task @ finite.T.astype(float)[..., None])  # over the drawn runs that finished
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task with no finite run: left out
        return np.nanmean(per_task, axis=0)


def profile_bands(
    scores: np.ndarray, taus: np.ndarray, counts: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's performance profile and its stratified bootstrap band.

    ``scores: (n_settings, n_runs, n_tasks)``; ``counts`` from :func:`stratified_counts`.
    Returns ``(n_settings, n_taus)`` and ``(2, n_settings, n_taus)``.
    """
    point = performance_profile(scores, taus)
    by_task = _by_task(counts)
    samples = np.stack([_weighted_profile(s, taus, by_task) for s in scores], axis=1)  # (n_boot, n_settings, n_taus)
    return point, st.percentile_interval(samples, confidence)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): per task the chance that a run of X scores above a run of Y (ties half), averaged over tasks.

    ``x: (n_runs_x, n_tasks)``, ``y: (n_runs_y, n_tasks)``. Per task this is the Mann–Whitney U statistic
    of X against Y over ``n_x * n_y`` (rliable's ``probability_of_improvement``); NaN runs are left out.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    wins, pairs = _contests(x, y)  # (n_runs_x, n_runs_y, n_tasks) each
    with np.errstate(invalid="ignore", divide="ignore"):
        per_task = wins.sum(axis=(0, 1)) / pairs.sum(axis=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task where no pair has both runs: left out
        return float(np.nanmean(per_task))


def _contests(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every run of x against every run of y, per task: 1 won, 0.5 tied, 0 lost, and whether both finished.

    ``x: (n_x, n_tasks)``, ``y: (n_y, n_tasks)`` -> two ``(n_x, n_y, n_tasks)``.
    """
    a, b = x[:, None, :], y[None, :, :]
    both = (np.isfinite(a) & np.isfinite(b)).astype(float)
    return ((a > b) + 0.5 * (a == b)) * both, both


def improvement_intervals(
    scores: np.ndarray, reference: int, counts: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's P(setting > reference) and its stratified bootstrap percentile interval.

    ``scores: (n_settings, n_runs, n_tasks)``; ``reference`` the index of the setting compared with (no
    noise); ``counts`` from :func:`stratified_counts`, one draw for both sides of each contest (the
    repeats are paired). Returns ``(n_settings,)`` and ``(2, n_settings)``; the reference against itself
    is 0.5.
    """
    scores = np.asarray(scores, dtype=float)
    point = np.array([probability_of_improvement(s, scores[reference]) for s in scores])
    c = _by_task(counts)  # (n_tasks, n_boot, n_runs)
    samples = []
    for s in scores:
        wins, pairs = (np.ascontiguousarray(m.transpose(2, 0, 1)) for m in _contests(s, scores[reference]))
        # in a resample, the contest of runs i and j counts c_i * c_j times: c^T W c per task
        won = ((c @ wins) * c).sum(axis=2)
        held = ((c @ pairs) * c).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_task = won / held  # (n_tasks, n_boot)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            samples.append(np.nanmean(per_task, axis=0))
    return point, st.percentile_interval(np.stack(samples, axis=1), confidence)  # (n_boot, n_settings)


def task_means(scores: np.ndarray) -> np.ndarray:
    """Each setting's mean over its finite runs, per task: ``(n_settings, n_runs, n_tasks)`` -> ``(n_tasks,
    n_settings)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task with no finite run of a setting: NaN
        return np.nanmean(np.asarray(scores, dtype=float), axis=1).T


def pairwise_signed_rank(
    means: np.ndarray, alpha: float = 0.05, *, pairs: list[tuple[int, int]] | None = None
) -> list[dict]:
    """Pairs of settings compared over tasks by the Wilcoxon signed-rank test, Holm over the pairs compared.

    ``means: (n_tasks, n_settings)`` per-task mean normalized scores (higher is better). For each pair
    (a, b), a < b: the per-task differences ``a - b``, their median, the test's sum of signed ranks
    (positive when a tends to be better), its two-sided p-value (``scipy.stats.wilcoxon``, zero
    differences split: :func:`sweeper.stats.statistics.signed_rank_test`), the Holm-adjusted p-value
    over the pairs compared, and the verdict for a (``better``, ``worse``, ``no_difference``).
    ``pairs`` defaults to all ``k(k-1)/2`` (Benavoli et al.'s all-pairs comparison); every setting against
    one reference is ``[(s, reference) for s != reference]``. A task where either setting has no mean is
    left out of that pair.
    """
    means = np.asarray(means, dtype=float)
    pairs = list(combinations(range(means.shape[1]), 2)) if pairs is None else list(pairs)
    first, second = (np.array([p[i] for p in pairs], dtype=int) for i in (0, 1))
    diffs = means[:, first] - means[:, second]  # (n_tasks, n_pairs)
    statistic, p_value = _signed_rank_tests(diffs)
    compared = []
    for j, (a, b) in enumerate(pairs):
        diff = diffs[:, j][~np.isnan(diffs[:, j])]
        compared.append(
            {
                "a": a,
                "b": b,
                "n_tasks": int(diff.size),
                "median_difference": float(np.median(diff)) if diff.size else float("nan"),
                "wins": int((diff > 0).sum()),
                "losses": int((diff < 0).sum()),
                "statistic": float(statistic[j]),
                "p_value": float(p_value[j]),
            }
        )
    adjusted = st.holm(np.array([p["p_value"] for p in compared], dtype=float))
    for pair, p in zip(compared, adjusted):
        pair["p_adjusted"] = float(p)
        pair["verdict"] = st.verdict(p, pair["statistic"], alpha) if np.isfinite(p) else "no_difference"
    return compared


def task_scores(tasks: list[TaskMatrix], base: int, *, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """A sweep's test metric as normalized scores in rliable's layout, and each task's baseline mean.

    ``tasks``: one :class:`TaskMatrix` per task (``values: (n_repeats, n_configs)``), ``base`` the no-noise
    column. Returns ``scores: (n_configs, n_runs, n_tasks)``, ``n_runs`` the most repeats of any task (a task
    with fewer has NaN rows), and ``baseline_means: (n_tasks,)`` in the metric's own units. A diverged run
    scores as the worst finished run of its task, as it does in the ranks across tasks
    (:func:`sweeper.stats.statistics.impute_diverged`); a missing run is NaN.
    """
    n_runs = max(t.values.shape[0] for t in tasks)
    n_configs = tasks[0].values.shape[1]
    scores = np.full((n_configs, n_runs, len(tasks)), np.nan)
    baseline_means = np.full(len(tasks), np.nan)
    for j, t in enumerate(tasks):
        values = np.where(t.present, st.impute_diverged(t.values, higher_is_better=higher_is_better), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no baseline run finished: NaN
            baseline_means[j] = np.nanmean(values[:, base])
        scores[:, : values.shape[0], j] = normalized(values, baseline_means[j], higher_is_better=higher_is_better).T
    return scores, baseline_means


def _signed_rank_tests(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sweeper.stats.statistics.signed_rank_test` of each column of ``diffs: (n_tasks, n_pairs)``
    (NaN rows of a column left out): sums of signed ranks and two-sided p-values, ``(n_pairs,)`` each.

    scipy chooses the exact distribution only where a sample has neither ties nor zeros, and decides it
    for a whole array at once; so the columns without either (most of them) go to scipy in one call, and
    each other column alone, as it would be tested by itself.
    """
    n_pairs = diffs.shape[1]
    statistic, p_value = np.zeros(n_pairs), np.ones(n_pairs)
    ordered = np.sort(np.abs(diffs), axis=0)
    clean = np.isfinite(diffs).all(axis=0) & (diffs != 0).all(axis=0) & (np.diff(ordered, axis=0) != 0).all(axis=0)
    if clean.any() and diffs.shape[0] > 0:
        d = diffs[:, clean]
        statistic[clean] = (np.sign(d) * stats.rankdata(np.abs(d), axis=0)).sum(axis=0)
        p_value[clean] = stats.wilcoxon(d, zero_method="zsplit", axis=0).pvalue
    for j in np.flatnonzero(~clean):
        test = st.signed_rank_test(diffs[~np.isnan(diffs[:, j]), j])
        statistic[j], p_value[j] = test.statistic, test.pvalue
    return statistic, p_value
