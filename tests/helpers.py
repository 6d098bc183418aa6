"""Helpers the test modules share, imported as ``from helpers import ...`` (pyproject's pytest ``pythonpath``
puts tests/ on the path: with ``--import-mode=importlib`` a test module cannot import a conftest)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

from sweeper import seeding
from sweeper.records import Member

#: The columns of a run that must come out the same however the sweep was interrupted.
RUN_NUMBERS = (
    "data_seed",
    "init_seed",
    "noise_seed",
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "best_epoch",
    "diverged",
    "failed_to_learn",
)


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
    e.g. ``hidden="[8]"``; 20 training points and one hidden layer of 4 unless given), ``search`` the lines of
    its ``search:`` block without their indent."""
    task = {"dataset": "circles", "n_train": 20, "hidden": "[4]", **task}
    fields = ", ".join(f"{key}: {value}" for key, value in task.items())
    block = "".join(f"  {line}\n" for line in search.strip("\n").splitlines())
    return (
        f"name: {name}\nseed: {seed}\nrepeats: {repeats}\nmetric: accuracy\npack_size: {pack_size}\n"
        f"task: {{{fields}}}\nsearch:\n{block}"
    )


#: A sweep that stores a quick pack (2 runs of circles) within seconds, then trains one for hours (moons,
#: 10,000,000 epochs, logged every 1,000): what the tests of long sweeps stop, watch or take over.
LONG_SWEEP = """\
name: long
seed: 5
repeats: 2
metric: accuracy
tasks:
  - {dataset: circles, n_train: 20, hidden: [8], epochs: 20, log_every: 10}
  - {dataset: moons, n_train: 20, hidden: [8], epochs: 10000000, log_every: 1000}
search:
  sampler: grid
  configs:
    - {placement: none}
"""


def tiny_space(name: str = "bad", *, seed: int = 1, stds: tuple[float, ...] = (0.1,)) -> str:
    """The YAML of the smallest real sweep: circles, 30 training points, one hidden layer of 8, 5 epochs, 2
    repeats, a grid of input Gaussian noise at ``stds`` (and the baseline the driver adds)."""
    configs = "".join(f"    - {{placement: input, std: {std}}}\n" for std in stds)
    return (
        f"name: {name}\nseed: {seed}\nrepeats: 2\ntask:\n  dataset: circles\n  n_train: 30\n  hidden: [8]\n"
        f"  epochs: 5\nsearch:\n  sampler: grid\n  configs:\n{configs}"
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


def interrupt_on_call(monkeypatch, owner, name: str, call: int) -> None:
    """Ctrl-C in place of the ``call``-th call (1 for the first) of method ``name`` of class ``owner``: a
    KeyboardInterrupt raised before the method runs; the calls before it run as they would."""
    method, calls = getattr(owner, name), []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return method(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


def penguins(n: int = 60) -> pd.DataFrame:
    """A small penguins-like table: 3 classes, text columns island and sex, a whole-number year, missing values
    in bill_length_mm (2 rows) and sex (5 rows), an id column and a constant one."""
    rng = np.random.RandomState(0)
    species = np.array(["Adelie", "Chinstrap", "Gentoo"])[np.arange(n) % 3]
    table = pd.DataFrame(
        {
            "rowid": np.arange(n),
            "species": species,
            "island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], n)),
            "bill_length_mm": rng.normal(45, 3, n).round(1),
            "sex": rng.choice(["female", "male"], n).astype(object),
            "year": rng.choice([2007, 2008, 2009], n),
            "colony": "south",
        }
    )
    table.loc[[3, 40], "bill_length_mm"] = np.nan
    table.loc[[1, 7, 11, 20, 33], "sex"] = None
    return table


def train_in_chunks(executor, pack, on_epochs, limit_s: float) -> None:
    """A long pack's training, as the engines do it: ``on_epochs(pack, chunk)`` every 10 ms until it raises
    (the driver stopping training) or ``limit_s`` passed; the seconds it ran go in ``executor.trained_s``."""
    start = time.monotonic()
    try:
        for chunk in itertools.count(1):
            if time.monotonic() - start > limit_s:
                break
            time.sleep(0.01)
            on_epochs(pack, chunk)
    finally:
        executor.trained_s = time.monotonic() - start
