"""Build a sweep's report from the store's rows: which noise configurations reliably beat no noise."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sweeper import metrics
from sweeper.report import across, prose
from sweeper.stats import racing
from sweeper.stats import statistics as st
from sweeper.stats.comparisons import ALPHA, AT, CONFIDENCE, Comparison, compare

__all__ = ["AT", "build_report"]

#: What trained a run, as the store keeps it for each run (measured where it trained).
RAN = ("engine", "device", "cpu", "gpu", "sweeper_version", "torch_version", "host")
#: What drove the sweep (``sweeper run``), as the store keeps it for the sweep.
DRIVEN = ("sweeper_version", "torch_version", "device", "cpu", "gpu", "host")


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
    missing. ``setting`` says what ran (tasks, split sizes, model, ...), as the sweep's stored context gives it
    (``sweeper.report.command.stored_setting``).

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
    by_trial: dict[int, list[dict]] = {}
    for row in runs:
        by_trial.setdefault(row["trial"], []).append(row)
    compared = compare(
        sweep,
        trials,
        runs,
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
        at=at,
        planned=planned,
        config_fields={trial: {"ran": _ran_by(rows)} for trial, rows in by_trial.items()},
        plan=racing.plan_of(setting),
    )
    tasks, configs, family, top = compared.tasks, compared.configs, compared.family, compared.top
    higher_is_better, shared = compared.higher_is_better, compared.shared

    tables = [(top, tasks)] + ([] if len(tasks) == 1 else [(t, [m]) for t, m in zip(compared.per_task, tasks)])
    for table, its_tasks in tables:
        _undefined_mde(table.configs)
        _wins(table.configs, compared.configs, its_tasks, higher_is_better)
        _like_with_like(table, higher_is_better)
    also = []
    if sweep.get("problem") == "regression" or compared.metric.endswith(("_mse", "_r2")):
        also = _in_other_units(
            sweep, trials, runs, compared, n_boot=n_boot, seed=seed, alpha=alpha, at=at, planned=planned
        )

    n_tasks = len(setting["tasks"]) if setting else len(tasks)  # a task without runs yet is planned too
    runs_planned = None if planned is None else planned * int(sweep.get("repeats") or 0) * n_tasks
    progress = {
        "configs_planned": family + 1,
        "configs_with_runs": len(configs),
        "runs": len(runs),
        "runs_planned": runs_planned,
        # a finished race leaves most of its planned runs untrained: it is partial only while it runs
        "partial": bool(planned is not None and len(runs) < runs_planned and not _raced(top))
        or sweep.get("status") not in (None, "completed", "done"),
    }

    def words(table):
        return prose.table_summary(table, compared.metric, higher_is_better, alpha, family)

    report = {
        "sweep": sweep.get("name"),
        "problem": sweep.get("problem"),
        "status": sweep.get("status"),
        "metric": compared.metric,
        "selected_on": compared.selection,
        "shared": shared,
        "at": at,
        "higher_is_better": higher_is_better,
        "repeats": sweep.get("repeats"),
        "alpha": alpha,
        "confidence": CONFIDENCE,
        "n_boot": n_boot,
        "seed": seed,
        "task_names": [t.name for t in tasks],
        "family": family,
        "also": also,
        # the signed-rank test cannot reach Holm's threshold at this number of repeats: no verdict is possible
        "too_few_repeats": bool(top.smallest_p is not None and top.smallest_p * family >= alpha),
        "progress": progress,
        "setting": setting,
        "chosen": top.chosen,
        "baseline": top.baseline,
        "configs": top.configs,
        "pending": compared.pending,
        "tasks": None,
        "across_tasks": None,
        "across_data_sets": None,
        "methods": prose.methods(
            n_boot, alpha, family, multi_task=len(tasks) > 1, shared=shared, at=at, sequential=top.sequential
        ),
        "ran": {"runs": _what_ran(runs), "sweep": {key: sweep.get(key) for key in DRIVEN}},
    }
    summary = words(top)
    if progress["partial"]:
        summary = prose.partial_line(progress, sweep.get("status")) + " " + summary
    if len(tasks) > 1:
        report["tasks"] = [
            {
                "task": t.name,
                "baseline": table.baseline,
                "chosen": table.chosen,
                "configs": table.configs,
                "summary": words(table),
            }
            for t, table in zip(tasks, compared.per_task)
        ]
        ranks = compared.across_tasks
        report["across_tasks"] = {
            **ranks,
            "summary": prose.across_tasks_line(ranks, configs, alpha),
            "caveat": across.NEMENYI_CAVEAT,
        }
        # the verdicts across tasks are the signed-rank tests of the section, not Nemenyi's mean ranks
        report["across_data_sets"] = across.section(compared, alpha=alpha, seed=seed)
        summary += " " + report["across_data_sets"]["summary"]
    report["summary"] = summary
    report["answer"] = prose.answer(report)
    return _json_ready(report)


def _undefined_mde(configs: list[dict]) -> None:
    """No MDE or repeats needed where the paired differences have no spread (a tied sweep): "MDE 0" would
    claim any difference is detectable, when the data say nothing about how differences vary."""
    for c in configs:
        if c.get("delta_sd") is not None and not c["delta_sd"] > 0:
            c["mde"] = None
            c["n_needed"] = None


def _wins(rows: list[dict], configs: list[dict], tasks: list, higher_is_better: bool) -> None:
    """Each row's ``wins``: the paired repeats of ``tasks`` on which it did strictly better than the
    baseline (a diverged run loses to a finished one), of ``n_pairs``. ``configs`` in the matrices' order."""
    index = {c["trial"]: i for i, c in enumerate(configs)}
    base = index[next(r["trial"] for r in rows if r["verdict"] == "baseline")]
    for row in rows:
        if row["verdict"] in ("baseline", "incomparable"):
            row["wins"] = None
            continue
        i, wins, pairs = index[row["trial"]], 0, 0
        for t in tasks:
            if not np.isfinite(t.values[:, base]).any():
                continue  # nothing to pair with on this task
            both = t.present[:, i] & t.present[:, base]
            d = st.paired_differences(t.values[both, i], t.values[both, base], higher_is_better=higher_is_better)
            wins, pairs = wins + int((d > 0).sum()), pairs + int(d.size)
        row["wins"], row["n_pairs"] = wins, pairs


