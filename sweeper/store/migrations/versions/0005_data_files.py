"""The data files a sweep's tasks were read from.

- ``sweeper_sweeps.data_files``: JSON of the folder the data files were read from and, per task with a
  data file of the user's, its path as written, the sha256 of its contents, its problem and class
  labels; resuming or rerunning is refused once a file's contents differ. NULL for the sweeps stored
  before, whose tasks could only use bundled data sets.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("sweeper_sweeps") as batch:
        batch.add_column(sa.Column("data_files", sa.Text(), nullable=True))
