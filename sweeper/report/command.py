"""``sweeper report``: read a sweep from the store, build its report, render or write it."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from sweeper.errors import SweeperError
from sweeper.report.build import build_report
from sweeper.report.render import ran_lines, render_csv, render_json, render_table, write_report
from sweeper.store import Store

FORMATS = ("table", "markdown", "html", "json", "csv")


def report_command(store: Store, sweep: str, fmt: str, out_path: Path | None, seed: int, console: Console) -> list[Path]:
    """Renders ``fmt`` to the terminal (table, json, csv without ``--out``) or writes files; returns them."""
    if fmt not in FORMATS:
        raise SweeperError(f"--format: {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
    if fmt in ("markdown", "html") and out_path is None:
        out_path = Path("reports") / f"{sweep}.{'md' if fmt == 'markdown' else 'html'}"
    sweep_row, runs = store.sweep(sweep), store.runs(sweep)
    report = build_report(sweep_row, store.trials(sweep), runs, seed=seed)
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
