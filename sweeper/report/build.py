"""Build a sweep's report from the store's rows: which noise configurations reliably beat no noise."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sweeper import metrics
from sweeper.errors import SweeperError
from sweeper.noise.spec import BASELINE, NoiseConfig, config_label
from sweeper.records import stored_config
from sweeper.report import statistics as st

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
#: What trained a run, as the store keeps it for each run (measured where it trained).
RAN = ("engine", "device", "cpu", "gpu", "sweeper_version", "torch_version", "host")
#: What drove the sweep (``sweeper run``), as the store keeps it for the sweep.
DRIVEN = ("sweeper_version", "torch_version", "device", "cpu", "gpu", "host")


@dataclass(frozen=True)
class _Task:
    """One task's runs laid out as matrices: rows are repeats, columns configurations."""

    name: str
    values: np.ndarray  # (n_repeats, n_configs) the metric; NaN where diverged or missing
    gaps: np.ndarray  # (n_repeats, n_configs) generalization gap; NaN where unknown
    present: np.ndarray  # (n_repeats, n_configs) bool: the run exists
    unlearned: np.ndarray  # (n_repeats, n_configs) bool: the run failed to learn (finished at chance)

    @property
    def diverged(self) -> np.ndarray:
        return self.present & np.isnan(self.values)


#: What ``--at`` may compare on: the last epoch's metrics, or those at each run's best validation epoch.
AT = ("last", "best_val")


def build_report(
    sweep: dict,
    trials: list[dict],
    runs: list[dict],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    at: str = "last",
    planned: int | None = None,
    setting: dict | None = None,
) -> dict:
    """The JSON-ready report of a sweep: the configuration chosen on validation, and every configuration
    against the no-noise baseline on the test part.

    The sweep's ``metric`` is what it selected on (``val_accuracy``; ``test_accuracy`` where the tasks had
    no validation part, ``n_val: 0``): it orders the configurations, gives P(best) and the chosen one.
    Means, intervals, differences and verdicts are on the test part (``test_accuracy``), which nothing
    was selected on. With no validation part they share data, and the chosen configuration's estimate is
    also given corrected for selection (``chosen.bbc``). ``at="best_val"`` compares the metrics each run
    had at its best validation epoch (``early_*``) instead of the last epoch's.

    ``planned`` is the number of configurations the sweep planned (the baseline included): Holm corrects
    over all of them even where a partial sweep has not run them all, and the report says what is
    missing. ``setting`` says what ran (tasks, split sizes, model, ...), as :func:`setting_of` gives it.

    ``ran`` says what trained the runs (``runs``: each distinct engine, device, CPU, GPU, versions and
    host with its number of runs) and what drove the sweep (``sweep``); each configuration's ``ran``
    has the same fields for its own runs (distinct values, comma-separated).

    ``sweep``, ``trials`` and ``runs`` are the store's flat rows. A run whose ``diverged`` flag is
    set, or whose metric is missing or not finite, counts as diverged. Trials with no runs yet are
    listed under ``pending``. ``configs`` is sorted best first on the selection metric (by average rank
    across tasks of the mean, a diverged run weighing as the worst run of its task) and includes the
    baseline with verdict ``baseline``. Missing values are ``None``, so ``json.dumps(report,
    allow_nan=False)`` works.
    """
    selected_on = sweep.get("metric")
    if not selected_on:
        raise SweeperError(f"sweep {sweep.get('name')!r} names no metric")
    if at not in AT:
        raise SweeperError(f"--at: {at!r} is not allowed; allowed: {', '.join(AT)}")
    higher_is_better = _direction(sweep)
    shared = selected_on.startswith("test_")  # no validation part: selection and estimate share the test part
    suffix = metrics.base(selected_on)
    early = "early_" if at == "best_val" else ""
    metric = f"{early}test_{suffix}"
    selection = selected_on if selected_on.startswith("train_") else early + selected_on
    configs, pending = _configs(trials, {row["trial"] for row in runs})
    for config in configs:
        config["ran"] = _ran_by([row for row in runs if row["trial"] == config["trial"]])
    base = next(i for i, c in enumerate(configs) if c["params"] == {"placement": BASELINE})
    numbers = [c["trial"] for c in configs]
    tasks = _tasks(runs, metric, numbers, higher_is_better=higher_is_better)
    chosen_on = tasks if selection == metric else _tasks(runs, selection, numbers, higher_is_better=higher_is_better)
    ece_name = f"{early}test_ece"
    ece = (
        _tasks(runs, ece_name, numbers, higher_is_better=False)
        if any(row.get(ece_name) is not None for row in runs)
        else None
    )
    family = max(planned or 0, len(configs)) - 1  # Holm's family: every planned comparison with the baseline

    rng = np.random.default_rng(seed)
    counts = [st.bootstrap_counts(t.values.shape[0], n_boot, rng) for t in tasks]
    settings = dict(
        configs=configs,
        base=base,
        higher_is_better=higher_is_better,
        alpha=alpha,
        metric=metric,
        family=family,
        shared=shared,
    )
    per_task = [
        _table([t], [s], [k], None if ece is None else [e], **settings)
        for t, s, k, e in zip(tasks, chosen_on, counts, ece or tasks)
    ]
    top = per_task[0] if len(tasks) == 1 else _table(tasks, chosen_on, counts, ece, **settings)

    n_tasks = len(setting["tasks"]) if setting else len(tasks)  # a task without runs yet is planned too
    runs_planned = None if planned is None else planned * int(sweep.get("repeats") or 0) * n_tasks
    progress = {
        "configs_planned": family + 1,
        "configs_with_runs": len(configs),
        "runs": len(runs),
        "runs_planned": runs_planned,
        "partial": bool(planned is not None and len(runs) < runs_planned)
        or sweep.get("status") not in (None, "completed", "done"),
    }
    report = {
        "sweep": sweep.get("name"),
        "problem": sweep.get("problem"),
        "status": sweep.get("status"),
        "metric": metric,
        "selected_on": selection,
        "shared": shared,
        "at": at,
        "higher_is_better": higher_is_better,
        "repeats": sweep.get("repeats"),
        "alpha": alpha,
        "confidence": CONFIDENCE,
        "n_boot": n_boot,
        "seed": seed,
        "task_names": [t.name for t in tasks],
        "progress": progress,
        "setting": setting,
        "chosen": top["chosen"],
        "baseline": top["baseline"],
        "configs": top["configs"],
        "pending": pending,
        "tasks": None,
        "across_tasks": None,
        "methods": _methods(n_boot, alpha, family, multi_task=len(tasks) > 1, shared=shared, at=at),
        "ran": {"runs": _what_ran(runs), "sweep": {key: sweep.get(key) for key in DRIVEN}},
    }
    summary = top["summary"]
    if progress["partial"]:
        summary = _partial_line(progress, sweep.get("status")) + " " + summary
    if len(tasks) > 1:
        report["tasks"] = [{"task": t.name, **table} for t, table in zip(tasks, per_task)]
        report["across_tasks"] = _across_tasks(chosen_on, configs, higher_is_better, alpha)
        summary += " " + report["across_tasks"]["summary"]
    report["summary"] = summary
    return _json_ready(report)


