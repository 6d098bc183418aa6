"""The lease of a sweep, and runs that failed to learn.

- ``sweeper_sweeps.lease_*``: which ``sweeper run`` owns the sweep (a random token, its host and pid),
  since when, and its last heartbeat, by the database's clock. NULL: no one; a sweep a driver of the
  previous version left ``running`` is taken by the next run at once.
- ``sweeper_runs.failed_to_learn``: a finished run whose training metric is no better than chance.
  NULL for the runs stored before: they were not judged (the report counts only those judged).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("sweeper_runs") as batch:
        batch.add_column(sa.Column("failed_to_learn", sa.Boolean(), nullable=True))
    with op.batch_alter_table("sweeper_sweeps") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_pid", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("lease_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_heartbeat_at", sa.DateTime(timezone=True), nullable=True))
