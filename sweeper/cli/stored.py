"""The commands over what the database holds: the listings, SQL, the report, deleting a sweep."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import typer

from sweeper import listing
from sweeper.cli.app import emit, fail, open_store, out, say, show
from sweeper.cli.options import DbOption, FormatOption, ReportFormat, SweepArgument

MAX_QUERY_TIMEOUT_S = 86_400


#: The columns of a running sweep's progress and holder, in two columns of words in a table.
_LIVE_COLUMNS = (
    "runs_planned",
    "runs_per_second",
    "eta_seconds",
    "lease_host",
    "lease_pid",
    "heartbeat_age_s",
    "holder_alive",
    "note",
)


def sweeps(db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List the sweeps in the database; a running one with its rate over the last minute, ETA and holder."""
    with open_store(db, read_only=True) as store:
        rows = [row.row() for row in store.sweeps()]
    if format == listing.Format.table:
        rows = listing.ran_in_one_column([_progress_in_words(row) for row in rows])
    emit(rows, format, "sweeps")


def _progress_in_words(row: dict) -> dict:
    """``progress`` (runs stored / planned; running: rate and ETA) and ``held_by`` (running: the holder and
    its heartbeat, or why it is gone and how to resume) in place of their columns."""
    from sweeper.cli.progress import duration

    planned = row["runs_planned"]
    progress = f"{row['n_runs']}/{planned if planned is not None else '?'} runs"
    held_by = None
    if row["status"] == "running" and row["holder_alive"]:
        eta = duration(row["eta_seconds"]) if row["eta_seconds"] is not None else "-"
        progress += f", {row['runs_per_second']:.2f} runs/s (last minute), ETA {eta}"
        held_by = f"host {row['lease_host']} (pid {row['lease_pid']}), heartbeat {row['heartbeat_age_s']:.0f} s ago"
    elif row["status"] == "running":
        held_by = row["note"]  # gone: why, and how to resume
    words = {"progress": progress, "held_by": held_by}
    kept = {k: v for k, v in row.items() if k not in _LIVE_COLUMNS and k != "n_runs"}
    at = list(kept).index("n_trials") + 1
    items = list(kept.items())
    return dict(items[:at] + list(words.items()) + items[at:])


def trials(sweep: str = SweepArgument, db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List a sweep's trials (one per noise configuration)."""
    with open_store(db, read_only=True) as store:
        emit(store.trials(sweep), format, f"{sweep}: trials")


def runs(sweep: str = SweepArgument, db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List a sweep's runs (one per trial, task and repeat) with their seeds, metrics and what trained them."""
    with open_store(db, read_only=True) as store:
        rows = store.runs(sweep)
    if format == listing.Format.table:
        # The metrics at the best validation epoch are for scripts (csv, json): a terminal cannot hold them too.
        rows = listing.ran_in_one_column([{k: v for k, v in row.items() if not k.startswith("early_")} for row in rows])
    emit(rows, format, f"{sweep}: runs")


def query(
    sql: str = typer.Argument(..., help="One read-only statement: SELECT, VALUES, TABLE or WITH ... SELECT."),
    db: str | None = DbOption,
    format: listing.Format = FormatOption,
    limit: int = typer.Option(10_000, help="Show at most this many rows (stderr says when there were more)."),
    timeout: float = typer.Option(
        300.0, help="Stop the query after this many seconds (PostgreSQL also stops it server side)."
    ),
) -> None:
    """Run one read-only SQL query on the trial database, within a row limit and a timeout.

    On PostgreSQL it runs as the role sweeper_reader (see `sweeper db reader`)."""
    if not _statement(sql):
        fail(f"query: {sql[:40]!r} holds no statement; allowed: one read-only statement, e.g. 'SELECT 1'")
    if limit < 1:
        fail(f"--limit: {limit} is not allowed; allowed: a number of rows, 1 or more")
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_QUERY_TIMEOUT_S):
        fail(f"--timeout: {timeout:g} is not allowed; allowed: seconds above 0, up to {MAX_QUERY_TIMEOUT_S}")
    with open_store(db, read_only=True) as store:
        result = store.query(sql, limit=limit, timeout=timeout)
    repeated = sorted({c for c in result.columns if result.columns.count(c) > 1})
    if repeated:
        fail(f"query: column name {repeated[0]!r} appears more than once; name each column apart with AS")
    emit([dict(zip(result.columns, r)) for r in result.rows], format, None)
    if result.truncated:
        say(f"showing the first {limit} rows; --limit to change")


def delete(
    sweep: str = SweepArgument,
    db: str | None = DbOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking (for scripts)."),
) -> None:
    """Delete a sweep with its trials, runs, curves and Optuna study (asks first)."""
    with open_store(db, create=False) as store:
        store.check_not_running(sweep)  # a missing sweep, or one being run, is one line
        row = next(r for r in store.sweeps() if r["name"] == sweep)
        what = f"sweep {sweep!r} ({row['n_trials']} trials, {row['n_runs']} runs) from {store.display_url}"
        if not yes:
            if not sys.stdin.isatty():
                fail(f"not deleting {what} unconfirmed: the input is not a terminal to ask on; add --yes")
            # Asked on stderr, unlike typer.confirm, which writes part of its prompt to stdout
            say(f"Delete {what}? This cannot be undone. [y/N] ", end="")
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                say("nothing deleted")
                raise typer.Exit(1)
        deleted = store.delete_sweep(sweep)
    study = " and its Optuna study" if deleted["optuna_studies"] else ""
    show(
        f"deleted sweep {sweep!r}: {deleted['trials']} trials, {deleted['runs']} runs, "
        f"{deleted['curves']} curve points{study}"
    )


def report(
    sweep: str = SweepArgument,
    db: str | None = DbOption,
    format: ReportFormat = typer.Option(
        ReportFormat.table, "--format", "-f", help="table to read; markdown or html pages with plots; json or csv."
    ),
    out_path: Path | None = typer.Option(None, "--out", help="Write here (markdown/html: plots beside)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap resampling."),
    at: str = typer.Option(
        "last",
        "--at",
        help="Compare on the last epoch's metrics (last) or on each run's "
        "at its best validation epoch (best_val: early stopping).",
    ),
    top: int | None = typer.Option(None, "--top", min=1, help="Tables and plots: only the N best."),
    verdict: str | None = typer.Option(
        None, "--verdict", help="Tables and plots: only these verdicts, e.g. better,worse."
    ),
    wide: bool = typer.Option(False, "--wide", help="Table: every column (csv and json always have them)."),
) -> None:
    """Which noise settings reliably generalize better than no noise, with intervals and tests."""
    from sweeper.report.command import report_command

    with open_store(db, read_only=True) as store:
        report_command(store, sweep, format.value, out_path, seed, out, at=at, top=top, verdicts=verdict, wide=wide)


def _statement(sql: str) -> str:
    """``sql`` without its comments and blanks: empty when it holds no statement to run."""
    return re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", sql, flags=re.DOTALL).strip(" \t\r\n;")
