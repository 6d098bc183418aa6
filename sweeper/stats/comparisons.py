"""Every configuration of a sweep against its no-noise baseline: means, intervals, paired tests with
Holm's correction over every planned comparison, verdicts, the chosen configuration, ranks across tasks.

Pure functions of the store's rows (``sweep``, ``trials``, ``runs``: its records, or any mappings of
their columns, read by column name); the report puts the result in words (``sweeper.report``), the
driver records the verdicts in Optuna's study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweeper import metrics
from sweeper.errors import SweeperError
from sweeper.noise.spec import BASELINE
from sweeper.stats import racing
from sweeper.stats import statistics as st
from sweeper.stats.matrices import TaskMatrix, configs_of, direction, nanmean, task_matrices

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
#: What ``--at`` may compare on: the last epoch's metrics, or those at each run's best validation epoch.
AT = ("last", "best_val")


@dataclass(frozen=True)
class Table:
    """Every configuration's statistics over some tasks (one, or all of them stratified), and what the
    words about them need: the tasks whose baseline diverged on every repeat, the smallest p-value the
    signed-rank test can give (one task), the most repeats of a task."""

    baseline: dict
    chosen: dict | None
    configs: list[dict]  # best first
    unpaired: list[str]
    smallest_p: float | None
    repeats: int
    n_tasks: int
    #: A raced or extended sweep's verdicts came from a sequential test (``test``: which): the runs it has, and the
    #: runs a fixed sweep of its maximum repeats would have (None for the exact signed-rank test).
    sequential: dict | None = None


@dataclass(frozen=True)
class Comparison:
    """A sweep's configurations compared with its baseline (:func:`compare`)."""

    metric: str  # what means, intervals and verdicts are on (the test part)
    selection: str  # what the configurations were ordered and chosen on
    shared: bool  # no validation part: selection and estimate share the test part
    higher_is_better: bool
    configs: list[dict]  # the trials with runs: trial, label, params, ran
    pending: list[int]  # trials without runs
    tasks: list[TaskMatrix]
    chosen_on: list[TaskMatrix]
    family: int  # the number of comparisons Holm corrects over
    top: Table  # all tasks (the one task)
    per_task: list[Table]  # one per task
    across_tasks: dict | None  # several tasks: ranks, Friedman, Nemenyi


def compare(
    sweep: dict,
    trials: list[dict],
    runs: list[dict],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    at: str = "last",
    planned: int | None = None,
    config_fields: dict[int, dict] | None = None,
    plan: racing.Plan | None = None,
) -> Comparison:
    """Every configuration with runs against the baseline; see :func:`sweeper.report.build_report`.

    ``config_fields`` (by trial number) go into each configuration's row after its ``params``. ``plan``:
    a raced or extended sweep's (``sweeper.stats.racing.plan_of``): its verdicts then come from its
    sequential test (``racing.test``), and a raced sweep's rows say how many repeats each configuration ran and why it
    stopped; None keeps the exact signed-rank test.
    """
    selected_on = sweep.get("metric")
    if not selected_on:
        raise SweeperError(f"sweep {sweep.get('name')!r} names no metric")
    if at not in AT:
        raise SweeperError(f"--at: {at!r} is not allowed; allowed: {', '.join(AT)}")
    higher_is_better = direction(sweep)
    shared = selected_on.startswith("test_")  # no validation part: selection and estimate share the test part
    suffix = metrics.base(selected_on)
    early = "early_" if at == "best_val" else ""
    metric = f"{early}test_{suffix}"
    selection = selected_on if selected_on.startswith("train_") else early + selected_on
    configs, pending = configs_of(trials, {row["trial"] for row in runs})
    for config in configs:
        config.update((config_fields or {}).get(config["trial"], {}))
    base = next(i for i, c in enumerate(configs) if c["params"] == {"placement": BASELINE})
    numbers = [c["trial"] for c in configs]
    tasks = task_matrices(runs, metric, numbers, higher_is_better=higher_is_better)
    chosen_on = (
        tasks if selection == metric else task_matrices(runs, selection, numbers, higher_is_better=higher_is_better)
    )
    ece_name = f"{early}test_ece"
    ece = (
        task_matrices(runs, ece_name, numbers, higher_is_better=False)
        if any(row.get(ece_name) is not None for row in runs)
        else None
    )
    family = max(planned or 0, len(configs)) - 1  # Holm's family: every planned comparison with the baseline
    # A race read the selection metric at each run's end (the driver's), whatever epoch the report compares at.
    raced_on = (
        task_matrices(runs, selected_on, numbers, higher_is_better=higher_is_better)
        if plan is not None and plan.raced and selection != selected_on
        else chosen_on
    )

    rng = np.random.default_rng(seed)
    counts = [st.bootstrap_counts(t.values.shape[0], n_boot, rng) for t in tasks]
    settings = dict(
        configs=configs,
        base=base,
        higher_is_better=higher_is_better,
        alpha=alpha,
        family=family,
        shared=shared,
        plan=plan,
    )
    per_task = [
        _table([t], [s], [k], None if ece is None else [e], raced_on=[r], **settings)
        for t, s, k, e, r in zip(tasks, chosen_on, counts, ece or tasks, raced_on)
    ]
    top = per_task[0] if len(tasks) == 1 else _table(tasks, chosen_on, counts, ece, raced_on=raced_on, **settings)
    return Comparison(
        metric=metric,
        selection=selection,
        shared=shared,
        higher_is_better=higher_is_better,
        configs=configs,
        pending=pending,
        tasks=tasks,
        chosen_on=chosen_on,
        family=family,
        top=top,
        per_task=per_task,
        across_tasks=_across_tasks(chosen_on, configs, higher_is_better, alpha) if len(tasks) > 1 else None,
    )


