"""Alembic's environment, for a developer's ``alembic`` command only: sweeper runs its revisions itself.

From the repository root (pyproject.toml's ``[tool.alembic]`` points here)::

    alembic check                                               # do the revisions add up to the models?
    alembic revision --autogenerate --rev-id 0005 -m "what it adds"   # a new revision from the models' changes

Both compare ``sweeper/store/models.py`` with a scratch in-memory database brought to the newest
revision through the revisions themselves; ``-x db=URL`` compares with another database instead.
"""

from alembic import context
from sqlalchemy import create_engine

from sweeper.store import migrations
from sweeper.store.models import Base

if context.is_offline_mode():
    raise SystemExit("sweeper's revisions need a database to run against (no --sql); see docs/database.md")

url = context.get_x_argument(as_dictionary=True).get("db", "sqlite://")
engine = create_engine(url)
with engine.connect() as connection:
    if url == "sqlite://":
        migrations.upgrade(connection, migrations.BASELINE)  # from nothing, revision by revision
        migrations.upgrade(connection)
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=migrations.VERSION_TABLE,
        include_name=migrations.ours,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
