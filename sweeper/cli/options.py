"""The choices and options several commands share; each list of choices is the library's, checked here once."""

from __future__ import annotations

from enum import Enum

import typer

from sweeper import listing


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


class LogFormat(str, Enum):
    """How ``sweeper run`` shows its progress: ``auto`` is a live bar on a terminal and ``text`` lines
    elsewhere (a log file); ``json`` writes each line as one JSON object, for log collectors."""

    auto = "auto"
    text = "text"
    json = "json"


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
