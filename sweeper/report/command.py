"""``sweeper report``: read a sweep from the store, build its report, render or write it."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from sweeper.errors import SpaceError, StoreError, SweeperError
from sweeper.report.build import build_report, planned_configs, setting_of
from sweeper.report.render import VERDICTS, filtered, ran_lines, render_csv, render_json, render_table, write_report
from sweeper.store import Store

#: What ``fmt`` may be; the command line refuses anything else (sweeper.cli.ReportFormat).
FORMATS = ("table", "markdown", "html", "json", "csv")


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
    planned = setting = None
    try:
        from sweeper.driver.sweep import spec_from_store  # the driver imports torch: only here

        spec = spec_from_store(sweep_row, f"sweep {sweep!r}")
        planned, setting = planned_configs(spec), setting_of(spec, sweep_row)
    except SpaceError:
        pass  # a stored text this version cannot read: the report covers the runs without the plan
    trials = store.trials(sweep)
    report = build_report(sweep_row, trials, runs, seed=seed, at=at, planned=planned, setting=setting)
    _record_verdicts(store, sweep_row["study_name"], trials, report)
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
        console.print("What ran: " + "; ".join(ran_lines(report)) + ".", markup=False, highlight=False)
    return []


def _record_verdicts(store: Store, study_name: str, trials: list[dict], report: dict) -> None:
    """Each configuration's verdict, as a user attribute of its trial in the sweep's Optuna study (what
    optuna-dashboard shows); a database that cannot be written (read-only) keeps the report going."""
    from sweeper.driver._optuna import record_user_attrs

    optuna_numbers = {t["trial"]: t["optuna_trial_id"] for t in trials if t["optuna_trial_id"] is not None}
    verdicts = {
        optuna_numbers[c["trial"]]: {"verdict": c["verdict"]} for c in report["configs"] if c["trial"] in optuna_numbers
    }
    try:
        with store.transaction() as connection:
            record_user_attrs(connection, study_name, verdicts)
    except StoreError as exc:
        Console(stderr=True).print(
            f"note: the verdicts are not recorded in the Optuna study: {exc}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
