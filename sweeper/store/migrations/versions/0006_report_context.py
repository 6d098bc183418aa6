"""What the report needs of a sweep besides its runs, and each placement of a trial in full.

- ``sweeper_sweeps.context``: JSON of what the report shows of the sweep as it was last started: the
  number of configurations it plans, the search space in words, seed and repeats, and per task its data
  set, split sizes, model and training (``sweeper.driver.context``). The report reads it instead of
  parsing the stored search space again. NULL for the sweeps stored before: their report shows what
  it lacks as unknown until their file is run again (which stores it, a completed sweep's too).
- ``sweeper_trial_sites.std_min`` (decaying schedules only) and ``relative``: the two fields of a
  placement's noise the table lacked; filled in from each trial's ``config_json``.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

#: The schedules whose size decays to ``std_min`` (``sweeper.noise.spec.DECAYS`` when this was written).
DECAYS = ("linear", "cosine")


def upgrade() -> None:
    with op.batch_alter_table("sweeper_sweeps") as batch:
        batch.add_column(sa.Column("context", sa.Text(), nullable=True))
    with op.batch_alter_table("sweeper_trial_sites") as batch:
        batch.add_column(sa.Column("std_min", sa.Float(), nullable=True))
        batch.add_column(sa.Column("relative", sa.Boolean(), nullable=False, server_default=sa.false()))
    connection = op.get_bind()
    sites = sa.table(
        "sweeper_trial_sites",
        sa.column("trial_id", sa.Integer()),
        sa.column("placement", sa.String()),
        sa.column("std_min", sa.Float()),
        sa.column("relative", sa.Boolean()),
    )
    trials = connection.execute(sa.text("SELECT id, config_json FROM sweeper_trials")).all()
    for trial_id, config_json in trials:
        for site in json.loads(config_json or "[]"):
            if site.get("schedule") not in DECAYS and not site.get("relative"):
                continue
            connection.execute(
                sa.update(sites)
                .where(sites.c.trial_id == trial_id, sites.c.placement == site["placement"])
                .values(
                    std_min=site.get("std_min", 0.0) if site.get("schedule") in DECAYS else None,
                    relative=bool(site.get("relative")),
                )
            )