def verdicts(
    sweep: dict, trials: list[dict], runs: list[dict], *, planned: int | None = None, plan: racing.Plan | None = None
) -> dict[int, str]:
    """Each trial's verdict against the baseline (``better``, ``worse``, ``no_difference``, ``equivalent``,
    ``incomparable``, ``baseline``) by trial number, as the report gives it at its defaults; empty where
    nothing compares. ``plan``: as :func:`compare`'s (a raced or extended sweep: the sequential test).

    For a fixed sweep only what a verdict needs: per configuration the paired test of :func:`compare` (the
    same function on the same pairs), then Holm over the family; not the means, intervals and power the
    report shows, which took most of the time of a sweep's end (tests/report/test_verdicts.py holds the two
    together).
    """
    if not runs:
        return {}
    try:
        if plan is not None:
            compared = compare(sweep, trials, runs, n_boot=100, planned=planned, plan=plan)
            return {row["trial"]: row["verdict"] for row in compared.top.configs}
        if not sweep.get("metric"):
            raise SweeperError(f"sweep {sweep.get('name')!r} names no metric")
        higher_is_better = direction(sweep)
    except SweeperError:
        return {}  # the report says why
    configs, _ = configs_of(trials, {row["trial"] for row in runs})
    base = next(i for i, c in enumerate(configs) if c["params"] == {"placement": BASELINE})
    numbers = [c["trial"] for c in configs]
    tasks = task_matrices(runs, f"test_{metrics.base(sweep['metric'])}", numbers, higher_is_better=higher_is_better)
    paired = [t for t in tasks if np.isfinite(t.values[:, base]).any()]
    found = {numbers[base]: "baseline"}
    if not paired:
        return found | {n: "incomparable" for c, n in enumerate(numbers) if c != base}
    compared = [c for c in range(len(configs)) if c != base]
    seen: dict = {}  # configurations with the same differences have the same test (few repeats: often)
    tests = [_paired_test(paired, c, base, higher_is_better, seen)[1] for c in compared]
    family = max(planned or 0, len(configs)) - 1
    unrun = max(0, family - len(configs) + 1)  # planned comparisons without runs: p = 1, as in _table
    p_values = np.concatenate([np.array([t.pvalue for t in tests], dtype=float), np.ones(unrun)])
    for c, test, p in zip(compared, tests, st.holm(p_values)):
        found[numbers[c]] = st.verdict(float(p), test.statistic, ALPHA)
    return found