def _partial_line(progress: dict, status: str | None) -> str:
    planned, runs = progress["runs_planned"], progress["runs"]
    state = f" (status {status})" if status else ""
    if planned is None:
        return f"This sweep is not complete{state}: the report covers the runs stored so far."
    missing = progress["configs_planned"] - progress["configs_with_runs"]
    return (
        f"This sweep is partial{state}: {runs} of {planned} planned runs ({planned - runs} missing; "
        f"{progress['configs_with_runs']} of {progress['configs_planned']} configurations have runs, {missing} none); "
        f"Holm's correction counts all {progress['configs_planned'] - 1} planned comparisons."
    )


def setting_of(spec, sweep: dict) -> dict:
    """What a sweep ran, for its report: every task's data set, split sizes, model and training; the
    search space; seed, repeats and dates. ``spec`` is the sweep's ``SweepSpec`` as it ran."""
    from sweeper.tasks.data import part_sizes  # the report reads stored rows; only this needs the data sets

    tasks = []
    for name, task in spec.tasks.items():
        try:
            n_train, n_val, n_test = part_sizes(task)
        except SweeperError:
            n_train, n_val, n_test = task.n_train, None, None
        o = task.optimizer
        tasks.append(
            {
                "task": name,
                "dataset": str(task.dataset),
                "dataset_seed": task.dataset_seed,
                "n_train": n_train,
                "n_val": n_val,
                "n_test": n_test,
                "model": (
                    str(task.model)
                    if task.user_model is not None  # a user's own: factory(args)
                    else f"{task.model} hidden {list(task.hidden)} {task.activation}, init {task.init}"
                ),
                "epochs": task.epochs,
                "batch_size": task.batch_size,
                "optimizer": f"{o.name} lr {o.lr:g}"
                + (f" momentum {o.momentum:g}" if o.name == "sgd" else "")
                + (f" weight decay {o.weight_decay:g}" if o.weight_decay else ""),
            }
        )
    search = spec.search
    space = (
        f"grid of {len(search.configs)} configurations"
        if search.sampler == "grid"
        else f"{search.sampler}, {search.n_trials} trials and the baseline"
    )
    dates = {
        key: (sweep.get(key).isoformat() if hasattr(sweep.get(key), "isoformat") else sweep.get(key))
        for key in ("created_at", "finished_at")
    }
    return {"tasks": tasks, "space": space, "sweep_seed": spec.seed, "repeats": spec.repeats, **dates}


