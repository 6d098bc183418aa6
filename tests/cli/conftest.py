"""The command line as users meet it: a CLI runner, a tiny stored sweep, and databases on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

#: A sweep that trains in well under a second: the baseline and two noisy configurations, 2 repeats.
TINY_YAML = """\
name: tiny
seed: 3
repeats: 2
metric: accuracy
task:
  dataset: circles
  n_train: 30
  model: mlp
  hidden: [8]
  epochs: 20
search:
  sampler: grid
  configs:
    - {placement: input, std: 0.05}
    - {placement: pre_activation, std: 0.1}
"""
TINY_CONFIGS = 3
TINY_REPEATS = 2


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


@pytest.fixture(scope="session")
def tiny_sqlite(tmp_path_factory, tiny_space, sweeper_cli) -> Path:
    """A SQLite file holding the completed sweep ``tiny``; tests that might write copy it first."""
    path = tmp_path_factory.mktemp("db") / "tiny.db"
    result = sweeper_cli("run", tiny_space, "--db", sqlite_url(path))
    assert result.exit_code == 0, result.stderr
    return path


def table_rows(url: str, table: str) -> list[tuple]:
    """Every row of ``table``, in a stable order (what "unchanged" is checked against)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()
    finally:
        engine.dispose()
    return sorted((tuple(r) for r in rows), key=repr)


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def db_snapshot():
    """``db_snapshot(url)``: the tables and the rows of sweeper's tables, to compare before and after."""

    def snapshot(url: str) -> dict:
        names = table_names(url)
        return {"tables": names, **{t: table_rows(url, t) for t in sorted(names) if t.startswith("sweeper_")}}

    return snapshot


@pytest.fixture
def tiny_sqlite_copy(tiny_sqlite, tmp_path) -> Path:
    """A private copy of ``tiny_sqlite`` (through SQLite's backup: part of the data may still be in the WAL)."""
    path = tmp_path / "copy.db"
    source, target = sqlite3.connect(tiny_sqlite), sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return path


def _sweeper_command(args) -> list[str]:
    return [sys.executable, "-m", "sweeper.cli", *map(str, args)]


def answer_on_a_terminal(args, answer: str) -> subprocess.CompletedProcess:
    """Runs ``sweeper ARGS`` with a terminal as its input, on which ``answer`` is typed; stdout and stderr piped."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode() + b"\n")  # the terminal holds it until the command reads
        return subprocess.run(_sweeper_command(args), stdin=slave, capture_output=True, text=True, timeout=120)
    finally:
        os.close(slave)
        os.close(master)


def output_on_a_terminal(args, columns: int = 80) -> str:
    """What ``sweeper ARGS`` shows on a terminal ``columns`` wide (colours and carriage returns taken out)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm"}
    process = subprocess.Popen(
        _sweeper_command(args), stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL, env=env
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the command has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        process.wait(timeout=120)
    assert process.returncode == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")


@pytest.fixture(scope="session")
def terminal() -> SimpleNamespace:
    """``terminal.answer(args, text)`` and ``terminal.output(args)``: ``sweeper`` run as a subprocess on a terminal."""
    return SimpleNamespace(answer=answer_on_a_terminal, output=output_on_a_terminal)
