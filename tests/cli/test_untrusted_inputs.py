"""What a user hands the command line is untrusted input: a database string of any shape never prints its
password, a search-space file that is not a regular file is refused unread, and a user's data file
reaches no message beyond a bounded column name. Each: one line, exit status 2, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import tiny_space

SECRET = "s3cr3tPW"

GOOD = tiny_space()


def one_line(result, *fragments) -> str:
    """Exit status 2 and one line on stderr holding every fragment; no traceback, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and result.stdout == ""
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


COMMANDS = [
    ("sweeps",),
    ("runs", "tiny"),
    ("trials", "tiny"),
    ("report", "tiny"),
    ("query", "select 1"),
    ("rerun", "tiny", "1"),
    ("delete", "tiny", "--yes"),
]
URLS = [
    f"u:{SECRET}@h/x",  # no scheme
    f"postgresql://u:{SECRET}@[::1:5432/x",  # an IPv6 address not closed: ValueError in SQLAlchemy
    f"postgresql://u:{SECRET}@h:port/x",  # a port that is not a number
    f"postgresql://u:p@{SECRET}@h/x",  # an "@" in the password
    f"postgresql://u@127.0.0.1:1/x?password={SECRET}",  # in the query string
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_database_string_never_prints_its_password(sweeper_cli, tmp_path, monkeypatch, command, url):
    monkeypatch.chdir(tmp_path)
    for via_env in (False, True):
        if via_env:
            monkeypatch.setenv("SWEEPER_DB", url)
            result = sweeper_cli(*command)
        else:
            monkeypatch.delenv("SWEEPER_DB", raising=False)
            result = sweeper_cli(*command, "--db", url)
        line = one_line(result)
        assert SECRET not in line and "***" in line, line
    assert list(tmp_path.iterdir()) == []


def test_run_never_prints_the_password_of_a_database_string(sweeper_cli, tmp_path):
    space = tmp_path / "good.yaml"
    space.write_text(GOOD)
    for url in URLS:
        line = one_line(sweeper_cli("run", space, "--db", url))
        assert SECRET not in line and "***" in line, line


def test_a_url_with_a_broken_ipv6_address_is_one_line_naming_it(sweeper_cli, tmp_path):
    one_line(
        sweeper_cli("sweeps", "--db", "postgresql://u:p@[::1:5432/x"),
        "'postgresql://u:***@[::1:5432/x' is not a database URL (its host or port cannot be read); expected e.g. ",
    )


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "proc_environ", "directory"])
def test_a_search_space_that_is_not_a_regular_file_is_refused_unread(sweeper_cli, tmp_path, command, kind):
    path = tmp_path / "space.yaml"
    said = {
        "dev_zero": "is a system file (/dev/zero), not a search-space file; allowed: a regular file",
        "fifo": "is a FIFO (named pipe), not a search-space file; allowed: a regular file",
        "proc_environ": f"is a system file ({os.path.realpath('/proc/self/environ')}"[:-8],
        "directory": "is a directory, not a search-space file",
    }[kind]
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "proc_environ":
        path.symlink_to("/proc/self/environ")
        said = "is a system file (/proc/"
    else:
        path.mkdir()
    db = tmp_path / "s.db"
    extra = ("--db", f"sqlite:///{db}") if command == "run" else ()
    line = one_line(sweeper_cli(command, path, *extra), f"{path}: {said}")
    assert "PATH=" not in line and not db.exists()


def test_run_of_dev_zero_is_refused_unread(sweeper_cli, tmp_path):
    one_line(sweeper_cli("validate", "/dev/zero"), "/dev/zero: is a system file (/dev/zero), not a search-space file")


def test_a_data_file_linked_to_the_environment_never_reaches_a_message(sweeper_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPER_TEST_SECRET", SECRET)
    (tmp_path / "data.csv").symlink_to("/proc/self/environ")
    space = tmp_path / "space.yaml"
    space.write_text(GOOD.replace("dataset: circles", "dataset: {path: data.csv, target: y}"))
    line = one_line(sweeper_cli("validate", space), "data.csv: is a system file (/proc/")
    assert SECRET not in line


def test_a_data_files_first_line_is_not_echoed_beyond_a_bounded_column_name(sweeper_cli, tmp_path):
    (tmp_path / "notes.csv").write_text(f"password={SECRET}{'x' * 500},other\n1,2\n")
    space = tmp_path / "space.yaml"
    space.write_text(GOOD.replace("dataset: circles", "dataset: {path: notes.csv, target: y}"))
    line = one_line(sweeper_cli("validate", space), "target: notes.csv has no column 'y'; columns: password=")
    assert "x" * 40 not in line and len(line) < 400


def test_an_installed_module_is_still_itself_after_a_refused_factory(sweeper_cli, tmp_path):
    import psycopg

    (tmp_path / "psycopg.py").write_text("def make(*args):\n    raise SystemExit(3)\n")
    space = tmp_path / "space.yaml"
    space.write_text(GOOD.replace("  hidden: [8]\n", '  model: {factory: "psycopg:make"}\n'))
    one_line(sweeper_cli("validate", space), "'psycopg' in ", "has the name of an installed module")
    import sys

    assert sys.modules["psycopg"] is psycopg and Path(psycopg.__file__).parent != tmp_path


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "/* nothing */ ;"])
def test_a_query_without_a_statement_is_refused(sweeper_cli, tiny_sqlite, sql):
    one_line(
        sweeper_cli("query", sql, "--db", f"sqlite:///{tiny_sqlite}"),
        "holds no statement; allowed: one read-only statement, e.g. 'SELECT 1'",
    )


