"""The command line: each command parses its arguments, calls the library and renders the answer.

Errors a user can fix (``SweeperError``) print one line on stderr and exit with status 2; ``--debug``
shows the traceback instead. The parser's usage errors (an unknown flag, a value not among the choices)
are one line and status 2 too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
import time
from enum import Enum
from importlib import metadata
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from sweeper import listing
from sweeper.errors import SpaceError, SweeperError


class _Group(TyperGroup):
    """The command group whose usage errors are one line on stderr, like every other error."""

    def make_context(self, *args, **kwargs):
        with _usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _usage_errors():  # a subcommand parses its arguments in here
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Which noise regularization reliably helps your small-data model: sweep it, store it, report it.",
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}
#: The width of output that goes to a pipe or a file: wide enough that no table row wraps.
UNWRAPPED = 1 << 20

DbOption = typer.Option(
    None,
    "--db",
    envvar="SWEEPER_DB",
    show_envvar=True,
    help="Database URL (default: sqlite:///sweeps.db in the working directory).",
)
FormatOption = typer.Option(
    listing.Format.table, "--format", "-f", help="table to read, csv, or json (one array of flat objects) for scripts."
)
SweepArgument = typer.Argument(..., metavar="SWEEP", help="Name of the sweep (see sweeper sweeps).")


class Device(str, Enum):
    """Where to train: ``auto`` takes a CUDA GPU when PyTorch sees one (the values of
    ``sweeper.driver.executors.DEVICES``; the one place a device name is checked)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Executor(str, Enum):
    """Who trains the packs: this process, or a Ray cluster."""

    local = "local"
    ray = "ray"


class ReportFormat(str, Enum):
    """What ``sweeper report`` prints or writes (the values of ``sweeper.report.command.FORMATS``; the one
    place a report format is checked)."""

    table = "table"
    markdown = "markdown"
    html = "html"
    json = "json"
    csv = "csv"


class BenchFormat(str, Enum):
    """What ``sweeper bench`` prints: a table to read, or JSON for scripts."""

    table = "table"
    json = "json"


MAX_QUERY_TIMEOUT_S = 86_400


def fail(message: str) -> None:
    raise SweeperError(message)


@contextlib.contextmanager
def _usage_errors():
    """Turns the parser's usage errors into one line on stderr and exit status 2.

    A group called without a command prints its help (the parser already has) and exits with status 0.
    """
    try:
        yield
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise typer.Exit(0) from None
        if exc.exit_code != 2:
            raise
        err.print(f"error: {_usage_line(exc)}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _usage_line(exc: typer.TyperException) -> str:
    """What was wrong, with the flag or argument it concerns, and where to read the usage."""
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and exc.message:
        name = max(param.opts, key=len) if param.param_type_name == "option" else param.metavar or param.name
        # Typer validates through pydantic, whose messages open with the kind of error
        message = f"{name}: {exc.message.removeprefix('Value error, ').rstrip('.')}"
    else:
        message = exc.format_message().rstrip(".")
    ctx = getattr(exc, "ctx", None)  # the parser leaves it out of some errors
    return message if ctx is None else f"{message} (see {ctx.command_path} -h)"


def _one_line_errors(fn):
    """``fn`` with its SweeperErrors turned into one stderr line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            if _state["debug"]:
                raise
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def command(fn):
    """Registers a command whose SweeperErrors become one stderr line and exit status 2."""
    return app.command()(_one_line_errors(fn))


def _versions() -> str:
    """sweeper's version with those of the engines its numbers depend on."""

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"sweeper {version('sweeper')} (torch {version('torch')}, optuna {version('optuna')}, "
        f"Python {sys.version.split()[0]})"
    )


def _print_version(value: bool) -> None:
    if value:
        out.print(_versions(), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the versions of sweeper, torch, optuna and Python, and exit.",
    ),
) -> None:
    _state["debug"] = debug
    if not out.is_terminal:
        # Piped or redirected, tables are read by programs and editors: one line per row, nothing cut.
        out.width = UNWRAPPED
    # sweeper's own diagnostics follow --debug too (e.g. the compiler's error when the C kernels fail).
    logging.getLogger("sweeper").setLevel(logging.DEBUG if debug else logging.NOTSET)


def _stored_before_validation(file: Path, db: str | None, name: str | None):
    """The sweep of ``file`` as stored by a sweeper without validation parts, which resumes with the same
    text (its ``test_`` metric, no validation part); None if ``file`` is not such a stored sweep's."""
    from sweeper.space import parse_space

    try:
        text = file.read_text(encoding="utf-8")
        spec = parse_space(text, str(file), stored=True, base_dir=file.resolve().parent)
        with _open(db, create=False) as store:
            row = store.sweep(name or spec.name)
    except (OSError, SweeperError):
        return None
    if row["spec_yaml"] != text or not row["metric"].startswith("test_"):
        return None
    from sweeper.driver.sweep import as_stored

    return as_stored(spec, row["metric"])


