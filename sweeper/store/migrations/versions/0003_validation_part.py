"""A validation part: its metrics, the test part's calibration, and each run's metrics at its best epoch.

- Runs and curve points get ``val_loss``, ``val_accuracy``, ``val_mse``, ``val_r2`` (what a sweep now
  selects on) and ``test_ece`` (the expected calibration error of a classifier on the test part).
  NULL for runs stored before: they had no validation part, and their calibration was not measured.
- Runs get ``early_*``: the validation and test metrics at ``best_epoch``, the logged epoch of the
  best validation metric (of the best test metric without a validation part), as early stopping
  would have kept them. For runs stored before, ``best_epoch`` was the epoch of the best test
  metric, so their ``early_test_*`` are filled from their curves at that epoch, which is what a
  run without a validation part stores now.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

PART_METRICS = ("val_loss", "val_accuracy", "val_mse", "val_r2", "test_ece")
EARLY_METRICS = (
    "early_val_loss",
    "early_test_loss",
    "early_val_accuracy",
    "early_test_accuracy",
    "early_test_ece",
    "early_val_mse",
    "early_test_mse",
    "early_val_r2",
    "early_test_r2",
)
#: What runs stored before this revision have at their best (test) epoch.
FILLED = ("test_loss", "test_accuracy", "test_mse", "test_r2")


def upgrade() -> None:
    with op.batch_alter_table("sweeper_curves") as batch:
        for name in PART_METRICS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table("sweeper_runs") as batch:
        for name in EARLY_METRICS + PART_METRICS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    bind = op.get_bind()
    for name in FILLED:
        bind.exec_driver_sql(
            f"UPDATE sweeper_runs SET early_{name} = (SELECT c.{name} FROM sweeper_curves c "
            "WHERE c.run_id = sweeper_runs.id AND c.epoch = sweeper_runs.best_epoch) WHERE best_epoch IS NOT NULL"
        )
