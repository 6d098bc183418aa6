"""Processes that open a new database at the same moment all succeed, and its tables are created once."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from sweeper.store import migrations, open_store
from sweeper.store.migrations import VERSION_TABLE

PROCESSES = 6
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0.db"


def _open_at_once(url: str, barrier, results) -> None:
    """One process: wait for the others, then open the store for writing and Optuna's storage."""
    try:
        barrier.wait(timeout=120)
        with open_store(url) as store:
            store.optuna_storage().engine.dispose()
        results.put("ok")
    except BaseException as exc:  # reported to the test, whatever it is
        results.put(f"{type(exc).__name__}: {exc}")


def open_together(url: str, processes: int = PROCESSES) -> list[str]:
    """What each of ``processes`` processes that open ``url`` at once reports ("ok" or its error)."""
    context = multiprocessing.get_context("fork")  # the test's modules already imported: all start fast
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    return sorted(results.get(timeout=10) for _ in workers)


def table_rows(url: str, table: str, columns: str = "*") -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(tuple(r) for r in connection.exec_driver_sql(f"SELECT {columns} FROM {table}"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request, tmp_path):
    """``new_database()``: the URL of another database nothing has written to yet."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database")
    paths = iter(tmp_path / f"new-{i}.db" for i in range(100))
    return lambda: f"sqlite:///{next(paths)}"


def test_processes_opening_a_new_database_at_once_all_succeed(new_database):
    for _ in range(ROUNDS):
        url = new_database()

        reports = open_together(url)

        assert reports == ["ok"] * PROCESSES
        assert table_rows(url, VERSION_TABLE) == [(migrations.head(),)]
        assert len(table_rows(url, "alembic_version")) == 1  # Optuna's
        assert len(table_rows(url, "version_info")) == 1  # Optuna's too
        assert table_rows(url, "sweeper_sweeps") == []


def test_processes_upgrading_an_old_database_at_once_all_succeed(tmp_path):
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, path)
    url = f"sqlite:///{path}"

    assert open_together(url) == ["ok"] * PROCESSES
    assert table_rows(url, VERSION_TABLE) == [(migrations.head(),)]
    assert len(table_rows(url, "sweeper_runs")) == 20


SPACE = """\
name: {name}
seed: 1
repeats: 2
metric: accuracy
task: {{dataset: circles, n_train: 30, model: mlp, hidden: [4], epochs: 5}}
search: {{sampler: grid, configs: [{{placement: input, std: 0.1}}]}}
"""


@pytest.mark.slow
def test_different_sweeps_started_at_once_on_a_new_database_all_complete(new_database, tmp_path, launch):
    url = new_database()
    names = ("first", "second", "third")
    spaces = []
    for name in names:
        spaces.append(tmp_path / f"{name}.yaml")
        spaces[-1].write_text(SPACE.format(name=name))

    processes = [launch("run", space, "--db", url) for space in spaces]
    outcomes = [(p.wait(timeout=600), p.stderr) for p in processes]

    assert [code for code, _ in outcomes] == [0] * len(names), outcomes
    assert table_rows(url, "sweeper_sweeps", "name, status") == sorted((n, "completed") for n in names)
    assert len(table_rows(url, "sweeper_runs")) == len(names) * 2 * 2
    assert len(table_rows(url, "studies")) == len(names)
