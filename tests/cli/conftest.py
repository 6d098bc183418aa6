"""The command line as users meet it: a CLI runner, a tiny stored sweep, and databases on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

#: A sweep that trains in well under a second: the baseline and two noisy configurations, 2 repeats.
TINY_YAML = """\
name: tiny
seed: 3
repeats: 2
metric: test_accuracy
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
        return {"tables": names,
                **{t: table_rows(url, t) for t in sorted(names) if t.startswith("sweeper_")}}

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
