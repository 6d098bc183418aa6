"""Helpers the test modules share, imported as ``from helpers import ...`` (pyproject's pytest ``pythonpath``
puts tests/ on the path: with ``--import-mode=importlib`` a test module cannot import a conftest)."""

from __future__ import annotations

import sqlalchemy as sa

from sweeper import seeding
from sweeper.records import Member


def member(config=(), repeat: int = 0, sweep_seed: int = 0) -> Member:
    """The member that a sweep of seed ``sweep_seed`` trains for ``config`` at ``repeat``: the seeds of its
    data, initialisation and noise streams as the planner derives them (no fixed dataset seed)."""
    return Member(
        config,
        repeat,
        seeding.data_seed(sweep_seed, repeat),
        seeding.init_seed(sweep_seed, repeat),
        seeding.noise_seed(sweep_seed, repeat, config),
    )


def circles_space(name: str, *, seed: int, repeats: int, search: str, pack_size: int = 2, **task) -> str:
    """The search-space YAML of a small sweep on the circles data set, the driver tests' usual subject:
    accuracy as the metric, ``task`` the task's fields after ``dataset: circles`` (values as YAML flow text,
    e.g. ``hidden="[4]"``), ``search`` the lines of its ``search:`` block without their indent."""
    fields = ", ".join(f"{key}: {value}" for key, value in {"dataset": "circles", **task}.items())
    block = "".join(f"  {line}\n" for line in search.strip("\n").splitlines())
    return (
        f"name: {name}\nseed: {seed}\nrepeats: {repeats}\nmetric: accuracy\npack_size: {pack_size}\n"
        f"task: {{{fields}}}\nsearch:\n{block}"
    )


def execute(url: str, sql: str) -> list[tuple]:
    """Runs ``sql`` on the database at ``url`` in a transaction of its own; the rows it returns, if any."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            result = connection.exec_driver_sql(sql)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()
