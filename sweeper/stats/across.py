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
  runs of all tasks; a resample draws runs with replacement within each task (:func:`stratified_indices`).
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


def stratified_indices(n_runs: int, n_tasks: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Rows drawn with replacement within each task: ``(n_boot, n_runs, n_tasks)`` ints in ``[0, n_runs)``.

    Stratified bootstrap (Agarwal et al. 2021, Sec. 4): each task keeps its number of runs in every
    resample, so a resample never drops a task. Use one draw for every setting: repeats are paired across
    settings (same data and initial weights), and resampling them jointly keeps the pairs.
    """
    return rng.integers(0, n_runs, size=(n_boot, n_runs, n_tasks))


def resampled(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Every resample of ``scores: (..., n_runs, n_tasks)`` by ``indices: (n_boot, n_runs, n_tasks)``.

    Returns ``(n_boot, ..., n_runs, n_tasks)``.
    """
    scores = np.asarray(scores, dtype=float)
    tasks = np.arange(scores.shape[-1])
    picked = scores[..., indices, tasks]  # (..., n_boot, n_runs, n_tasks)
    return np.moveaxis(picked, -3, 0)


def _iqm_rows(flat: np.ndarray) -> np.ndarray:
    """IQM of each row of ``flat: (m, n)``, NaN left out; NaN where a row has no finite value."""
    ordered = np.sort(flat, axis=-1)  # NaN sorts last
    n = np.isfinite(ordered).sum(axis=-1, keepdims=True)
    cut = n // 4
    position = np.arange(ordered.shape[-1])
    middle = (position >= cut) & (position < n - cut)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n[..., 0] > 0, np.where(middle, ordered, 0.0).sum(-1) / middle.sum(-1), np.nan)


def iqm_intervals(scores: np.ndarray, indices: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's IQM and its stratified bootstrap percentile interval.

    ``scores: (n_settings, n_runs, n_tasks)``; ``indices`` from :func:`stratified_indices`.
    Returns ``(n_settings,)`` point estimates and ``(2, n_settings)`` intervals.
    """
    scores = np.asarray(scores, dtype=float)
    point = _iqm_rows(scores.reshape(scores.shape[0], -1))
    boot = resampled(scores, indices)  # (n_boot, n_settings, n_runs, n_tasks)
    samples = _iqm_rows(boot.reshape(*boot.shape[:2], -1))  # (n_boot, n_settings)
    return point, st.percentile_interval(samples, confidence)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with a score above each τ, averaged over tasks.

    ``scores: (..., n_runs, n_tasks)``, ``taus: (n_taus,)`` -> ``(..., n_taus)``. Each task weighs the
    same (with as many runs on every task this is rliable's fraction over all runs).
    """
    scores = np.asarray(scores, dtype=float)[..., None]  # (..., n_runs, n_tasks, 1)
    finite = np.isfinite(scores)
    above = ((scores > taus) & finite).sum(axis=-3)  # (..., n_tasks, n_taus)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_task = above / finite.sum(axis=-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task with no finite run: left out
        return np.nanmean(per_task, axis=-2)


def profile_bands(
    scores: np.ndarray, taus: np.ndarray, indices: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's performance profile and its stratified bootstrap band.

    ``scores: (n_settings, n_runs, n_tasks)`` -> ``(n_settings, n_taus)`` and ``(2, n_settings, n_taus)``.
    """
    point = performance_profile(scores, taus)
    # one setting at a time: (n_boot, n_runs, n_tasks, n_taus) at once for all of them would not fit
    samples = np.stack([performance_profile(resampled(s, indices), taus) for s in scores], axis=1)
    return point, st.percentile_interval(samples, confidence)  # samples: (n_boot, n_settings, n_taus)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y): per task the chance that a run of X scores above a run of Y (ties half), averaged over tasks.

    ``x, y: (..., n_runs, n_tasks)`` -> ``(...)``. Per task this is the Mann–Whitney U statistic of X
    against Y over ``n_x * n_y`` (rliable's ``probability_of_improvement``); NaN runs are left out.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    y_finite = np.isfinite(y)
    wins = np.zeros(np.broadcast_shapes(x.shape[:-2], y.shape[:-2]) + x.shape[-1:])  # (..., n_tasks)
    pairs = np.zeros_like(wins)
    for i in range(x.shape[-2]):  # one run of x against every run of y: memory stays that of the inputs
        xi = x[..., i : i + 1, :]  # (..., 1, n_tasks)
        both = np.isfinite(xi) & y_finite
        wins += (((xi > y) + 0.5 * (xi == y)) * both).sum(axis=-2)
        pairs += both.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_task = wins / pairs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task where no pair has both runs: left out
        return np.nanmean(per_task, axis=-1)


def improvement_intervals(
    scores: np.ndarray, reference: int, indices: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Each setting's P(setting > reference) and its stratified bootstrap percentile interval.

    ``scores: (n_settings, n_runs, n_tasks)``; ``reference`` the index of the setting compared with (no
    noise). Returns ``(n_settings,)`` and ``(2, n_settings)``; the reference against itself is 0.5.
    """
    scores = np.asarray(scores, dtype=float)
    point = probability_of_improvement(scores, scores[reference])
    against = resampled(scores[reference], indices)  # (n_boot, n_runs, n_tasks)
    samples = np.stack([probability_of_improvement(resampled(s, indices), against) for s in scores], axis=1)
    return point, st.percentile_interval(samples, confidence)  # samples: (n_boot, n_settings)


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
    compared = []
    for a, b in combinations(range(means.shape[1]), 2) if pairs is None else pairs:
        both = np.isfinite(means[:, a]) & np.isfinite(means[:, b])
        diff = means[both, a] - means[both, b]
        test = st.signed_rank_test(diff)
        compared.append(
            {
                "a": a,
                "b": b,
                "n_tasks": int(diff.size),
                "median_difference": float(np.median(diff)) if diff.size else float("nan"),
                "wins": int((diff > 0).sum()),
                "losses": int((diff < 0).sum()),
                "statistic": test.statistic,
                "p_value": test.pvalue,
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