def planned_configs(spec) -> int:
    """How many configurations a sweep plans, the baseline included."""
    return len(spec.search.configs) if spec.search.sampler == "grid" else spec.search.n_trials + 1


# --- rows to matrices ------------------------------------------------------------------------------


def _direction(sweep: dict) -> bool:
    metric = sweep["metric"]
    known = metrics.higher_is_better(metric)
    given = sweep.get("higher_is_better")
    if known is not None and given is not None and bool(given) != known:
        raise SweeperError(
            f"sweep {sweep.get('name')!r}: higher_is_better={given} contradicts metric {metric!r} "
            f"({'higher' if known else 'lower'} is better)"
        )
    if known is None and given is None:
        raise SweeperError(f"sweep {sweep.get('name')!r}: metric {metric!r} is unknown and higher_is_better is not set")
    return known if known is not None else bool(given)


def _params(trial: dict) -> dict | list[dict]:
    """A trial's configuration: ``{"placement": "none"}``, one site dict, or a list of site dicts."""
    specs = _specs(trial)
    if not specs:
        return {"placement": BASELINE}
    return specs[0].as_dict() if len(specs) == 1 else [s.as_dict() for s in specs]


def _specs(trial: dict) -> NoiseConfig:
    if trial.get("placement") == BASELINE:
        return ()
    try:
        return stored_config(trial.get("params"))
    except (TypeError, ValueError) as exc:
        raise SweeperError(f"trial {trial['trial']}: its noise parameters are invalid: {exc}") from exc


def _configs(trials: list[dict], with_runs: set) -> tuple[list[dict], list[int]]:
    """The trials that have runs, in trial order, as ``{trial, label, params}``; and those still pending."""
    configs, pending = [], []
    for trial in sorted(trials, key=lambda t: t["trial"]):
        if trial["trial"] not in with_runs:
            pending.append(trial["trial"])
            continue
        label = trial.get("label") or config_label(_specs(trial))
        configs.append({"trial": trial["trial"], "label": label, "params": _params(trial)})
    baselines = [c for c in configs if c["params"] == {"placement": BASELINE}]
    if not baselines:
        raise SweeperError("the sweep has no baseline runs (a trial with placement 'none'); nothing to compare against")
    if len(baselines) > 1:
        trials_ = ", ".join(str(c["trial"]) for c in baselines)
        raise SweeperError(f"the sweep has several baseline trials ({trials_}); expected exactly one")
    return configs, pending


def _tasks(runs: list[dict], metric: str, trial_numbers: list[int], *, higher_is_better: bool) -> list[_Task]:
    if not runs:
        raise SweeperError("the sweep has no runs yet")
    if not any(metric in row for row in runs):
        available = sorted(k for k in runs[0] if k.startswith(("train_", "test_")))
        raise SweeperError(f"metric {metric!r} is not in the runs; they have {', '.join(available)}")
    # The generalization gap needs the training metric of the same epoch: the last one's.
    train_metric = "train_" + metric.removeprefix("test_") if metric.startswith("test_") else None
    column = {trial: i for i, trial in enumerate(trial_numbers)}
    cells: dict[str, dict[tuple, dict]] = {}
    for row in runs:
        task = str(row.get("task") or "default")
        key = (row["repeat"], row["trial"])
        if row["trial"] not in column:
            raise SweeperError(f"run of trial {row['trial']}, which is not among the sweep's trials")
        if key in cells.setdefault(task, {}):
            raise SweeperError(f"task {task!r}: trial {row['trial']} has two runs for repeat {row['repeat']}")
        cells[task][key] = row

    tasks = []
    for name in sorted(cells):
        repeats = sorted({repeat for repeat, _ in cells[name]})
        row_of = {repeat: i for i, repeat in enumerate(repeats)}
        shape = (len(repeats), len(trial_numbers))
        values, train, present = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, bool)
        unlearned = np.zeros(shape, bool)
        for (repeat, trial), row in cells[name].items():
            i, j = row_of[repeat], column[trial]
            present[i, j] = True
            unlearned[i, j] = bool(row.get("failed_to_learn"))
            if not row.get("diverged"):
                values[i, j] = _number(row.get(metric))
                train[i, j] = _number(row.get(train_metric)) if train_metric else np.nan
        values[~np.isfinite(values)] = np.nan
        gaps = st.generalization_gap(train, values, higher_is_better=higher_is_better)
        tasks.append(_Task(name, values, gaps, present, unlearned))
    return tasks


