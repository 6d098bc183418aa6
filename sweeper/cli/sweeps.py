"""The commands that train: ``run`` and ``validate`` (which share ``sweeper.driver.prepare``), ``rerun``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from sweeper import listing
from sweeper.cli.app import emit, err, open_store, say, show
from sweeper.cli.options import DbOption, Device, Executor, FormatOption, LogFormat, SweepArgument
from sweeper.cli.progress import Bar, Lines
from sweeper.tasks import features

FileArgument = typer.Argument(..., metavar="FILE", help="Search-space YAML file.")


def run(
    file: Path = FileArgument,
    db: str | None = DbOption,
    device: Device = typer.Option(Device.auto, help="Where to train (auto: a CUDA GPU when PyTorch sees one)."),
    repeats: int | None = typer.Option(None, help="Override the file's repeats (quick runs)."),
    epochs: int | None = typer.Option(None, help="Override every task's epochs (quick runs)."),
    name: str | None = typer.Option(None, help="Store the sweep under this name instead of the file's."),
    executor: Executor = typer.Option(Executor.local, help="Train in this process, or on a Ray cluster."),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to use (default: a local Ray started for the run).",
    ),
    cpus_per_pack: float | None = typer.Option(None, "--cpus-per-pack", help="Ray: CPUs a CPU pack asks for."),
    gpus_per_pack: float | None = typer.Option(None, "--gpus-per-pack", help="Ray: GPU share a GPU pack asks for."),
    log_format: LogFormat = typer.Option(
        LogFormat.auto,
        "--log-format",
        help="Progress: auto (a live bar on a terminal, text lines in a log file), text, or json (an object a line).",
    ),
    progress_every: float = typer.Option(
        30.0,
        "--progress-every",
        metavar="SECONDS",
        min=0,
        help="Progress lines (not on a terminal): one every SECONDS and at each tenth of the runs (0: tenths only).",
    ),
) -> None:
    """Run (or resume) a sweep: train every configuration x repeat and store every run.

    Ctrl-C, SIGTERM and SIGHUP stop it with every finished pack stored (exit 130, 143, 129); the same
    command resumes it. A signal ignored at start (nohup, a background job) stays ignored."""
    # torch and optuna load after the file is read (they take seconds): a bad file is refused at once.
    from sweeper.driver.prepare import prepare
    from sweeper.store import default_url

    def make_executor(spec):
        if executor == Executor.local:
            from sweeper.driver.executors import LocalExecutor

            return LocalExecutor(device.value)
        from sweeper.driver.ray_executor import RayExecutor, runtime_env

        # A task's own model's module travels with the job.
        env = runtime_env(spec.tasks.values())
        return RayExecutor(
            device.value, address=ray_address, cpus_per_pack=cpus_per_pack, gpus_per_pack=gpus_per_pack, env=env
        )

    # Checked before the store is opened: a bad input, or a member too large for the memory free, writes nothing.
    prepared = prepare(file, make_executor, repeats=repeats, epochs=epochs, name=name, stored_in=db or default_url())
    for note in prepared.notes:
        say(f"note: {note}")
    from sweeper.driver._interrupts import Terminated, sigterm_interrupts
    from sweeper.driver.sweep import run_sweep

    spec = prepared.spec
    inputs = [f"features: task {n!r}: {features.line(features.described(t))}" for n, t in spec.tasks.items()]
    with contextlib.closing(prepared.executor), open_store(db) as store:
        banner = f"sweep {spec.name!r} -> {store.display_url} on {prepared.executor.device} ({executor.value})"
        if log_format == LogFormat.auto and err.is_terminal:
            bar = Bar(banner)
        else:
            bar = Lines(spec.name, banner, every=progress_every, as_json=log_format == LogFormat.json)
        try:
            with sigterm_interrupts():
                outcome = run_sweep(prepared, store, progress=_Warned(bar, inputs, prepared.warnings))
        except KeyboardInterrupt as exc:
            how = f"terminated ({exc.name})" if isinstance(exc, Terminated) else "interrupted"
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone: the status still says it
                bar.stop()
                say(f"{how}: finished packs are stored; run the same command to resume")
            raise typer.Exit(exc.exit_status if isinstance(exc, Terminated) else 130) from None
        finally:
            with contextlib.suppress(OSError):
                bar.stop()
        if outcome.complete:
            say(
                f"sweep {spec.name!r} is complete: 0 runs trained, nothing to do; {outcome.runs_total} runs "
                "stored in all"
            )
        elif outcome.runs_trained == 0:  # resumed after its last pack was stored: only its last trials were told
            say(f"sweep {spec.name!r}: all {outcome.runs_total} runs were stored already; nothing to train")
        else:
            say(
                f"{outcome.runs_trained} runs trained in {outcome.seconds:.1f} s "
                f"({outcome.runs_per_second:.2f} runs/s); {outcome.runs_total} runs stored in all"
            )
        rows = store.trials(spec.name)
    columns = ["trial", "label", "n_runs", "n_diverged", "n_failed_to_learn", "objective"]
    emit(rows, listing.Format.table, f"{spec.name}: {spec.metric}", columns)


class _Warned:
    """A progress display that says the sweep's warnings (too few repeats) and what each task's model sees
    first, once the store has taken the sweep: a sweep refused (changed, held by another run) is refused in
    its one line alone."""

    def __init__(self, bar: Bar | Lines, inputs: list[str], warnings: tuple[str, ...]):
        self.bar, self.inputs, self.warnings = bar, inputs, warnings

    def start(self, total: int, done: int) -> None:
        for warning in self.warnings:
            say(f"warning: {warning}")
        for line in self.inputs:
            say(line)
        self.bar.start(total, done)

    def advance(self, runs: int) -> None:
        self.bar.advance(runs)

    def training(self, runs: float, packs: int) -> None:
        self.bar.training(runs, packs)

    def race_round(self, k: int, open_: int, spent: int, fixed: int, over: bool) -> None:
        self.bar.race_round(k, open_, spent, fixed, over)


def validate(file: Path = FileArgument) -> None:
    """Check a search-space file without running it (data sizes, and memory against this machine's device)."""
    from sweeper.driver.prepare import prepare, race_plan

    def this_machine(spec):
        from sweeper.driver.executors import LocalExecutor

        return LocalExecutor("auto")

    prepared = prepare(file, this_machine)
    for note in prepared.notes:
        say(f"note: {note}")
    for warning in prepared.warnings:
        say(f"warning: {warning}")
    spec = prepared.spec
    if spec.search.sampler == "grid":
        size = f"{len(spec.search.configs)} configurations"
    else:
        size = f"{spec.search.n_trials} {spec.search.sampler} trials + the baseline"
    show(
        f"{file}: ok: sweep {spec.name!r}, {size} x {spec.repeats} repeats x {len(spec.tasks)} task(s), "
        f"metric {spec.metric}"
    )
    for task_name, task in spec.tasks.items():
        first, *rest = features.lines(features.described(task))
        show(f"task {task_name!r}: {first}")
        for line in rest:
            show(f"  {line}")
    plan = race_plan(spec)
    if plan is not None:
        show(plan)


def rerun(
    sweep: str = SweepArgument,
    trial: int = typer.Argument(..., metavar="TRIAL", help="Trial number (see sweeper trials SWEEP)."),
    repeat: int | None = typer.Option(None, help="Only this repeat (default: all)."),
    db: str | None = DbOption,
    device: Device = typer.Option(Device.cpu, help="Where to train again."),
    format: listing.Format = FormatOption,
) -> None:
    """Train a stored trial again from its stored seeds; show stored and new numbers side by side."""
    from sweeper.driver.executors import resolve_device
    from sweeper.driver.rerun import rerun_trial

    device = resolve_device(device.value)
    with open_store(db, read_only=True) as store:
        rows = rerun_trial(store, sweep, trial, repeat, device, warn=lambda m: say(f"warning: {m}"))
    emit(rows, format, f"{sweep}: trial {trial} rerun")
