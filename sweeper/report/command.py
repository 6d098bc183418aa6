"""``sweeper report``: read a sweep from the store, build its report, render or write it."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from sweeper.errors import SweeperError
from sweeper.report import across
from sweeper.report.build import build_report
from sweeper.report.render import VERDICTS, filtered, ran_lines, render_csv, render_json, render_table, write_report
from sweeper.store import Store, StoredSweep

#: What ``fmt`` may be; the command line refuses anything else (sweeper.cli.ReportFormat).
FORMATS = ("table", "markdown", "html", "json", "csv")
#: What the report shows of each task of the stored context, in this order.
TASK_SETTING = (
    "task",
    "dataset",
    "dataset_seed",
    "n_train",
    "n_val",
    "n_test",
    "model",
    "epochs",
    "batch_size",
    "optimizer",
)


def report_command(
    store: Store,
    sweep: str,
    fmt: str,
    out_path: Path | None,
    seed: int,
    console: Console,
    *,
    at: str = "last",
    top: int | None = None,
    verdicts: str | None = None,
) -> list[Path]:
    """Renders ``fmt`` to the terminal (table, json, csv without ``--out``) or writes files; returns them.

    ``top`` and ``verdicts`` (comma-separated) cut the tables and plots, not the statistics.
    """
    kept = None
    if verdicts is not None:
        kept = tuple(v.strip() for v in verdicts.split(",") if v.strip())
        wrong = [v for v in kept if v not in VERDICTS]
        if wrong or not kept:
            raise SweeperError(
                f"--verdict: {verdicts!r} is not allowed; allowed: a comma-separated list of {', '.join(VERDICTS)}"
            )
    if fmt in ("markdown", "html") and out_path is None:
        out_path = Path("reports") / f"{sweep}.{'md' if fmt == 'markdown' else 'html'}"
    sweep_row, runs = store.sweep(sweep), store.runs(sweep)
    planned, setting = stored_setting(sweep_row)
    report = build_report(sweep_row, store.trials(sweep), runs, seed=seed, at=at, planned=planned, setting=setting)
    report = filtered(report, top=top, verdicts=kept)
    if out_path is not None and fmt != "table":
        curves = store.curves(sweep) if fmt in ("markdown", "html") else None
        written = write_report(report, runs, curves, fmt, out_path)
        Console(stderr=True).print("wrote " + ", ".join(str(p) for p in written), markup=False, highlight=False)
        return written
    if fmt == "json":
        sys.stdout.write(render_json(report) + "\n")
    elif fmt == "csv":
        sys.stdout.write(render_csv(report))
    else:
        console.print(render_table(report, width=console.width))
        console.print(report["summary"], markup=False, highlight=False)
        if report.get("across_data_sets"):
            console.print(across.terminal(report["across_data_sets"], width=console.width))
        console.print("What ran: " + "; ".join(ran_lines(report)) + ".", markup=False, highlight=False)
    return []


def stored_setting(sweep: StoredSweep) -> tuple[int | None, dict | None]:
    """The configurations the sweep plans and what it ran (tasks, split sizes, model, ...), as the driver
    stored them when it started (``sweeper.driver.context``); (None, None) for a sweep stored before
    schema 0006, whose report covers its runs without the plan."""
    context = sweep.context
    if not context:
        return None, None
    dates = {
        key: (value.isoformat() if hasattr(value, "isoformat") else value)
        for key, value in (("created_at", sweep.created_at), ("finished_at", sweep.finished_at))
    }
    tasks = [{key: t.get(key) for key in TASK_SETTING} for t in context["tasks"]]
    setting = {
        "tasks": tasks,
        "space": context["space"],
        "sweep_seed": context["sweep_seed"],
        "repeats": context["repeats"],
        # planned (when the sweep was created), then each extension (when, what changed, the size after it)
        "history": [{"at": dates["created_at"], **step} for step in context.get("history", ())],
    }
    return context["planned"], {**setting, **dates}
