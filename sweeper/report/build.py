"""Build a sweep's report from the store's rows: which noise configurations reliably beat no noise."""

from __future__ import annotations

from collections import Counter

import numpy as np

from sweeper.report import across, prose
from sweeper.stats.comparisons import ALPHA, AT, CONFIDENCE, compare

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
    )
    tasks, configs, family, top = compared.tasks, compared.configs, compared.family, compared.top
    higher_is_better, shared = compared.higher_is_better, compared.shared

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
        "progress": progress,
        "setting": setting,
        "chosen": top.chosen,
        "baseline": top.baseline,
        "configs": top.configs,
        "pending": compared.pending,
        "tasks": None,
        "across_tasks": None,
        "across_data_sets": None,
        "methods": prose.methods(n_boot, alpha, family, multi_task=len(tasks) > 1, shared=shared, at=at),
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
    return _json_ready(report)


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
