"""Open lists, the command line's overrides in a column, and what ran each sweep and run.

- The CHECK constraints that copied the lists of noise placements, kinds and schedules, and of
  problems, are dropped: the code validates them, and a later version can add one without a
  database of this version refusing it.
- ``sweeper_sweeps.overrides`` holds the command-line overrides (``--repeats``, ``--epochs``,
  ``--name``) as a JSON object; 0.1.0 appended them to the stored YAML as a comment line, which is
  moved into the column here.
- Sweeps record what drove them, runs what trained them: sweeper's and torch's versions, the
  device type, CPU and GPU names, the host (runs also the engine). NULL for what 0.1.0 stored.

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

#: How 0.1.0 kept the overrides: ``yaml.rstrip("\n") + "\n" + MARKER + json.dumps(overrides) + "\n"``.
MARKER = "# sweeper overrides: "


def _machine_columns() -> list[sa.Column]:
    return [
        sa.Column("sweeper_version", sa.String(64), nullable=True),
        sa.Column("torch_version", sa.String(64), nullable=True),
        sa.Column("cpu", sa.String(255), nullable=True),
        sa.Column("gpu", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
    ]


def split_overrides(spec_yaml: str) -> tuple[str, str | None]:
    """The YAML as given and the overrides' JSON, from what 0.1.0 stored (unchanged if not that form).

    The YAML gets back one final newline, as 0.1.0 itself gave it when it resumed such a sweep.
    """
    text, marker, tail = spec_yaml.rpartition("\n" + MARKER)
    if not marker:
        return spec_yaml, None
    try:
        overrides = json.loads(tail)
    except ValueError:
        return spec_yaml, None
    if not isinstance(overrides, dict):
        return spec_yaml, None
    return text + "\n", json.dumps(overrides, sort_keys=True) if overrides else None


def upgrade() -> None:
    with op.batch_alter_table("sweeper_trial_sites") as batch:
        for name in ("placement", "kind", "schedule"):
            batch.drop_constraint(f"ck_sweeper_trial_sites_{name}", type_="check")
    with op.batch_alter_table("sweeper_sweeps") as batch:
        batch.drop_constraint("ck_sweeper_sweeps_problem", type_="check")
        batch.add_column(sa.Column("overrides", sa.Text(), nullable=True))
        batch.add_column(sa.Column("device", sa.String(64), nullable=True))
        for column in _machine_columns():
            batch.add_column(column)
    with op.batch_alter_table("sweeper_runs") as batch:
        batch.add_column(sa.Column("engine", sa.String(16), nullable=True))
        for column in _machine_columns():
            batch.add_column(column)

    sweeps = sa.table(
        "sweeper_sweeps", sa.column("id", sa.Integer), sa.column("spec_yaml", sa.Text), sa.column("overrides", sa.Text)
    )
    connection = op.get_bind()
    for sweep_id, spec_yaml in connection.execute(sa.select(sweeps.c.id, sweeps.c.spec_yaml)).all():
        text, overrides = split_overrides(spec_yaml)
        if text != spec_yaml:
            connection.execute(
                sa.update(sweeps).where(sweeps.c.id == sweep_id).values(spec_yaml=text, overrides=overrides)
            )
