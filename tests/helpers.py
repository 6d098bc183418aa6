"""Helpers the test modules share, imported as ``from helpers import ...`` (pyproject's pytest ``pythonpath``
puts tests/ on the path: with ``--import-mode=importlib`` a test module cannot import a conftest)."""

from __future__ import annotations

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
