"""The metric table: every list of metric names, and every direction, comes from it."""

from __future__ import annotations

from sweeper import metrics
from sweeper.store.models import Curve, Run


def test_metric_direction_from_its_name():
    assert metrics.higher_is_better("test_accuracy") is True
    assert metrics.higher_is_better("test_r2") is True
    assert metrics.higher_is_better("test_loss") is False
    assert metrics.higher_is_better("test_mse") is False
    assert metrics.higher_is_better("test_bleu") is None


def test_validation_and_early_names_point_the_way_their_metric_does():
    assert metrics.higher_is_better("val_accuracy") is True
    assert metrics.higher_is_better("early_test_ece") is False
    assert metrics.higher_is_better("r2") is True


def test_every_column_of_the_table_is_a_column_of_runs_and_curves():
    # A new row of the table needs its columns in sweeper.store.models (and a schema revision).
    stored = [c.name for c in Curve.__table__.columns if c.name not in ("run_id", "epoch")]
    assert sorted(stored) == sorted(metrics.COLUMNS)
    early = [c.name for c in Run.__table__.columns if c.name.startswith(metrics.EARLY_PREFIX)]
    assert sorted(early) == sorted(metrics.EARLY_COLUMNS)


def test_each_problem_fills_its_own_columns_and_selects_on_its_own_metric_first():
    assert metrics.columns("binary") == (
        "train_loss",
        "val_loss",
        "test_loss",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "test_ece",
    )
    assert metrics.columns("regression") == (
        "train_loss",
        "val_loss",
        "test_loss",
        "train_mse",
        "val_mse",
        "test_mse",
        "train_r2",
        "val_r2",
        "test_r2",
    )
    assert metrics.columns("mixed") == metrics.COLUMNS
    assert metrics.choices("multiclass") == (
        "accuracy",
        "loss",
        "val_accuracy",
        "val_loss",
        "train_accuracy",
        "train_loss",
    )
    assert metrics.choices("regression")[0] == "mse"
