"""The application: its commands' registry, how errors reach the user, and where output goes.

Errors a user can fix (``SweeperError``) print one line on stderr and exit with status 2; ``--debug``
shows the traceback instead. The parser's usage errors (an unknown flag, a value not among the choices)
are one line and status 2 too.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from importlib import metadata

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from sweeper import listing
from sweeper.errors import SweeperError


class _Flags:
    """A flag takes no value, so ``-h`` shows none beside it (Typer's help writes ``<bool>`` there)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # the type column shows the metavar when there is one
        return params


class Command(_Flags, TyperCommand):
    """A command whose flags read as flags in its help."""


class Group(_Flags, TyperGroup):
    """A command group whose flags read as flags in its help; ``sweeper db`` is one."""


class _Group(Group):
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


def fail(message: str) -> None:
    raise SweeperError(message)


def say(line: str, **print_options) -> None:
    """One line on stderr, as written (no markup, no highlighting, never wrapped)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True, **print_options)


def show(line: str) -> None:
    """One line on stdout, as written."""
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def emit(rows: list[dict], fmt: listing.Format, title: str | None, columns: list[str] | None = None) -> None:
    """Rows on stdout: a table to read, CSV, or one JSON array of flat objects."""
    if fmt == listing.Format.json:
        sys.stdout.write(listing.to_json(rows) + "\n")
    elif fmt == listing.Format.csv:
        sys.stdout.write(listing.to_csv(rows))
    else:
        out.print(listing.to_table(rows, title, columns))


def open_store(db: str | None, create: bool = True, read_only: bool = False):
    from sweeper.store import open_store

    return open_store(db, create=create, read_only=read_only)


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
        say(f"error: {_usage_line(exc)}")
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


def one_line_errors(fn):
    """``fn`` with its SweeperErrors turned into one stderr line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            if _state["debug"]:
                raise
            say(f"error: {exc}")
            raise typer.Exit(2) from None

    return wrapper


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
        show(_versions())
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