def _table(
    tasks: list[TaskMatrix],
    chosen_on: list[TaskMatrix],
    counts: list[np.ndarray],
    ece: list[TaskMatrix] | None,
    *,
    configs,
    base,
    higher_is_better,
    alpha,
    family,
    shared,
    plan=None,
    raced_on=None,
) -> Table:
    """Every configuration's statistics over the given tasks (one task, or all of them stratified).

    ``tasks`` hold the test metric (means, intervals, differences, verdicts), ``chosen_on`` the metric
    the sweep selected on (order, P(best), the chosen configuration), ``ece`` the test part's
    calibration error. With several tasks, means are averages of per-task means, bootstrap resamples
    repeats within each task, the paired test ranks within each task, and p(best) is p(best average rank).
    ``family`` is the number of comparisons Holm corrects over (every planned one). ``raced_on``: the
    metric a raced sweep's race read (the selection metric at each run's end), replayed for its stop reasons.
    """
    boot_means = nanmean(np.stack([st.bootstrap_means(t.values, k) for t, k in zip(tasks, counts)]))
    # A task whose baseline diverged on every repeat has nothing to pair with: it is left out of every
    # comparison (a finished run would otherwise "win" each repeat against no value at all).
    paired = [(t, k) for t, k in zip(tasks, counts) if np.isfinite(t.values[:, base]).any()]
    unpaired = [t.name for t in tasks if not np.isfinite(t.values[:, base]).any()]
    raw_deltas = [t.values - t.values[:, [base]] for t, _ in paired]  # (n_repeats, n_configs) each, float64
    boot_deltas = (
        nanmean(np.stack([st.bootstrap_means(d, k) for d, (_, k) in zip(raw_deltas, paired)]))
        if paired
        else np.full((counts[0].shape[0], len(configs)), np.nan)
    )
    imputed = [st.impute_diverged(t.values, higher_is_better=higher_is_better) for t in chosen_on]
    if plan is not None and plan.raced:
        imputed = [_paired_scores(v, t.present, base) for v, t in zip(imputed, chosen_on)]
    boot_scores = np.stack(
        [st.bootstrap_means(v, k) for v, k in zip(imputed, counts)], axis=1
    )  # (n_boot, n_tasks, n_configs)
    p_best = st.probability_of_best(boot_scores, higher_is_better=higher_is_better)
    if not any(np.isfinite(t.values).any() for t in chosen_on):
        p_best[:] = np.nan  # every run diverged: an even split of P(best) would name a winner by tie-break
    rank = st.average_ranks(np.stack([nanmean(v) for v in imputed]), higher_is_better=higher_is_better)
    mean_ci = st.percentile_interval(boot_means, CONFIDENCE)
    delta_ci = st.percentile_interval(boot_deltas, CONFIDENCE)
    level = alpha / max(family, 1)  # Holm's threshold for the smallest p-value

    rows = []
    for c, config in enumerate(configs):
        finite_runs = np.concatenate([t.values[t.present[:, c], c] for t in tasks])
        finite_runs = finite_runs[np.isfinite(finite_runs)]
        row = {
            **config,
            "n": int(finite_runs.size),
            "diverged": int(sum(t.diverged[:, c].sum() for t in tasks)),
            "failed_to_learn": int(sum(t.unlearned[:, c].sum() for t in tasks)),
            "missing": int(sum((~t.present[:, c]).sum() for t in tasks)),
            "selection_mean": _mean_of_task_means([t.values[:, c] for t in chosen_on]),
            "mean": _mean_of_task_means([t.values[:, c] for t in tasks]),
            "std": _pooled_std([t.values[:, c] for t in tasks]),
            "median": float(np.median(finite_runs)) if finite_runs.size else None,
            "iqm": st.interquartile_mean(finite_runs),
            "ci": mean_ci[:, c].tolist(),
            "ece": None if ece is None else _mean_of_task_means([t.values[:, c] for t in ece]),
            "gap": _mean_of_task_means([t.gaps[:, c] for t in tasks]),
            "p_best": float(p_best[c]),
            "rank": float(rank[c]),
        }
        if c == base:
            row.update(
                delta=0.0,
                delta_ci=[0.0, 0.0],
                p_improve=None,
                p_improve_ci=None,
                p_value=None,
                p_adjusted=None,
                signed_rank_sum=None,
                verdict="baseline",
                mde=None,
                n_needed=None,
            )
        elif not paired:
            row.update(
                delta=None,
                delta_ci=[None, None],
                p_improve=None,
                p_improve_ci=None,
                p_value=None,
                p_adjusted=None,
                signed_rank_sum=None,
                verdict="incomparable",
                mde=None,
                n_needed=None,
                delta_sd=None,
                n_pairs=0,
            )
        else:
            row["delta"] = _zero_if_rounding(
                _mean_of_task_means([d[:, c] for d in raw_deltas]), [t.values[:, [c, base]] for t, _ in paired]
            )
            row["delta_ci"] = delta_ci[:, c].tolist()
            row.update(_comparison([t for t, _ in paired], c, base, higher_is_better, level))
        rows.append(row)

    baseline = rows[base]
    compared = [r for r in rows[:base] + rows[base + 1 :] if r.get("verdict") != "incomparable"]
    # Configurations planned but without runs yet count as comparisons that found nothing (p = 1), so
    # that a partial sweep corrects over what it set out to compare, as the finished sweep will.
    unrun = max(0, family - len(rows) + 1)
    p_values = np.concatenate([np.array([r["p_value"] for r in compared], dtype=float), np.ones(unrun)])
    for r, p in zip(compared, st.holm(p_values)):
        r["p_adjusted"] = float(p)
        r["verdict"] = st.verdict(p, r["signed_rank_sum"], alpha)
        needed = (
            st.repeats_needed(r["delta"], r["delta_sd"], alpha=level, power=POWER)
            if r["verdict"] == "no_difference"
            else None
        )
        r["n_needed"] = None if needed is None else math.ceil(needed / len(paired))
    order = sorted(
        range(len(rows)), key=lambda i: (rows[i]["rank"], -np.nan_to_num(rows[i]["p_best"]), rows[i]["trial"])
    )
    # A raced sweep's configurations ran different repeats: the bootstrap bias correction, which resamples
    # repeats shared by all, is not defined for it.
    bbc = shared and not (plan is not None and plan.raced)
    chosen = _chosen(rows, order, tasks, chosen_on, counts, higher_is_better, bbc)
    rows = [rows[i] for i in order]
    sequential = None
    if plan is not None and paired:
        sequential = _sequential(
            configs, rows, compared, tasks, raced_on or chosen_on, base, plan, higher_is_better, alpha, family
        )
    n_pairs = min((r["n_pairs"] for r in compared), default=0)
    smallest_p = st.smallest_signed_rank_p(n_pairs) if len(tasks) == 1 and sequential is None else None
    return Table(
        baseline=baseline,
        chosen=chosen,
        configs=rows,
        unpaired=unpaired,
        smallest_p=smallest_p,
        repeats=max(t.values.shape[0] for t in tasks),
        n_tasks=len(tasks),
        sequential=sequential,
    )


