"""`-h` shows a flag as a flag: no `<bool>` as if it took a value; the flags still parse."""

from __future__ import annotations

import click
import pytest
import typer

from sweeper.cli import app


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path under ``sweeper``, the group itself and each group's commands."""
    out = [path]
    for name, sub in getattr(command, "commands", {}).items():
        out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_is_walked():
    assert {("run",), ("report",), ("db", "upgrade"), ("bench",), ()} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "sweeper")
def test_help_shows_no_value_beside_a_flag(sweeper_cli, path):
    result = sweeper_cli(*path, "-h")
    assert result.exit_code == 0, result.stderr
    assert "--help" in result.stdout and "Usage:" in result.stdout
    assert "<bool>" not in result.stdout


def test_bench_shows_both_sides_of_a_switch_and_its_type_only_where_it_takes_a_value(sweeper_cli):
    help_text = sweeper_cli("bench", "-h").stdout
    assert "--stacked" in help_text and "--no-stacked" in help_text
    assert "<int range>" in help_text and "<auto|cpu|cuda>" in help_text  # options that take values keep them


def test_flags_still_parse(sweeper_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    # --debug and -y are flags: what follows each is the next argument, not its value. With --debug the
    # store's refusal comes as the exception itself; without, as one line.
    debugged = sweeper_cli("--debug", "delete", "no-such-sweep", "-y", "--db", url)
    assert type(debugged.exception).__name__ == "StoreError" and "no database at" in str(debugged.exception)
    plain = sweeper_cli("delete", "no-such-sweep", "--yes", "--db", url)
    assert plain.exit_code == 2 and plain.stderr.startswith("error: no database at")
    wrong = sweeper_cli("delete", "no-such-sweep", "--yes=maybe", "--db", url)
    assert wrong.exit_code == 2 and wrong.stderr.startswith("error: ") and "--yes" in wrong.stderr
