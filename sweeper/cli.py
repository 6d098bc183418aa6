"""The command line: each command parses its arguments, calls the library and renders the answer.

Errors a user can fix (``SweeperError``) print one line on stderr and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sweeper import listing
from sweeper.errors import SweeperError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Which noise regularization reliably helps your small-data model: sweep it, store it, report it.")
out = Console()
err = Console(stderr=True)
_state = {"debug": False}

DbOption = typer.Option(None, "--db", envvar="SWEEPER_DB", show_envvar=True,
                        help="Database URL (default: sqlite:///sweeps.db in the working directory).")
FormatOption = typer.Option("table", "--format", "-f", help="table | csv | json")


def fail(message: str) -> None:
    raise SweeperError(message)


def command(fn):
    """Registers a command whose SweeperErrors become one stderr line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            if _state["debug"]:
                raise
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2)

    return app.command()(wrapper)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    _state["debug"] = debug
    # sweeper's own diagnostics follow --debug too (e.g. the compiler's error when the C kernels fail).
    logging.getLogger("sweeper").setLevel(logging.DEBUG if debug else logging.NOTSET)


def _open(db: Optional[str], create: bool = True):
    from sweeper.store import open_store
    return open_store(db, create=create)


def _check_format(fmt: str, allowed=listing.FORMATS) -> None:
    if fmt not in allowed:
        fail(f"--format: {fmt!r} is not allowed; allowed: {', '.join(allowed)}")


def _emit(rows: list[dict], fmt: str, title: str) -> None:
    if fmt == "json":
        sys.stdout.write(listing.to_json(rows) + "\n")
    elif fmt == "csv":
        sys.stdout.write(listing.to_csv(rows))
    else:
        out.print(listing.to_table(rows, title))


class _Bar:
    """The run progress bar on stderr: runs done / total, runs/s, elapsed and ETA.

    ``banner`` is printed when the sweep has been accepted and training starts.
    """

    def __init__(self, banner: str):
        self.banner = banner
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]} runs/s"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=err, transient=False)
        self.task = None
        self.trained = 0

    def start(self, total: int, done: int) -> None:
        err.print(self.banner, markup=False, highlight=False, soft_wrap=True)
        self.bar.start()
        self.task = self.bar.add_task("runs", total=total, completed=done, rate="-")
        self.t0 = time.perf_counter()

    def advance(self, runs: int) -> None:
        self.trained += runs
        rate = self.trained / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=runs, rate=f"{rate:.2f}")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