def _like_with_like(top, higher_is_better: bool) -> None:
    """The chosen configuration's optimism beside the baseline's, measured the same way: the baseline was
    not picked, so its own gap between the selection and the test part is what picking did not cause.
    Adds ``baseline_optimism`` and ``excess_optimism`` (the chosen one's minus the baseline's)."""
    chosen, baseline = top.chosen, top.baseline
    if not chosen:
        return
    sign = 1.0 if higher_is_better else -1.0
    own = None
    if baseline["selection_mean"] is not None and baseline["mean"] is not None:
        own = (baseline["selection_mean"] - baseline["mean"]) * sign
    chosen["baseline_optimism"] = own
    chosen["excess_optimism"] = None if own is None or chosen["optimism"] is None else chosen["optimism"] - own


#: The regression metrics every regression report shows, beside the one the sweep compared on: RMSE
#: (in the target's units, each run's square root of its MSE), MSE and R².
REGRESSION_UNITS = ("rmse", "mse", "r2")


def _in_other_units(sweep, trials, runs, compared: Comparison, **options) -> list[str]:
    """Regression in its own units: each configuration's ``<m>`` (mean), ``<m>_ci``, ``<m>_delta`` (paired,
    mean over repeats of the run-by-run differences) and ``<m>_delta_ci`` for RMSE, MSE and R² (except the
    metric the report already compares on); returns the names added.

    RMSE is derived per run as sqrt(MSE), so its difference is the mean over repeats of the differences of
    square roots (not the square root of a difference of means). The same comparison runs on each, with the
    same bootstrap seed; only the means and intervals are kept (the verdicts stay those of the sweep's metric).
    """
    selected_on = sweep["metric"]
    prefix = selected_on[: len(selected_on) - len(metrics.base(selected_on))]
    own = metrics.base(compared.metric)
    added = []
    for name in REGRESSION_UNITS:
        if name == own:
            continue
        source = "mse" if name == "rmse" else name
        if not any(r.get(f"test_{source}") is not None for r in runs):
            continue
        if name == "rmse":
            derived_runs = [_square_rooted(dict(r)) for r in runs]
        else:
            derived_runs = runs
        other = {
            **sweep,
            "metric": prefix + source,
            "higher_is_better": metrics.higher_is_better(source),
        }
        derived = compare(other, trials, derived_runs, **options)
        pairs = [(compared.top, derived.top)]
        if len(compared.per_task) > 1:
            pairs += list(zip(compared.per_task, derived.per_task))
        for table, derived_table in pairs:
            rows = {c["trial"]: c for c in table.configs}
            for c in derived_table.configs:
                rows[c["trial"]].update(
                    {
                        name: c["mean"],
                        f"{name}_ci": c["ci"],
                        f"{name}_delta": c["delta"],
                        f"{name}_delta_ci": c["delta_ci"],
                    }
                )
        added.append(name)
    return added


def _square_rooted(row: dict) -> dict:
    """A run's row with every MSE column (any part, last epoch or early) replaced by its square root."""
    for key, value in row.items():
        if metrics.base(key) == "mse" and value is not None and np.isfinite(value) and value >= 0:
            row[key] = float(np.sqrt(value))
    return row


def _what_ran(runs: list[dict]) -> list[dict]:
    """Each distinct combination of RAN among the runs with its number of runs, the most common first."""
    counts = Counter(tuple(row.get(key) for key in RAN) for row in runs)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], repr(item[0])))
    return [{**dict(zip(RAN, values)), "n_runs": n} for values, n in ordered]


def _ran_by(runs: list[dict]) -> dict:
    """Each field of RAN as the runs' distinct values, comma-separated; None where none recorded it."""
    return {key: ", ".join(sorted({str(row[key]) for row in runs if row.get(key) is not None})) or None for key in RAN}


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


def _raced(table) -> bool:
    """Whether the table's sweep was raced (its runs stop short of the planned repeats by design)."""
    return bool(table.sequential and table.sequential["fixed"])