def test_a_query_may_open_with_a_comment(sweeper_cli, tiny_sqlite):
    sql = "-- the answer\nSELECT 42 AS answer"
    result = sweeper_cli("query", sql, "--db", f"sqlite:///{tiny_sqlite}", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"answer": 42}]


@pytest.mark.parametrize("command", [("sweeps",), ("runs", "tiny"), ("report", "tiny"), ("query", "select 1")])
def test_a_database_in_memory_is_refused_for_reading_in_one_line(sweeper_cli, command):
    one_line(
        sweeper_cli(*command, "--db", "sqlite:///:memory:"),
        "is a database in memory, which holds no sweeps; allowed: a database file",
    )


@pytest.mark.parametrize("flag", ["--members", "--epochs", "--reference-runs"])
@pytest.mark.parametrize("value", ["-1", "0"])
def test_bench_refuses_a_count_below_one(sweeper_cli, flag, value):
    one_line(sweeper_cli("bench", flag, value), f"error: {flag}: Input should be greater than or equal to 1")


def test_features_listing_a_column_twice_is_refused(sweeper_cli, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(40)))
    space = tmp_path / "space.yaml"
    space.write_text(GOOD.replace("dataset: circles", "dataset: {path: d.csv, target: y, features: [a, a]}"))
    one_line(sweeper_cli("validate", space), "features: 'a' is listed twice; allowed: each column once")


@pytest.mark.parametrize("where", ["folder", "empty"])
@pytest.mark.parametrize("fmt", ["json", "markdown", "html"])
def test_report_out_naming_a_folder_is_refused_in_one_line(sweeper_cli, tiny_sqlite, tmp_path, monkeypatch, where, fmt):
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path) if where == "folder" else ""
    shown = repr(out if out else ".")
    one_line(
        sweeper_cli("report", "tiny", "--db", f"sqlite:///{tiny_sqlite}", "-f", fmt, "--out", out),
        f"--out {shown}: is a folder; allowed: a file name, e.g. reports/report.",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_report_on_a_full_disk_is_one_line_and_leaves_nothing_half_written(
    sweeper_cli, tiny_sqlite, tmp_path, monkeypatch, fmt
):
    import errno

    calls = []

    def full(fd):
        calls.append(fd)
        if len(calls) == (2 if fmt == "markdown" else 1):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "reports" / f"tiny.{fmt}"
    line = one_line(
        sweeper_cli("report", "tiny", "--db", f"sqlite:///{tiny_sqlite}", "-f", fmt, "--out", out),
        f"--out {out}: cannot be written: No space left on device; nothing was written",
    )
    assert "Traceback" not in line
    assert list((tmp_path / "reports").iterdir()) == []
    monkeypatch.undo()
    written = sweeper_cli("report", "tiny", "--db", f"sqlite:///{tiny_sqlite}", "-f", fmt, "--out", out)
    assert written.exit_code == 0, written.stderr
    assert out.exists() and oct(out.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_banner_and_listings_mask_the_password_of_a_postgresql_url(sweeper_cli, pg_database, tmp_path):
    url = pg_database().replace("postgres@", f"postgres:{SECRET}@")  # the server trusts: any password works
    space = tmp_path / "good.yaml"
    space.write_text(GOOD)
    ran = sweeper_cli("run", space, "--db", url)
    assert ran.exit_code == 0, ran.stderr
    assert f"-> {url.replace(SECRET, '***')} on cpu" in ran.stderr
    for result in (ran, sweeper_cli("sweeps", "--db", url), sweeper_cli("db", "upgrade", "--db", url)):
        assert SECRET not in result.stdout + result.stderr


def test_a_header_only_test_file_is_refused_by_validate_and_run_before_anything_is_written(sweeper_cli, tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(40)))
    (tmp_path / "holdout.csv").write_text("a,b,y\n")
    space = tmp_path / "space.yaml"
    space.write_text(GOOD.replace("dataset: circles", "dataset: {path: d.csv, target: y, test_path: holdout.csv}"))
    db = tmp_path / "s.db"
    for command in (("validate",), ("run", "--db", f"sqlite:///{db}")):
        one_line(
            sweeper_cli(command[0], space, *command[1:]),
            "holdout.csv: holds no rows (a header only); allowed: at least one row",
        )
    assert not db.exists()