def _open(db: str | None, create: bool = True):
    from sweeper.store import open_store

    return open_store(db, create=create)


def _emit(rows: list[dict], fmt: listing.Format, title: str) -> None:
    if fmt == listing.Format.json:
        sys.stdout.write(listing.to_json(rows) + "\n")
    elif fmt == listing.Format.csv:
        sys.stdout.write(listing.to_csv(rows))
    else:
        out.print(listing.to_table(rows, title))


class _Bar:
    """The run progress bar on stderr: runs done / total, runs/s, elapsed and ETA.

    ``banner`` is printed when the sweep has been accepted and training starts. Runs in training count
    by the fraction of their epochs trained, so the bar, the rate and the ETA move while a pack trains.
    """

    def __init__(self, banner: str):
        self.banner = banner
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} runs/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.task = None
        self.done = self.trained = 0
        self.in_training = 0.0

    def start(self, total: int, done: int) -> None:
        err.print(self.banner, markup=False, highlight=False, soft_wrap=True)
        self.bar.start()
        self.done = done
        self.task = self.bar.add_task("runs", total=total, completed=done, rate="-")
        self.t0 = time.perf_counter()

    def advance(self, runs: int) -> None:
        self.trained += runs
        self._show()

    def training(self, runs: float) -> None:
        self.in_training = runs
        self._show()

    def _show(self) -> None:
        # Set, not added up: the bar ends on the exact count of runs stored whatever fractions it showed.
        now = self.trained + self.in_training
        rate = now / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, completed=self.done + now, rate=f"{rate:.2f}")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


