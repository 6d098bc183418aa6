"""A sweep's stored rows laid out as matrices: per task, rows are repeats and columns configurations."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from sweeper import metrics
from sweeper.errors import SweeperError
from sweeper.noise.spec import BASELINE, NoiseConfig, config_label
from sweeper.records import stored_config
from sweeper.stats import statistics as st


@dataclass(frozen=True)
class TaskMatrix:
    """One task's runs laid out as matrices: rows are repeats, columns configurations."""

    name: str
    values: np.ndarray  # (n_repeats, n_configs) the metric; NaN where diverged or missing
    gaps: np.ndarray  # (n_repeats, n_configs) generalization gap; NaN where unknown
    present: np.ndarray  # (n_repeats, n_configs) bool: the run exists
    unlearned: np.ndarray  # (n_repeats, n_configs) bool: the run failed to learn (finished at chance)

    @property
    def diverged(self) -> np.ndarray:
        return self.present & np.isnan(self.values)


def direction(sweep: dict) -> bool:
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


def configs_of(trials: list[dict], with_runs: set) -> tuple[list[dict], list[int]]:
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


def task_matrices(
    runs: list[dict], metric: str, trial_numbers: list[int], *, higher_is_better: bool
) -> list[TaskMatrix]:
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
        tasks.append(TaskMatrix(name, values, gaps, present, unlearned))
    return tasks


def _number(x) -> float:
    return float("nan") if x is None else float(x)


def nanmean(a: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as they should
        return np.nanmean(a, axis=axis)
