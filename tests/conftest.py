"""Fixtures every test directory shares: one torch thread, the CLI in-process, fresh PostgreSQL databases."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.store import create_reader

#: The local PostgreSQL server (trust auth); tests create their own databases on it.
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: the tests run many tiny ops, which a second thread only slows down on a
    machine whose few cores are shared (and every process then computes the same way)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """SIGINT as in an interactive shell, whatever started the suite: ``nohup make test``, ``make test &``
    and some CI runners start it with SIGINT ignored, where Ctrl-C (a signal, ``_thread.interrupt_main``)
    would do nothing. Here it raises KeyboardInterrupt; the processes the tests start get the default
    (a handler, unlike an ignored signal, does not survive exec), and Python's own Ctrl-C with it.
    Tests that need SIGINT ignored, or SIGTERM or SIGHUP as they rely on, set it themselves (``.ci/run``
    runs the signal tests with SIGINT ignored to prove that nothing else depends on it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def sweeper_cli():
    """``sweeper_cli(*args)`` runs the ``sweeper`` command in this process; stdout and stderr come apart."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="module")
def pg_database():
    """``pg_database()``: the URL of a fresh PostgreSQL database; every one is dropped after the module.

    The server gets (or keeps, reset) the role ``sweeper query`` runs SQL as. Skips (with the reason) where
    the server is not reachable.
    """
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server {PG_SERVER} is not reachable: {str(exc.orig).splitlines()[0]}")
    create_reader(f"{PG_SERVER}/postgres")  # the role `sweeper query` runs SQL as (idempotent)
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


@pytest.fixture(scope="module")
def pg_url(pg_database):
    """A PostgreSQL database created for this test module and dropped after it."""
    return pg_database()


@pytest.fixture(scope="session")
def sweeper_dist(tmp_path_factory) -> Path:
    """A folder with the sdist and the wheel (``pip wheel . --no-deps``) of this checkout: what users and
    the Docker images install. Built from a copy, as a build writes build/ and *.egg-info into its
    source tree (and a stale build/ there could leak into the wheel)."""
    root = tmp_path_factory.mktemp("dist")
    source, out = root / "source", root / "out"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "*.pyc",
            ".pytest_cache",
            "*.db",
            "*.db-*",
            "reports",
            "out",
        ),
    )
    for argv in (
        [sys.executable, "-m", "build", "--sdist", "--outdir", out, source],
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, source],
    ):
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stderr[-4000:]}"
    return out