@command
def run(
    file: Path = typer.Argument(..., metavar="FILE", help="Search-space YAML file."),
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
) -> None:
    """Run (or resume) a sweep: train every configuration x repeat and store every run."""
    from sweeper.space import load_space

    try:
        spec = load_space(file)
    except SpaceError:
        spec = _stored_before_validation(file, db, name)
        if spec is None:
            raise
    spec = spec.with_overrides(repeats=repeats, epochs=epochs, name=name)
    # Imported after the file is read: torch and optuna take seconds, a bad file is refused at once.
    from sweeper.driver.executors import LocalExecutor
    from sweeper.driver.sweep import check_data, pack_sizes, run_sweep
    from sweeper.tasks.files import notes as data_notes

    data_sizes = check_data(spec)  # before the store is opened: a bad input writes nothing
    if executor == Executor.local:
        ex = LocalExecutor(device.value)
    else:
        from sweeper.driver.ray_executor import RayExecutor, runtime_env

        ex = RayExecutor(
            device.value,
            address=ray_address,
            cpus_per_pack=cpus_per_pack,
            gpus_per_pack=gpus_per_pack,
            env=runtime_env(spec.tasks.values()),
        )  # a user model's module travels with the job
    try:
        pack_sizes(spec, ex, data_sizes)  # a member too large for the memory free writes nothing either
    except SweeperError:
        ex.close()
        raise
    for note in data_notes(spec.tasks) + (spec.grid_configs()[1] if spec.search.sampler == "grid" else []):
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    from sweeper.driver._interrupts import Terminated, sigterm_interrupts

    with _open(db) as store:
        bar = _Bar(f"sweep {spec.name!r} -> {store.display_url} on {ex.device} ({executor.value})")
        try:
            with sigterm_interrupts():
                outcome = run_sweep(spec, store, ex, bar)
        except KeyboardInterrupt as exc:
            bar.stop()
            how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            err.print(f"{how}: finished packs are stored; run the same command to resume", markup=False)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        finally:
            bar.stop()
            ex.close()
        if outcome.complete:
            err.print(
                f"sweep {spec.name!r} is complete: 0 runs trained, nothing to do; {outcome.runs_total} runs "
                "stored in all",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        elif outcome.runs_trained == 0:  # resumed after its last pack was stored: only its last trials were told
            err.print(
                f"sweep {spec.name!r}: all {outcome.runs_total} runs were stored already; nothing to train",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(
                f"{outcome.runs_trained} runs trained in {outcome.seconds:.1f} s "
                f"({outcome.runs_per_second:.2f} runs/s); {outcome.runs_total} runs stored in all",
                markup=False,
                highlight=False,
            )
        rows = store.trials(spec.name)
    cols = ["trial", "label", "n_runs", "n_diverged", "n_failed_to_learn", "objective"]
    out.print(listing.to_table([{**r, "objective": r["objective"]} for r in rows], f"{spec.name}: {spec.metric}", cols))


@command
def validate(file: Path = typer.Argument(..., metavar="FILE", help="Search-space YAML file.")) -> None:
    """Check a search-space file without running it (data sizes, and memory against this machine's device)."""
    from sweeper.space import load_space

    spec = load_space(file)
    from sweeper.driver.executors import LocalExecutor  # after the file: a bad one is refused at once
    from sweeper.driver.sweep import check_data, pack_sizes
    from sweeper.tasks.files import notes as data_notes

    pack_sizes(spec, LocalExecutor("auto"), check_data(spec))
    for note in data_notes(spec.tasks) + list(spec.search.notes):
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if spec.search.sampler == "grid":
        size = f"{len(spec.search.configs)} configurations"
    else:
        size = f"{spec.search.n_trials} {spec.search.sampler} trials + the baseline"
    out.print(
        f"{file}: ok: sweep {spec.name!r}, {size} x {spec.repeats} repeats x {len(spec.tasks)} task(s), "
        f"metric {spec.metric}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@command
def sweeps(db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List the sweeps in the database."""
    with _open(db, create=False) as store:
        rows = store.sweeps()
    _emit(listing.ran_in_one_column(rows) if format == listing.Format.table else rows, format, "sweeps")


@command
def trials(sweep: str = SweepArgument, db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List a sweep's trials (one per noise configuration)."""
    with _open(db, create=False) as store:
        _emit(store.trials(sweep), format, f"{sweep}: trials")


@command
def runs(sweep: str = SweepArgument, db: str | None = DbOption, format: listing.Format = FormatOption) -> None:
    """List a sweep's runs (one per trial, task and repeat) with their seeds, metrics and what trained them."""
    with _open(db, create=False) as store:
        rows = store.runs(sweep)
    if format == listing.Format.table:
        # The metrics at the best validation epoch are for scripts (csv, json): a terminal cannot hold them too.
        rows = listing.ran_in_one_column([{k: v for k, v in row.items() if not k.startswith("early_")} for row in rows])
    _emit(rows, format, f"{sweep}: runs")


@command
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
    if limit < 1:
        fail(f"--limit: {limit} is not allowed; allowed: a number of rows, 1 or more")
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_QUERY_TIMEOUT_S):
        fail(f"--timeout: {timeout:g} is not allowed; allowed: seconds above 0, up to {MAX_QUERY_TIMEOUT_S}")
    with _open(db, create=False) as store:
        result = store.query(sql, limit=limit, timeout=timeout)
    repeated = sorted({c for c in result.columns if result.columns.count(c) > 1})
    if repeated:
        fail(f"query: column name {repeated[0]!r} appears more than once; name each column apart with AS")
    _emit([dict(zip(result.columns, r)) for r in result.rows], format, None)
    if result.truncated:
        err.print(f"showing the first {limit} rows; --limit to change", markup=False, highlight=False)


db_app = typer.Typer(
    no_args_is_help=True, help="The database itself: the version of sweeper's tables, the role queries run as."
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@_one_line_errors
def db_upgrade(db: str | None = DbOption) -> None:
    """Upgrade sweeper's tables to this version's schema (any `sweeper run` also does it)."""
    with _open(db, create=False) as store:
        before, after = store.upgrade_schema()
        said = f"already at schema {after}" if before == after else f"schema {before or 'none'} -> {after}"
        out.print(f"{store.display_url}: {said}", markup=False, highlight=False, soft_wrap=True)


@db_app.command("reader")
@_one_line_errors
def db_reader(
    db: str | None = DbOption,
    temp_file_limit: str = typer.Option(
        "1GB",
        "--temp-file-limit",
        help="Temporary files one query may write (a PostgreSQL size such as 512MB; -1: no limit).",
    ),
) -> None:
    """Create (or reset) the PostgreSQL role sweeper_reader that `query` runs SQL as (needs CREATEROLE)."""
    from sweeper.store import READER, create_reader, default_url, redact

    for note in create_reader(db, temp_file_limit):
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        f"role {READER} ready: it may read the sweeper and Optuna tables of {redact(db or default_url())}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@command
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
    with _open(db, create=False) as store:
        rows = rerun_trial(
            store,
            sweep,
            trial,
            repeat,
            device,
            warn=lambda m: err.print(f"warning: {m}", markup=False, highlight=False, soft_wrap=True),
        )
    _emit(rows, format, f"{sweep}: trial {trial} rerun")


@command
def delete(
    sweep: str = SweepArgument,
    db: str | None = DbOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking (for scripts)."),
) -> None:
    """Delete a sweep with its trials, runs, curves and Optuna study (asks first)."""
    with _open(db, create=False) as store:
        store.check_not_running(sweep)  # a missing sweep, or one being run, is one line
        row = next(r for r in store.sweeps() if r["name"] == sweep)
        what = f"sweep {sweep!r} ({row['n_trials']} trials, {row['n_runs']} runs) from {store.display_url}"
        if not yes:
            if not sys.stdin.isatty():
                fail(f"not deleting {what} unconfirmed: the input is not a terminal to ask on; add --yes")
            # Asked on stderr, unlike typer.confirm, which writes part of its prompt to stdout
            err.print(
                f"Delete {what}? This cannot be undone. [y/N] ", end="", markup=False, highlight=False, soft_wrap=True
            )
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                err.print("nothing deleted", markup=False, highlight=False)
                raise typer.Exit(1)
        deleted = store.delete_sweep(sweep)
    study = " and its Optuna study" if deleted["optuna_studies"] else ""
    out.print(
        f"deleted sweep {sweep!r}: {deleted['trials']} trials, {deleted['runs']} runs, "
        f"{deleted['curves']} curve points{study}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@command
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
) -> None:
    """Which noise settings reliably generalize better than no noise, with intervals and tests."""
    from sweeper.report.command import report_command

    with _open(db, create=False) as store:
        report_command(store, sweep, format.value, out_path, seed, out, at=at, top=top, verdicts=verdict)


@command
def bench(
    device: Device = typer.Option(Device.cpu, help="Where to train."),
    members: int | None = typer.Option(None, help="Population size (default: the pack size rule)."),
    epochs: int | None = typer.Option(None, help="Epochs per run (W1: 4000; --driver: 20)."),
    reference_runs: int = typer.Option(2, help="Runs of the reference loop to time."),
    noise: str | None = typer.Option(
        None,
        help="W1 with other noise: PLACEMENT:KIND:STD, e.g. "
        "weights:gaussian:0.1 (default: pre_activation:gaussian:0.1).",
    ),
    stacked: bool = typer.Option(
        True, help="Also time the stacked torch program (the engine for what the fused one does not take, and on GPUs)."
    ),
    own_model: bool = typer.Option(
        True,
        help="Also time W1's network written as a user's nn.Sequential "
        "factory: its population against its reference loop.",
    ),
    format: BenchFormat = typer.Option(BenchFormat.table, "--format", "-f", help="table to read, or json for scripts."),
    driver: bool = typer.Option(
        False,
        "--driver",
        help="Time the driver instead: tiny grids swept into --db, training vs driver vs store per configuration.",
    ),
    grids: list[str] | None = typer.Option(
        None, "--grid", help="--driver: CONFIGSxREPEATS, repeatable (default: 391x10 and 3901x2)."
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        help="--driver: the database to sweep into (default: a "
        "temporary SQLite file); sweeps bench-driver-* are "
        "replaced there.",
    ),
) -> None:
    """Workload W1: runs/s of the reference loop and of the population trainer, side by side; with --driver,
    where a sweep's time goes (training, the driver, the store) when training is cheap."""
    from sweeper.driver.executors import resolve_device
    from sweeper.engine.bench import bench_w1

    if driver:
        _bench_driver(grids or ["391x10", "3901x2"], db, epochs or 20, format)
        return
    epochs = epochs or 4000

    device = resolve_device(device.value)
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
    result = bench_w1(
        device,
        members=members,
        epochs=epochs,
        reference_runs=reference_runs,
        stacked=stacked,
        noise=spec,
        own_model=own_model,
        log=lambda m: err.print(m, markup=False, highlight=False),
    )
    if format == BenchFormat.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(listing.to_table([{"figure": k, "value": v} for k, v in result.items()], "W1 benchmark"))


def _bench_driver(grids: list[str], db: str | None, epochs: int, format: BenchFormat) -> None:
    import tempfile

    from sweeper.driver.bench import bench_driver

    sizes = []
    for grid in grids:
        configs, _, repeats = grid.partition("x")
        if not (configs.isdigit() and repeats.isdigit() and int(configs) >= 2 and int(repeats) >= 1):
            fail(
                f"--grid: {grid!r} is not CONFIGSxREPEATS (e.g. 391x10: 391 configurations, the baseline among "
                "them, of 10 repeats each; at least 2 configurations and 1 repeat)"
            )
        sizes.append((int(configs), int(repeats)))
    with tempfile.TemporaryDirectory() as folder:
        url = db or f"sqlite:///{folder}/bench.db"
        rows = []
        for configs, repeats in sizes:
            err.print(f"driver bench: {configs} configurations x {repeats} repeats, {epochs} epochs ...", markup=False)
            rows.append(bench_driver(url, configs=configs, repeats=repeats, epochs=epochs))
    if format == BenchFormat.json:
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        out.print(listing.to_table(rows, "driver benchmark (ms per configuration)"))


if __name__ == "__main__":
    app()