def _what_ran(runs: list[dict]) -> list[dict]:
    """Each distinct combination of RAN among the runs with its number of runs, the most common first."""
    counts = Counter(tuple(row.get(key) for key in RAN) for row in runs)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], repr(item[0])))
    return [{**dict(zip(RAN, values)), "n_runs": n} for values, n in ordered]


def _ran_by(runs: list[dict]) -> dict:
    """Each field of RAN as the runs' distinct values, comma-separated; None where none recorded it."""
    return {key: ", ".join(sorted({str(row[key]) for row in runs if row.get(key) is not None})) or None for key in RAN}


def _number(x) -> float:
    return float("nan") if x is None else float(x)


# --- the table of one task, or of all tasks pooled -------------------------------------------------


def _nanmean(a: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as they should
        return np.nanmean(a, axis=axis)


def _table(
    tasks: list[_Task],
    chosen_on: list[_Task],
    counts: list[np.ndarray],
    ece: list[_Task] | None,
    *,
    configs,
    base,
    higher_is_better,
    alpha,
    metric,
    family,
    shared,
) -> dict:
    """Every configuration's statistics over the given tasks (one task, or all of them stratified).

    ``tasks`` hold the test metric (means, intervals, differences, verdicts), ``chosen_on`` the metric
    the sweep selected on (order, P(best), the chosen configuration), ``ece`` the test part's
    calibration error. With several tasks, means are averages of per-task means, bootstrap resamples
    repeats within each task, the paired test ranks within each task, and p(best) is p(best average rank).
    ``family`` is the number of comparisons Holm corrects over (every planned one).
    """
    boot_means = _nanmean(np.stack([st.bootstrap_means(t.values, k) for t, k in zip(tasks, counts)]))
    # A task whose baseline diverged on every repeat has nothing to pair with: it is left out of every
    # comparison (a finished run would otherwise "win" each repeat against no value at all).
    paired = [(t, k) for t, k in zip(tasks, counts) if np.isfinite(t.values[:, base]).any()]
    unpaired = [t.name for t in tasks if not np.isfinite(t.values[:, base]).any()]
    raw_deltas = [t.values - t.values[:, [base]] for t, _ in paired]  # (n_repeats, n_configs) each, float64
    boot_deltas = (
        _nanmean(np.stack([st.bootstrap_means(d, k) for d, (_, k) in zip(raw_deltas, paired)]))
        if paired
        else np.full((counts[0].shape[0], len(configs)), np.nan)
    )
    imputed = [st.impute_diverged(t.values, higher_is_better=higher_is_better) for t in chosen_on]
    boot_scores = np.stack(
        [st.bootstrap_means(v, k) for v, k in zip(imputed, counts)], axis=1
    )  # (n_boot, n_tasks, n_configs)
    p_best = st.probability_of_best(boot_scores, higher_is_better=higher_is_better)
    if not any(np.isfinite(t.values).any() for t in chosen_on):
        p_best[:] = np.nan  # every run diverged: an even split of P(best) would name a winner by tie-break
    rank = st.average_ranks(np.stack([_nanmean(v) for v in imputed]), higher_is_better=higher_is_better)
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
    chosen = _chosen(rows, order, tasks, chosen_on, counts, higher_is_better, shared)
    rows = [rows[i] for i in order]
    n_pairs = min((r["n_pairs"] for r in compared), default=0)
    smallest_p = st.smallest_signed_rank_p(n_pairs) if len(tasks) == 1 else None
    repeats = max(t.values.shape[0] for t in tasks)
    summary = _summary(
        rows,
        baseline,
        chosen,
        metric,
        higher_is_better,
        alpha,
        smallest_p,
        repeats=repeats,
        n_tasks=len(tasks),
        unpaired=unpaired,
        family=family,
    )
    return {"baseline": baseline, "chosen": chosen, "configs": rows, "summary": summary}


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


def _comparison(tasks: list[_Task], c: int, base: int, higher_is_better: bool, level: float) -> dict:
    """Configuration ``c`` against the baseline, repeat by repeat (pairs where both runs exist)."""
    diffs = []
    for t in tasks:
        pair = t.present[:, c] & t.present[:, base]
        diffs.append(st.paired_differences(t.values[pair, c], t.values[pair, base], higher_is_better=higher_is_better))
    pooled = np.concatenate(diffs)
    test = st.signed_rank_test(diffs[0]) if len(tasks) == 1 else st.stratified_signed_rank_test(diffs)
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


def _mean_of_task_means(columns: list[np.ndarray]) -> float:
    """Mean of the finite values; with several tasks the mean of per-task means (each task weighs the same)."""
    return float(np.mean([_nanmean(v) for v in columns]))


def _pooled_std(columns: list[np.ndarray]) -> float:
    """Standard deviation over repeats; with several tasks the root mean of per-task variances."""
    variances = [np.var(v[np.isfinite(v)], ddof=1) for v in columns if np.isfinite(v).sum() > 1]
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


# --- across tasks ----------------------------------------------------------------------------------


def _across_tasks(tasks: list[_Task], configs: list[dict], higher_is_better: bool, alpha: float) -> dict:
    """Average ranks, Friedman test and Nemenyi critical difference over tasks (Demšar 2006)."""
    scores = np.stack([_nanmean(st.impute_diverged(t.values, higher_is_better=higher_is_better)) for t in tasks])
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

    text = f"Across {n_tasks} tasks, {_prose(configs[best])} has the best average rank ({avg[best]:.2f} of {k})"
    if friedman is None:
        text += "; with fewer than 3 configurations there is no Friedman test."
    else:
        differ = friedman["iman_davenport_p"] < alpha
        text += (
            f"; the Friedman test {'finds' if differ else 'does not find'} that the configurations rank differently "
            f"(Iman–Davenport p = {_fmt(friedman['iman_davenport_p'])})"
        )
        others = [_prose(configs[c]) for c in tied if c != best]
        if others:
            text += f"; within the Nemenyi critical difference ({cd:.2f}) of it: {_names(others)}."
        else:
            text += f", and no other configuration is within the Nemenyi critical difference ({cd:.2f}) of it."
    return {
        "tasks": [t.name for t in tasks],
        "n_tasks": n_tasks,
        "ranking": [{**ref(c), "average_rank": float(avg[c])} for c in order],
        "friedman": friedman,
        "nemenyi_cd": cd,
        "best": ref(best),
        "indistinguishable_from_best": [ref(c) for c in tied],
        "summary": text,
    }


# --- words -----------------------------------------------------------------------------------------


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _prose(config: dict) -> str:
    """A configuration's name in a sentence (the baseline's label, ``none``, reads badly there)."""
    return "no noise" if config["params"] == {"placement": BASELINE} else config["label"]


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _diverged_count(config: dict) -> str:
    return f"{_prose(config)}: {config['diverged']}"


def _summary(
    rows, baseline, chosen, metric, higher_is_better, alpha, smallest_p, *, repeats, n_tasks, unpaired, family
) -> str:
    """One paragraph in plain words: what was chosen and how well it does on data it was not chosen on,
    what helped, what hurt, what could not be told apart, and why.

    ``unpaired`` names the tasks on which the baseline diverged on every repeat.
    """
    compared = [r for r in rows if r["verdict"] != "baseline"]
    if not compared:
        return f"Only the no-noise baseline has runs so far ({metric} {_fmt(baseline['mean'])}); nothing to compare."
    if len(unpaired) == n_tasks:
        text = [
            f"The no-noise baseline diverged on every repeat ({_plural(baseline['diverged'], 'run')}): no "
            "comparison with it is possible, so no configuration is called better or worse than no noise."
        ]
        text.append(
            _chosen_line(chosen, metric)
            if chosen
            else "No other configuration finished a run either: every run diverged."
        )
        return " ".join(text)
    where = f"over {_plural(repeats, 'repeat')}" + (f" of each of {n_tasks} tasks" if n_tasks > 1 else "")
    text = [
        f"{_plural(len(compared), 'noise configuration')} {'was' if len(compared) == 1 else 'were'} compared "
        "with the no-noise baseline "
        f"({metric} {_fmt(baseline['mean'])} {where}; {'higher' if higher_is_better else 'lower'} is better), "
        f"repeat by repeat, with Holm's correction at α = {alpha:g}"
        + (f" over all {family} planned comparisons." if family > len(compared) else ".")
    ]
    if chosen:
        text.append(_chosen_line(chosen, metric))
    if unpaired:
        text.append(
            f"The baseline diverged on every repeat of {_plural(len(unpaired), 'task')} "
            f"({_names(unpaired)}); the comparisons use the other tasks only."
        )

    def described(r):
        low, high = r["delta_ci"]
        return f"{_prose(r)} (Δ {_fmt(r['delta'], True)}, 95% CI [{_fmt(low, True)}, {_fmt(high, True)}])"

    better = [r for r in compared if r["verdict"] == "better"]
    worse = [r for r in compared if r["verdict"] == "worse"]
    undecided = [r for r in compared if r["verdict"] == "no_difference"]
    text.append(
        f"Reliably better: {_names([described(r) for r in better])}." if better else "None was reliably better."
    )
    if worse:
        text.append(f"Reliably worse: {_names([described(r) for r in worse])}.")
    if undecided:
        text.append(f"{len(undecided)} could not be told apart from the baseline.")

    diverged = [r for r in rows if r["diverged"]]
    if diverged:
        total = sum(r["diverged"] for r in diverged)
        text.append(
            f"{_plural(total, 'run')} diverged ({_names([_diverged_count(r) for r in diverged])}); "
            "they are left out of means and count as losses against the baseline."
        )

    # Most runs at chance: its mean is a real outcome, but of a network that learned nothing.
    unlearned = [r for r in rows if 2 * r["failed_to_learn"] > r["n"] + r["diverged"]]
    if unlearned:
        counts = [
            f"{_prose(r)}: {r['failed_to_learn']} of {r['n'] + r['diverged']} runs failed to learn" for r in unlearned
        ]
        text.append(
            f"{_names(counts)} (training metric no better than chance or than before training); "
            "such runs count in the means as they finished."
        )

    if smallest_p is not None and smallest_p * family >= alpha:
        text.append(
            f"Too few repeats: with {repeats} the signed-rank test cannot go below p = {smallest_p:.3g}, so after "
            f"correcting for {family} comparisons no configuration can be called better or worse; run more repeats."
        )
        return " ".join(text)
    mdes = [r["mde"] for r in compared if np.isfinite(r["mde"])]
    if mdes:
        text.append(
            f"At this number of repeats, differences smaller than about {_fmt(float(np.median(mdes)))} "
            f"cannot be detected reliably (median over configurations, power {POWER:g})."
        )
    settle = [r for r in undecided if r["n_needed"] is not None and r["n_needed"] > repeats]
    if settle:
        closest = min(settle, key=lambda r: r["n_needed"])
        text.append(
            f"Of the undecided, {_prose(closest)} is nearest to a verdict: if its difference "
            f"(Δ {_fmt(closest['delta'], True)}) is real, about {closest['n_needed']} repeats would detect it "
            f"with power {POWER:g}."
        )
    if repeats < 10:
        text.append("With fewer than 10 repeats the bootstrap intervals and P(best) are rough.")
    return " ".join(text)


def _chosen_line(chosen: dict, metric: str) -> str:
    """What the sweep chose, with its test estimate beside the number it was chosen on."""
    names = [("no noise" if label == "none" else label) for label in chosen["labels"]]
    low, high = chosen["ci"]
    test = f"{metric} {_fmt(chosen['mean'])} (95% CI [{_fmt(low)}, {_fmt(high)}])"
    if chosen["bbc"] is not None:
        blow, bhigh = chosen["bbc_ci"]
        where = (
            f"Selection and estimate share the test part (n_val: 0): the chosen configuration's {test} is "
            f"optimistic; corrected for the selection (BBC) it is {_fmt(chosen['bbc'])} "
            f"(95% CI [{_fmt(blow)}, {_fmt(bhigh)}])."
        )
    else:
        where = (
            f"On the test part, which took no part in choosing: {test}, against {_fmt(chosen['selection_mean'])} "
            f"on the data it was chosen on (optimism {_fmt(chosen['optimism'], True)})."
        )
    if chosen["tied"]:
        return (
            f"{len(names)} configurations tie for the best on the data the sweep selects on "
            f"({_fmt(chosen['selection_mean'])}: {_names(names)}); the repeats cannot separate them. "
            f"For the first of them: {where[0].lower()}{where[1:]}"
        )
    return f"Chosen: {names[0]}. {where}"


def _methods(n_boot: int, alpha: float, n_compared: int, *, multi_task: bool, shared: bool, at: str) -> dict:
    test = (
        "Wilcoxon signed-rank test on the per-repeat differences (scipy, zero_method='zsplit': exact for n <= 50 "
        "without ties, exact permutation for n <= 13 with ties, normal approximation otherwise), two-sided"
    )
    if multi_task:
        test += "; pooled over tasks by ranking within each task and adding the signed-rank sums (normal approximation)"
    return {
        "selection": (
            (
                "the configurations are ordered, P(best) computed and one chosen on the test part itself: the tasks "
                "have no validation part (n_val: 0), so the chosen configuration's test mean is optimistic; bbc is the "
                "bootstrap bias-corrected estimate (Tsamardinos et al. 2018), resampling repeats, picking the best on "
                "the repeats drawn and scoring it on those left out"
            )
            if shared
            else "the configurations are ordered, P(best) computed and one chosen on the validation part only; means, "
            "intervals, differences and verdicts are on the test part, which took no part in choosing"
        )
        + (
            "; every metric is the one each run had at the logged epoch of its best validation metric "
            "(of its best test metric without a validation part)"
            if at == "best_val"
            else ""
        ),
        "pairing": (
            "repeat r of every configuration shares data split and initial weights, so each comparison is paired "
            "by repeat"
        ),
        "test": test,
        "multiple_comparisons": (
            f"Holm's step-down adjustment over the {n_compared} comparisons with the baseline the "
            "sweep planned (a configuration without runs counts as p = 1)"
        ),
        "ece": (
            "expected calibration error on the test part: 15 equal-width confidence bins, the share-weighted "
            "mean |accuracy - confidence| (Naeini et al. 2015, Guo et al. 2017)"
        ),
        "verdict": (
            f"better or worse when the Holm-adjusted p-value < {alpha:g}, in the direction of the signed-rank sum; "
            "incomparable when the baseline diverged on every repeat (of every task): there is nothing to pair with"
        ),
        "intervals": (
            f"{CONFIDENCE:.0%} percentile bootstrap, {n_boot} resamples of repeats drawn jointly for all configurations"
            + (" within each task" if multi_task else "")
        ),
        "p_improve": "share of repeats where the configuration beat the baseline, ties counting half; Wilson interval",
        "p_best": (
            "share of bootstrap resamples in which the configuration has the best mean on the selection metric "
            "(best average rank across tasks); configurations tied in a resample share it equally"
        ),
        "diverged": (
            "a diverged run is left out of mean, std, median, IQM, gap and delta (n counts finished runs, diverged "
            "counts the rest); "
            "in the paired test and p_improve it is a loss to a finished baseline run and a tie with a diverged one; "
            "for ranking, p_best and the across-task tests it scores as the worst finished run of its task"
        ),
        "failed_to_learn": (
            "a finished run whose training metric is no better than chance nor than the same network before "
            "training: classification, its count of training samples right is within what a guesser right as often "
            "as the better of the majority-class rate and the untrained network reaches by luck (one-sided binomial "
            "test, p >= 0.05); regression, training R² at most the larger of 0 and the untrained network's. Such "
            "runs count in every statistic like any finished run; failed_to_learn counts them (runs stored before "
            "schema 0004 were not judged and are not counted)"
        ),
        "gap": (
            "train minus test for accuracy and r2, test minus train for losses and errors: positive means overfitting"
        ),
        "mde": (
            f"smallest true mean difference detected with power {POWER:g} by a two-sided paired t-test at the level "
            "Holm applies to the smallest p-value (alpha / number compared), from the observed sd of paired "
            "differences; n_needed is the number of repeats at which the observed difference would reach that"
        ),
    }


def _json_ready(x):
    """Plain Python values with NaN and infinities as None."""
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    return x
