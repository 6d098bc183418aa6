"""The conventions of a command line: help on -h and --help, --version, completion, choices, one-line usage errors."""

from __future__ import annotations

from importlib import metadata

import pytest
import typer
from typer.testing import CliRunner

from sweeper.cli import BenchFormat, Device, Executor, ReportFormat, app
from sweeper.driver.executors import DEVICES
from sweeper.listing import Format
from sweeper.report.command import FORMATS as REPORT_FORMATS


def every_command(command=None, path=()):
    """(path, command) for the application and every command and group under it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


COMMANDS = [path for path, _ in every_command()]


def test_every_command_is_walked():
    assert {("run",), ("sweeps",), ("runs",), ("report",), ("delete",), ("bench",)} <= set(COMMANDS)


def test_every_command_argument_and_option_has_help():
    missing = [
        (" ".join(path) or "sweeper", param.name)
        for path, command in every_command()
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    undocumented = [" ".join(path) for path, command in every_command() if path and not (command.help or "").strip()]

    assert missing == [] and undocumented == []


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "sweeper" for p in COMMANDS])
def test_help_is_on_h_and_on_help_for_every_command(sweeper_cli, path, flag):
    result = sweeper_cli(*path, flag)

    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout and result.stderr == ""
    assert "-h" in result.stdout and "--help" in result.stdout


def test_sweeper_alone_prints_the_help_with_status_0(sweeper_cli):
    result = sweeper_cli()

    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout and "delete" in result.stdout and "report" in result.stdout
    assert result.stderr == ""


def test_version_names_sweeper_torch_and_optuna(sweeper_cli):
    result = sweeper_cli("--version")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"sweeper {metadata.version('sweeper')} (torch {metadata.version('torch')}, "
        f"optuna {metadata.version('optuna')}, Python {__import__('platform').python_version()})"
    ]


@pytest.mark.parametrize(
    "words, expected",
    [
        ("sweeper sweeps --format ", ["table", "csv", "json"]),
        ("sweeper report tiny --format ", ["table", "markdown", "html", "json", "csv"]),
        ("sweeper run x.yaml --device ", ["auto", "cpu", "cuda"]),
        ("sweeper run x.yaml --executor ", ["local", "ray"]),
        ("sweeper bench --format ", ["table", "json"]),
        ("sweeper de", ["delete"]),
        ("sweeper re", ["rerun", "report"]),
    ],
)
def test_bash_completion_offers_commands_and_choices(words, expected):
    env = {"_SWEEPER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}

    result = CliRunner().invoke(app, [], prog_name="sweeper", env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.split() == expected


def test_install_completion_writes_a_bash_script_that_bashrc_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")  # the shell is named, not detected

    result = CliRunner().invoke(app, ["--install-completion", "bash"], prog_name="sweeper")

    assert result.exit_code == 0, result.output
    script = tmp_path / ".bash_completions" / "sweeper.sh"
    assert "_SWEEPER_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text().splitlines()


def test_choices_are_the_values_the_library_takes():
    assert [f.value for f in ReportFormat] == list(REPORT_FORMATS)
    assert [f.value for f in Format] == ["table", "csv", "json"]
    assert [f.value for f in BenchFormat] == ["table", "json"]
    assert [d.value for d in Device] == list(DEVICES) == ["auto", "cpu", "cuda"]
    assert [e.value for e in Executor] == ["local", "ray"]


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["sweeps", "--format", "xml"],
            "error: --format: 'xml' is not one of 'table', 'csv', 'json' (see root sweeps -h)",
        ),
        (["sweeps", "-f", "xml"], "error: --format: 'xml' is not one of 'table', 'csv', 'json' (see root sweeps -h)"),
        (["sweeps", "--bogus"], "error: No such option: --bogus (see root sweeps -h)"),
        (["trials"], "error: Missing argument 'SWEEP' (see root trials -h)"),
        (["trails", "tiny"], "error: No such command 'trails'. Did you mean 'trials'? (see root -h)"),
        (
            ["bench", "--epochs", "many"],
            "error: --epochs: Input should be a valid integer, unable to parse string as an "
            "integer (see root bench -h)",
        ),
        (
            ["rerun", "tiny", "first"],
            "error: TRIAL: Input should be a valid integer, unable to parse string as an integer (see root rerun -h)",
        ),
        (["report", "tiny", "--out"], "error: Option '--out' requires an argument"),
        (["--debug"], "error: Missing command (see root -h)"),
    ],
    ids=[
        "choice",
        "short_flag",
        "unknown_option",
        "missing_argument",
        "unknown_command",
        "option_not_an_integer",
        "argument_not_an_integer",
        "option_without_value",
        "no_command",
    ],
)
def test_a_usage_error_is_one_line_and_status_2(sweeper_cli, args, line):
    result = sweeper_cli(*args)

    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n")


def test_python_dash_m_sweeper_is_the_sweeper_command():
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "sweeper", "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: sweeper" in shown.stdout and "report" in shown.stdout