def _paired_scores(values: np.ndarray, present: np.ndarray, base: int) -> np.ndarray:
    """A raced sweep's scores to rank on: each run's difference from the baseline's run of its repeat, plus
    the baseline's mean over all its repeats. ``values, present: (n_repeats, n_configs)`` (diverged runs
    imputed already). Configurations stopped after a few repeats are then ranked on the same footing as
    those run to the maximum (common random numbers), not on their repeats' luck, nor with the repeats
    they never ran counted as diverged; NaN where a run or its baseline pair is missing."""
    v = np.where(present, values, np.nan)
    b = v[:, [base]]
    scores = v - b + np.nanmean(b) if np.isfinite(b).any() else v
    scores[:, base] = v[:, base]
    return scores


def _stacked(tasks: list[TaskMatrix], base: int, higher_is_better: bool) -> np.ndarray:
    """Per-repeat differences from the baseline averaged over tasks, ``(n_configs, n_repeats)``
    (``sweeper.stats.racing.differences``)."""
    n = max(t.values.shape[0] for t in tasks)
    values = np.full((len(tasks), n, tasks[0].values.shape[1]), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    for i, t in enumerate(tasks):
        values[i, : t.values.shape[0]], present[i, : t.values.shape[0]] = t.values, t.present
    return racing.differences(values, present, base, higher_is_better=higher_is_better)


def _sequential(configs, rows, compared, tasks, chosen_on, base, plan, higher_is_better, alpha, family) -> dict:
    """A raced or extended sweep's verdicts from its sequential test on the test part (Holm over the
    ``family``), put in ``compared``'s rows: p-values, verdicts, ``test``; a raced sweep's ``rows`` also
    get ``repeats`` and ``stopped``, its race replayed on the selection metric. Matrix columns follow
    ``configs``; rows are found by trial."""
    column = {config["trial"]: c for c, config in enumerate(configs)}
    columns = [column[r["trial"]] for r in compared]
    d = _stacked(tasks, base, higher_is_better)
    p, adjusted, sign, said = racing.verdicts(d[columns], plan, family, alpha)
    for r, p_c, a_c, s_c, v in zip(compared, p, adjusted, sign, said):
        r.update(p_value=float(p_c), p_adjusted=float(a_c), signed_rank_sum=None, verdict=v, n_needed=None)
        r["test"] = plan.test
        r["direction"] = int(s_c)
    runs = int(sum(t.present.sum() for t in tasks))
    fixed = None
    if plan.raced:
        race = racing.race(_stacked(chosen_on, base, higher_is_better), base, plan, family, racing.ALPHA)
        for r in rows:
            c = column[r["trial"]]
            r["repeats"] = int(max(t.present[:, c].sum() for t in tasks))
            r["stopped"] = None if c == base else racing.STOPS.get(race.stopped[c] or "", "still open")
        fixed = (family + 1) * plan.maximum * len(tasks)
    return {"runs": runs, "fixed": fixed, "test": plan.test, "min_effect": plan.min_effect}


def _zero_if_rounding(delta: float, pairs: list[np.ndarray]) -> float:
    """``delta``, or exactly 0 where it is below what float64 arithmetic on these values can resolve.

    A mean of differences that cancel exactly in real numbers can come out as a few units in the last
    place of the values (1e-17 for accuracies); shown as "+1e-17" it reads as a difference.
    """
    values = np.concatenate([np.abs(p[np.isfinite(p)]) for p in pairs]) if pairs else np.array([])
    scale = float(values.max()) if values.size else 0.0
    n = sum(p.shape[0] for p in pairs) or 1
    return 0.0 if np.isfinite(delta) and abs(delta) <= 4 * n * np.finfo(float).eps * scale else delta


def _chosen(rows, order, tasks, chosen_on, counts, higher_is_better, shared) -> dict | None:
    """The configuration the sweep selects: the best on the selection metric, or the configurations
    tied for it; its test estimate beside its selection mean, and with no validation part the BBC estimate."""
    ranked = [i for i in order if rows[i]["n"]]
    if not ranked:
        return None
    best = rows[ranked[0]]["rank"]
    tied = [i for i in ranked if rows[i]["rank"] == best]
    first = rows[tied[0]]
    chosen = {
        "trials": [rows[i]["trial"] for i in tied],
        "labels": [rows[i]["label"] for i in tied],
        "tied": len(tied) > 1,
        "selection_mean": first["selection_mean"],
        "mean": first["mean"],
        "ci": first["ci"],
        # how much better the selection mean looks than the test mean: the winner's curse, made visible
        "optimism": (first["selection_mean"] - first["mean"]) * (1.0 if higher_is_better else -1.0),
        "bbc": None,
        "bbc_ci": None,
    }
    if shared:
        imputed = [st.impute_diverged(t.values, higher_is_better=higher_is_better) for t in chosen_on]
        boot = st.bootstrap_bias_corrected(
            imputed, [t.values for t in tasks], counts, higher_is_better=higher_is_better
        )
        if np.isfinite(boot).any():
            chosen["bbc"] = float(np.nanmean(boot))
            chosen["bbc_ci"] = st.percentile_interval(boot, CONFIDENCE).tolist()
    return chosen


def _comparison(tasks: list[TaskMatrix], c: int, base: int, higher_is_better: bool, level: float) -> dict:
    """Configuration ``c`` against the baseline, repeat by repeat (pairs where both runs exist)."""
    diffs, test = _paired_test(tasks, c, base, higher_is_better)
    pooled = np.concatenate(diffs)
    p_improve = st.probability_of_improvement(pooled)
    # the spread of paired differences within tasks, over pairs where both runs finished
    finished = [d[np.isfinite(d)] for d in diffs]
    n_finite = sum(f.size for f in finished)
    dof = sum(f.size - 1 for f in finished if f.size > 1)
    squares = sum(float(np.sum((f - f.mean()) ** 2)) for f in finished if f.size > 1)
    sd = float(np.sqrt(squares / dof)) if dof > 0 else float("nan")
    return {
        "p_improve": p_improve,
        "p_improve_ci": list(st.wilson_interval(p_improve * pooled.size, pooled.size, CONFIDENCE)),
        "p_value": test.pvalue,
        "signed_rank_sum": test.statistic,
        "mde": st.minimum_detectable_effect(sd, n_finite, alpha=level, power=POWER),
        "delta_sd": sd,
        "n_pairs": int(pooled.size),
    }


def _paired_test(
    tasks: list[TaskMatrix], c: int, base: int, higher_is_better: bool, seen: dict | None = None
) -> tuple[list[np.ndarray], st.SignedRankResult]:
    """Configuration ``c``'s paired differences from the baseline per task (pairs where both runs exist) and
    the signed-rank test of them (stratified by task where there are several); ``seen``: the tests already
    computed, by their differences' bytes, reused and added to."""
    diffs = []
    for t in tasks:
        pair = t.present[:, c] & t.present[:, base]
        diffs.append(st.paired_differences(t.values[pair, c], t.values[pair, base], higher_is_better=higher_is_better))
    key = tuple(np.asarray(d, dtype=float).tobytes() for d in diffs)
    if seen is not None and key in seen:
        return diffs, seen[key]
    test = st.signed_rank_test(diffs[0]) if len(tasks) == 1 else st.stratified_signed_rank_test(diffs)
    if seen is not None:
        seen[key] = test
    return diffs, test


def _mean_of_task_means(columns: list[np.ndarray]) -> float:
    """Mean of the finite values; with several tasks the mean of per-task means (each task weighs the same)."""
    return float(np.mean([nanmean(v) for v in columns]))


def _pooled_std(columns: list[np.ndarray]) -> float:
    """Standard deviation over repeats; with several tasks the root mean of per-task variances."""
    variances = [np.var(v[np.isfinite(v)], ddof=1) for v in columns if np.isfinite(v).sum() > 1]
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


def _across_tasks(tasks: list[TaskMatrix], configs: list[dict], higher_is_better: bool, alpha: float) -> dict:
    """Average ranks, Friedman test and Nemenyi critical difference over tasks (Demšar 2006)."""
    scores = np.stack([nanmean(st.impute_diverged(t.values, higher_is_better=higher_is_better)) for t in tasks])
    avg = st.average_ranks(scores, higher_is_better=higher_is_better)  # the same as each config's top-level "rank"
    n_tasks, k = scores.shape
    order = np.argsort(avg, kind="stable")
    best = order[0]
    cd = st.nemenyi_critical_difference(k, n_tasks, alpha) if k >= 2 else float("nan")
    tied = [c for c in order if avg[c] - avg[best] < cd]
    friedman = None
    if k >= 3:
        f = st.friedman_test(scores)
        friedman = {
            "statistic": f.statistic,
            "p_value": f.pvalue,
            "iman_davenport_f": f.f_statistic,
            "iman_davenport_p": f.f_pvalue,
        }

    def ref(c):
        return {"trial": configs[c]["trial"], "label": configs[c]["label"]}

    return {
        "tasks": [t.name for t in tasks],
        "n_tasks": n_tasks,
        "ranking": [{**ref(c), "average_rank": float(avg[c])} for c in order],
        "friedman": friedman,
        "nemenyi_cd": cd,
        "best": ref(best),
        "indistinguishable_from_best": [ref(c) for c in tied],
    }
