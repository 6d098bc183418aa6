"""Every engine evaluates the validation and test parts without noise, picks the best epoch on validation,
and keeps the test metrics of that epoch; the test part's calibration error is measured as Guo et al. define it."""

import numpy as np
import pytest
import torch
from helpers import member

from sweeper import seeding
from sweeper.engine import losses
from sweeper.engine.population import train_population
from sweeper.engine.reference import train_reference
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.tasks.data import load_split
from sweeper.tasks.spec import TaskSpec

TASK = TaskSpec(dataset="moons", n_train=30, hidden=(16,), epochs=40, log_every=5)


def ece_by_definition(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Guo et al. 2017, eq. (3): bins ((m-1)/M, m/M], sum over bins of |B_m|/n |acc(B_m) - conf(B_m)|."""
    total = 0.0
    for m in range(1, bins + 1):
        inside = (confidence > (m - 1) / bins) & (confidence <= m / bins)
        if inside.any():
            total += inside.sum() / len(confidence) * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_ece_is_the_share_weighted_gap_between_accuracy_and_confidence_per_bin():
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(3, 200, 4)) * 3)  # (members, samples, classes)
    y = torch.as_tensor(rng.integers(0, 4, size=(3, 200)))
    probabilities = torch.softmax(logits, -1).numpy()
    expected = [ece_by_definition(p.max(-1), p.argmax(-1) == t) for p, t in zip(probabilities, y.numpy())]

    np.testing.assert_allclose(losses.expected_calibration_error(logits, y, 4).numpy(), expected, rtol=1e-12)


def test_ece_of_a_binary_classifier_uses_the_probability_of_its_predicted_class():
    logits = torch.tensor([[[2.0], [-1.0], [0.5], [-3.0]]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    p = 1 / (1 + np.exp(-logits.numpy()[0, :, 0]))
    confidence = np.maximum(p, 1 - p)
    correct = (p > 0.5) == y.numpy()[0].astype(bool)

    assert losses.expected_calibration_error(logits, y, 2).item() == pytest.approx(
        ece_by_definition(confidence, correct)
    )
    # A classifier right on every sample with full confidence is calibrated.
    sure = torch.tensor([[[40.0], [-40.0]]], dtype=torch.float64)
    assert losses.expected_calibration_error(sure, torch.tensor([[1.0, 0.0]]), 2).item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("engine", ["auto", "stacked", "reference"])
def test_runs_log_all_three_parts_and_keep_the_test_metrics_of_the_best_validation_epoch(engine):
    config = make_config([NoiseSpec("pre_activation", "gaussian", 0.1)])
    if engine == "reference":
        result = train_reference(TASK, member(config))
    else:
        (result,) = train_population(TASK, [member(config)], engine=engine)

    curves = result.curves
    assert {"train_loss", "val_loss", "test_loss", "val_accuracy", "test_accuracy", "test_ece"} <= set(curves)
    at = int(np.argmax(curves["val_accuracy"]))  # the first epoch of the best validation accuracy
    assert result.best_epoch == result.curve_epochs[at]
    for name in ("val_accuracy", "test_accuracy", "test_loss", "test_ece"):
        assert result.final[f"early_{name}"] == curves[name][at]
        assert result.final[name] == curves[name][-1]
    # Accuracies are exact shares of the 70 validation and 70 test samples.
    assert round(result.final["test_accuracy"] * 70) / 70 == result.final["test_accuracy"]


def test_without_a_validation_part_the_best_epoch_is_chosen_on_the_test_part():
    task = TASK.model_copy(update={"n_val": 0})
    (result,) = train_population(task, [member()])

    assert not any(name.startswith("val_") for name in result.curves)
    at = int(np.argmax(result.curves["test_accuracy"]))
    assert result.best_epoch == result.curve_epochs[at]
    assert result.final["early_test_accuracy"] == result.curves["test_accuracy"][at]


def test_the_validation_part_is_evaluated_on_its_own_samples():
    split = load_split(TASK, seeding.data_seed(0, 0))
    (result,) = train_population(TASK, [member()])
    # Different samples, so (almost surely) different losses on the two parts.
    assert len(split.y_val) == len(split.y_test) == 70
    assert result.final["val_loss"] != result.final["test_loss"]