@command
def run(
    file: Path = typer.Argument(..., help="Search-space YAML file."),
    db: Optional[str] = DbOption,
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    repeats: Optional[int] = typer.Option(None, help="Override the file's repeats (quick runs)."),
    epochs: Optional[int] = typer.Option(None, help="Override every task's epochs (quick runs)."),
    name: Optional[str] = typer.Option(None, help="Store the sweep under this name instead of the file's."),
    executor: str = typer.Option("local", help="local | ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                              help="Ray cluster to use (default: a local Ray started for the run)."),
    cpus_per_pack: Optional[float] = typer.Option(None, "--cpus-per-pack", help="Ray: CPUs a CPU pack asks for."),
    gpus_per_pack: Optional[float] = typer.Option(None, "--gpus-per-pack", help="Ray: GPU share a GPU pack asks for."),
) -> None:
    """Run (or resume) a sweep: train every configuration x repeat and store every run."""
    from sweeper.driver.executors import LocalExecutor
    from sweeper.driver.sweep import check_data, run_sweep
    from sweeper.space import load_space

    spec = load_space(file).with_overrides(repeats=repeats, epochs=epochs, name=name)
    check_data(spec)  # before the store is opened: a bad input writes nothing
    if spec.search.sampler == "grid":
        for note in spec.grid_configs()[1]:
            err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if executor == "local":
        ex = LocalExecutor(device)
    elif executor == "ray":
        from sweeper.driver.ray_executor import RayExecutor
        ex = RayExecutor(device, address=ray_address, cpus_per_pack=cpus_per_pack, gpus_per_pack=gpus_per_pack)
    else:
        fail(f"--executor: {executor!r} is not allowed; allowed: local, ray")
    with _open(db) as store:
        bar = _Bar(f"sweep {spec.name!r} -> {store.display_url} on {ex.device} ({executor})")
        try:
            outcome = run_sweep(spec, store, ex, bar)
        except KeyboardInterrupt:
            bar.stop()
            err.print("interrupted: finished packs are stored; run the same command to resume", markup=False)
            raise typer.Exit(130)
        finally:
            bar.stop()
            ex.close()
        err.print(f"{outcome.runs_trained} runs trained in {outcome.seconds:.1f} s "
                  f"({outcome.runs_per_second:.2f} runs/s); {outcome.runs_total} runs stored in all",
                  markup=False, highlight=False)
        rows = store.trials(spec.name)
    cols = ["trial", "label", "n_runs", "n_diverged", "objective"]
    out.print(listing.to_table([{**r, "objective": r["objective"]} for r in rows], f"{spec.name}: {spec.metric}", cols))


@command
def validate(file: Path = typer.Argument(..., help="Search-space YAML file.")) -> None:
    """Check a search-space file without running it."""
    from sweeper.space import load_space

    spec = load_space(file)
    if spec.search.sampler == "grid":
        configs, notes = spec.grid_configs()
        for note in notes:
            err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        size = f"{len(configs)} configurations"
    else:
        size = f"{spec.search.n_trials} {spec.search.sampler} trials + the baseline"
    out.print(f"{file}: ok: sweep {spec.name!r}, {size} x {spec.repeats} repeats x {len(spec.tasks)} task(s), "
              f"metric {spec.metric}", markup=False, highlight=False, soft_wrap=True)


@command
def sweeps(db: Optional[str] = DbOption, format: str = FormatOption) -> None:
    """List the sweeps in the database."""
    _check_format(format)
    with _open(db, create=False) as store:
        _emit(store.sweeps(), format, "sweeps")


@command
def trials(sweep: str = typer.Argument(...), db: Optional[str] = DbOption, format: str = FormatOption) -> None:
    """List a sweep's trials (one per noise configuration)."""
    _check_format(format)
    with _open(db, create=False) as store:
        _emit(store.trials(sweep), format, f"{sweep}: trials")


@command
def runs(sweep: str = typer.Argument(...), db: Optional[str] = DbOption, format: str = FormatOption) -> None:
    """List a sweep's runs (one per trial, task and repeat) with their seeds and metrics."""
    _check_format(format)
    with _open(db, create=False) as store:
        _emit(store.runs(sweep), format, f"{sweep}: runs")


@command
def query(sql: str = typer.Argument(..., help="SQL to run read-only."), db: Optional[str] = DbOption,
          format: str = FormatOption) -> None:
    """Run a read-only SQL query on the trial database (writes are refused by the database)."""
    _check_format(format)
    with _open(db, create=False) as store:
        columns, rows = store.query(sql)
    _emit([dict(zip(columns, r)) for r in rows], format, None)


@command
def rerun(sweep: str = typer.Argument(...), trial: int = typer.Argument(..., help="Trial number."),
          repeat: Optional[int] = typer.Option(None, help="Only this repeat (default: all)."),
          db: Optional[str] = DbOption, device: str = typer.Option("cpu", help="cpu | cuda"),
          format: str = FormatOption) -> None:
    """Train a stored trial again from its stored seeds; show stored and new numbers side by side."""
    from sweeper.driver.executors import resolve_device
    from sweeper.driver.rerun import rerun_trial

    _check_format(format)
    device = resolve_device(device)
    with _open(db, create=False) as store:
        rows = rerun_trial(store, sweep, trial, repeat, device)
    _emit(rows, format, f"{sweep}: trial {trial} rerun")


@command
def report(sweep: str = typer.Argument(...), db: Optional[str] = DbOption,
           format: str = typer.Option("table", "--format", "-f", help="table | markdown | html | json | csv"),
           out_path: Optional[Path] = typer.Option(None, "--out", help="Write here (markdown/html: plots beside)."),
           seed: int = typer.Option(0, help="Seed of the bootstrap resampling.")) -> None:
    """Which noise settings reliably generalize better than no noise, with intervals and tests."""
    from sweeper.report.command import FORMATS, report_command

    _check_format(format, FORMATS)
    with _open(db, create=False) as store:
        report_command(store, sweep, format, out_path, seed, out)


@command
def bench(device: str = typer.Option("cpu", help="cpu | cuda"),
          members: Optional[int] = typer.Option(None, help="Population size (default: the pack size rule)."),
          epochs: int = typer.Option(4000, help="Epochs per run (W1: 4000)."),
          reference_runs: int = typer.Option(2, help="Runs of the reference loop to time."),
          noise: Optional[str] = typer.Option(None, help="W1 with other noise: PLACEMENT:KIND:STD, e.g. "
                                                       "weights:gaussian:0.1 (default: pre_activation:gaussian:0.1)."),
          stacked: bool = typer.Option(True, help="Also time the stacked torch program (the engine for what the "
                                                    "fused one does not take, and on GPUs)."),
          format: str = typer.Option("table", "--format", "-f", help="table | json")) -> None:
    """Workload W1: runs/s of the reference loop and of the population trainer, side by side."""
    from sweeper.driver.executors import resolve_device
    from sweeper.engine.bench import bench_w1

    _check_format(format, ("table", "json"))
    device = resolve_device(device)
    spec = None
    if noise is not None:
        from sweeper.noise.spec import NoiseSpec
        parts = noise.split(":")
        if len(parts) != 3:
            fail(f"--noise: {noise!r} is not PLACEMENT:KIND:STD, e.g. weights:gaussian:0.1")
        try:
            spec = NoiseSpec(parts[0], parts[1], float(parts[2]))
        except ValueError as exc:
            fail(f"--noise: {exc}")
    result = bench_w1(device, members=members, epochs=epochs, reference_runs=reference_runs, stacked=stacked,
                      noise=spec, log=lambda m: err.print(m, markup=False, highlight=False))
    if format == "json":
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(listing.to_table([{"figure": k, "value": v} for k, v in result.items()], "W1 benchmark"))


if __name__ == "__main__":
    app()
