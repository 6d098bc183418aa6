"""A member whose training blows up is marked diverged; the rest of its pack goes on untouched."""

import math

import numpy as np
import pytest
from helpers import member

from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

TASKS = {
    "mlp": TaskSpec(dataset="circles", hidden=(16,), epochs=20, log_every=5),
    "regression": TaskSpec(dataset="friedman1", hidden=(16,), epochs=20, log_every=5),
    "cnn": TaskSpec(dataset="digits", model="cnn", channels=(4, 8), hidden=(16,), epochs=6, log_every=2),
    "gru": TaskSpec(dataset="digits", model="rnn", cell="gru", hidden=(16,), epochs=6, log_every=2),
}
# Weights of size 1e30 overflow any unbounded network; the gru's bounded state needs its output blown up.
BLOW_UP = {
    "mlp": make_config([NoiseSpec("weights", "gaussian", 1e30)]),
    "regression": make_config([NoiseSpec("weights", "gaussian", 1e30)]),
    "cnn": make_config([NoiseSpec("weights", "gaussian", 1e30)]),
    "gru": make_config([NoiseSpec("post_activation", "gaussian", 1e38)]),
}
BAD = 2


def pack(bad_config):
    return [
        member(),
        member(make_config([NoiseSpec("pre_activation", "gaussian", 0.1)]), 1),
        member(bad_config, 2),
        member(make_config([NoiseSpec("input", "gaussian", 0.1)]), 0),
    ]


@pytest.mark.parametrize("task_name", list(TASKS))
def test_diverging_member_is_marked_and_the_others_are_unaffected(task_name):
    task = TASKS[task_name]
    calm = train_population(task, pack(()))
    wild = train_population(task, pack(BLOW_UP[task_name]))

    bad = wild[BAD]
    assert bad.diverged
    assert bad.diverged_epoch == 1  # the very first step's loss is not finite
    assert bad.final.keys() == calm[BAD].final.keys()
    assert all(math.isnan(v) for v in bad.final.values())
    assert all(np.isnan(c).all() for c in bad.curves.values())
    assert bad.best_epoch is None

    for k in range(len(wild)):
        if k == BAD:
            continue
        assert not wild[k].diverged and wild[k].diverged_epoch is None
        assert all(math.isfinite(v) for v in wild[k].final.values())
        for name, curve in calm[k].curves.items():
            assert (wild[k].curves[name] == curve).all(), (k, name)
    assert not calm[BAD].diverged and all(math.isfinite(v) for v in calm[BAD].final.values())


SGD = TaskSpec(dataset="circles", hidden=(16,), epochs=6, log_every=1, optimizer=OptimizerSpec(name="sgd", lr=0.05))
# With plain SGD, gradient noise of 1e22 makes the weights ~1e20 after the first step: the float32 outputs
# logged after epoch 1 already overflow (the loss of the second epoch's step too), so it diverged in epoch 1.
# (At 1e20 the outputs, ~1e36, still fit float32, and the metrics, summed in float64, stay finite.)
LATE = make_config([NoiseSpec("gradients", "gaussian", 1e22)])


def test_member_whose_update_overflows_is_marked_at_the_epoch_of_that_update():
    results = train_population(SGD, [member(), member(LATE)])
    bad = results[1]
    assert bad.diverged and bad.diverged_epoch == 1
    epochs = bad.curve_epochs
    for name, curve in bad.curves.items():
        assert np.isnan(curve[epochs >= 1]).all(), name
    assert not results[0].diverged and np.isfinite(results[0].curves["train_loss"]).all()


def test_reference_loop_marks_the_same_divergence_as_the_population():
    pop = train_population(SGD, [member(LATE)])[0]
    ref = train_reference(SGD, member(LATE))
    assert (ref.diverged, ref.diverged_epoch) == (pop.diverged, pop.diverged_epoch) == (True, 1)


def test_no_logged_metric_is_infinite_before_the_diverged_epoch():
    bad = train_population(SGD, [member(LATE)])[0]
    assert bad.diverged
    before = bad.curve_epochs < bad.diverged_epoch
    for name, curve in bad.curves.items():
        assert np.isfinite(curve[before]).all(), (name, curve)
