"""A finished run whose training metric is no better than chance, nor than its untrained network, failed to
learn; every engine judges a member alike."""

import numpy as np
import pytest
from helpers import member as seeded_member

from sweeper.engine.chance import failed_to_learn
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

BALANCED = np.array([0] * 15 + [1] * 15)  # majority-class rate 0.5
SKEWED = np.array([0] * 24 + [1] * 6)  # majority-class rate 0.8
UNTRAINED_AT_HALF = {"train_accuracy": 0.5}


def accuracy(right: int, n: int = 30) -> dict:
    return {"train_accuracy": float(np.float32(right / n))}  # as the engines log it


@pytest.mark.parametrize("right,failed", [(19, True), (20, False), (30, False), (3, True)])
def test_a_classifier_learned_when_it_beats_the_majority_rate_beyond_luck(right, failed):
    # P(at least 20 of 30 right | 0.5) = 0.049 < 0.05; P(at least 19 of 30) = 0.10
    assert failed_to_learn(accuracy(right), UNTRAINED_AT_HALF, BALANCED, 2) is failed


def test_always_answering_the_most_common_class_is_no_learning():
    assert failed_to_learn(accuracy(24), UNTRAINED_AT_HALF, SKEWED, 2) is True
    assert failed_to_learn(accuracy(29), UNTRAINED_AT_HALF, SKEWED, 2) is False  # P(>= 29 | 0.8) = 0.011


def test_a_classifier_no_better_than_before_training_failed_to_learn():
    lucky_start = {"train_accuracy": float(np.float32(21 / 30))}  # its random weights got 0.7 already
    assert failed_to_learn(accuracy(22), lucky_start, np.array([0, 1, 2] * 10), 3) is True
    assert failed_to_learn(accuracy(22), UNTRAINED_AT_HALF, np.array([0, 1, 2] * 10), 3) is False


@pytest.mark.parametrize(
    "r2,untrained,failed",
    [(-0.4, -3.0, True), (0.0, -3.0, True), (0.5, -3.0, False), (0.5, 0.6, True), (0.7, 0.6, False)],
)
def test_a_regression_learned_when_it_beats_the_mean_and_its_untrained_network(r2, untrained, failed):
    y = np.linspace(-1, 1, 30)
    assert failed_to_learn({"train_r2": r2}, {"train_r2": untrained}, y, 0) is failed


def test_a_run_without_a_finite_training_metric_is_not_judged():
    assert failed_to_learn({"train_accuracy": float("nan")}, UNTRAINED_AT_HALF, BALANCED, 2) is None
    assert failed_to_learn({"train_r2": float("inf")}, {"train_r2": 0.0}, np.zeros(30), 0) is None


TASK = TaskSpec(dataset="moons", hidden=(16,), optimizer=OptimizerSpec(name="adam", lr=0.01), epochs=100, log_every=20)
DROWNED = make_config([NoiseSpec("gradients", "gaussian", 1e6)])  # the loss stays finite, the network learns nothing


def member(config, repeat):
    return seeded_member(config, repeat, sweep_seed=5)


def test_every_engine_judges_a_member_alike():
    members = [member((), 0), member(DROWNED, 0), member((), 1), member(DROWNED, 1)]

    fused = train_population(TASK, members)
    stacked = train_population(TASK, members, engine="stacked")
    reference = [train_reference(TASK, m) for m in members]

    assert {r.engine for r in fused} == {"fused"} and {r.engine for r in stacked} == {"stacked"}
    for results in (fused, stacked, reference):
        assert [r.failed_to_learn for r in results] == [False, True, False, True]
        assert not any(r.diverged for r in results)
