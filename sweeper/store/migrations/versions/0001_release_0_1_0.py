"""The tables of sweeper 0.1.0, the last release before the schema was versioned.

A database written by 0.1.0 has exactly these tables and no version table; opening it for writing
stamps it with this revision and upgrades it from there. Kept as written then, whatever the models
say now: the lists in the CHECK constraints are 0.1.0's.

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _metrics() -> list[sa.Column]:
    names = (
        "train_loss",
        "test_loss",
        "train_accuracy",
        "test_accuracy",
        "train_mse",
        "test_mse",
        "train_r2",
        "test_r2",
    )
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


def _in(column: str, values: tuple[str, ...], table: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=f"ck_{table}_{column}")


def upgrade() -> None:
    op.create_table(
        "sweeper_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("spec_yaml", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("problem", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("study_name", sa.String(255), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweeper_sweeps"),
        _in("problem", ("binary", "multiclass", "regression", "mixed"), "sweeper_sweeps"),
        _in("status", ("running", "completed", "interrupted", "failed"), "sweeper_sweeps"),
        sa.CheckConstraint("repeats >= 1", name="ck_sweeper_sweeps_repeats"),
        sa.UniqueConstraint("name", name="uq_sweeper_sweeps_name"),
    )
    op.create_table(
        "sweeper_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("config_key", sa.BigInteger(), nullable=False),
        sa.Column("placement", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(255), nullable=True),
        sa.Column("std", sa.Float(), nullable=True),
        sa.Column("schedule", sa.String(32), nullable=True),
        sa.Column("gamma", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sweeper_trials"),
        sa.UniqueConstraint("sweep_id", "number", name="uq_sweeper_trials_sweep_id_number"),
        sa.UniqueConstraint("sweep_id", "config_json", name="uq_sweeper_trials_sweep_id_config_json"),
        _in("status", ("pending", "complete"), "sweeper_trials"),
        sa.CheckConstraint("number >= 0", name="ck_sweeper_trials_number"),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeper_sweeps.id"], name="fk_sweeper_trials_sweep_id", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sweeper_trial_sites",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("placement", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("std", sa.Float(), nullable=False),
        sa.Column("schedule", sa.String(32), nullable=False),
        sa.Column("gamma", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("trial_id", "placement", name="pk_sweeper_trial_sites"),
        _in(
            "placement",
            ("input", "pre_activation", "post_activation", "weights", "gradients", "targets"),
            "sweeper_trial_sites",
        ),
        _in("kind", ("gaussian", "multiplicative", "uniform", "flip"), "sweeper_trial_sites"),
        _in("schedule", ("constant", "annealed"), "sweeper_trial_sites"),
        sa.CheckConstraint("std >= 0", name="ck_sweeper_trial_sites_std"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["sweeper_trials.id"], name="fk_sweeper_trial_sites_trial_id", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sweeper_runs",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("data_seed", sa.BigInteger(), nullable=False),
        sa.Column("init_seed", sa.BigInteger(), nullable=False),
        sa.Column("noise_seed", sa.BigInteger(), nullable=False),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("diverged", sa.Boolean(), nullable=False),
        sa.Column("diverged_epoch", sa.Integer(), nullable=True),
        sa.Column("wall_time", sa.Float(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        *_metrics(),
        sa.PrimaryKeyConstraint("id", name="pk_sweeper_runs"),
        sa.UniqueConstraint("trial_id", "task", "repeat", name="uq_sweeper_runs_trial_id_task_repeat"),
        sa.CheckConstraint(sa.column("repeat") >= 0, name="ck_sweeper_runs_repeat"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["sweeper_trials.id"], name="fk_sweeper_runs_trial_id", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sweeper_curves",
        sa.Column("run_id", _BIG_ID, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        *_metrics(),
        sa.PrimaryKeyConstraint("run_id", "epoch", name="pk_sweeper_curves"),
        sa.ForeignKeyConstraint(["run_id"], ["sweeper_runs.id"], name="fk_sweeper_curves_run_id", ondelete="CASCADE"),
    )
