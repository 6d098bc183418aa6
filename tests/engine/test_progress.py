"""A pack tells how far it has trained while it trains: member-epochs at every logging interval.

Both engines (the fused C one, which trains a logging interval per C call, and the stacked torch
program) report members x epochs done after each interval, ending at members x epochs, and the
reports change no number.
"""

import numpy as np
import pytest
import torch

from sweeper import seeding
from sweeper.engine import fused
from sweeper.engine.population import train_population
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member
from sweeper.tasks.spec import TaskSpec

TASK = TaskSpec(dataset="circles", n_train=30, hidden=(8,), epochs=40, log_every=10)
# Minibatches, and an annealed schedule (the fused engine then splits an interval into several C calls).
MINIBATCH = TaskSpec(dataset="circles", n_train=30, hidden=(8,), epochs=12, log_every=5, batch_size=8)
CONFIGS = [
    (),
    make_config([NoiseSpec("pre_activation", "gaussian", 0.1)]),
    make_config([NoiseSpec("input", "gaussian", 0.05, "annealed")]),
]

ENGINES = [
    pytest.param(
        "auto",
        marks=pytest.mark.skipif(
            not fused.task_fits(TASK, torch.device("cpu")), reason="the C kernels could not be built here"
        ),
    ),
    "stacked",
]


def _members() -> list[Member]:
    return [
        Member(c, r, seeding.data_seed(0, r), seeding.init_seed(0, r), seeding.noise_seed(0, r, c))
        for c in CONFIGS
        for r in range(2)
    ]


@pytest.mark.parametrize("task", [TASK, MINIBATCH], ids=["full_batch", "minibatch"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_pack_reports_member_epochs_at_every_log_interval_and_the_numbers_stay_the_same(engine, task):
    members = _members()
    told = []
    results = train_population(task, members, engine=engine, on_epochs=told.append)
    silent = train_population(task, members, engine=engine)

    # Every logging interval, then the last epoch (12 is not a multiple of 5).
    epochs = sorted({*range(task.log_every, task.epochs + 1, task.log_every), task.epochs})
    assert told == [len(members) * e for e in epochs]
    assert told[0] < told[-1] == len(members) * task.epochs
    assert [r.final["test_accuracy"] for r in results] == [r.final["test_accuracy"] for r in silent]
    for r, s in zip(results, silent):
        assert r.engine == s.engine == ("fused" if engine == "auto" else "stacked")
        for name, curve in s.curves.items():
            np.testing.assert_array_equal(r.curves[name], curve)
