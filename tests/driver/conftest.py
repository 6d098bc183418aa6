"""Sweeps driven end to end: the ``sweeper`` command in this process or as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from sweeper.cli import app

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # Two shared cores: one thread is much faster for these tiny models than two fighting threads, and
    # subprocesses run with OMP_NUM_THREADS=1 too, so every process computes the same way.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def sweeper_cli():
    """``sweeper_cli(*args)`` runs the ``sweeper`` command in this process; stdout and stderr come apart."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="module")
def pg_database():
    """``pg_database()``: the URL of a fresh PostgreSQL database; every one is dropped after the module."""
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server {PG_SERVER} is not reachable: {str(exc.orig).splitlines()[0]}")
    names = []

    def create() -> str:
        name = f"sweeper_t_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        names.append(name)
        return f"{PG_SERVER}/{name}"

    try:
        yield create
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
