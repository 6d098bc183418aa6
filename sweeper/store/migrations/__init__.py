"""Versions of sweeper's tables: Alembic revisions, applied in order, recorded in their own table.

Each file in ``versions/`` is one revision; ``0001`` is the schema of release 0.1.0, the last one
written without a version. A database records the revision it is at in ``sweeper_alembic_version``:
Optuna keeps its own tables' revision in ``alembic_version`` in the same database, so the two never
mix. The revisions run from here, without Alembic's ``env.py`` (which only the ``alembic`` command
of a developer uses). How to add a revision: docs/database.md, "Schema versions and migrations".
"""

from __future__ import annotations

from pathlib import Path

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from sweeper.store.models import Base

VERSION_TABLE = "sweeper_alembic_version"
#: The revision of a database that has sweeper's tables but no version table (written by 0.1.0).
BASELINE = "0001"


def scripts() -> ScriptDirectory:
    """The revisions this sweeper knows."""
    return ScriptDirectory(str(Path(__file__).parent))


def head() -> str:
    """The newest revision this sweeper knows: the schema of ``sweeper/store/models.py``."""
    return scripts().get_current_head()


def ours(name: str | None, type_: str, _parent_names=None) -> bool:
    """Whether Alembic should look at a table: sweeper's own, not Optuna's nor the version table."""
    return type_ != "table" or (name is not None and name.startswith("sweeper_") and name != VERSION_TABLE)


def context(connection: Connection, **opts) -> MigrationContext:
    """A migration context on ``connection`` that records revisions in sweeper's version table.

    Without ``target_metadata`` unless given (the ``alembic`` command's autogenerate gives the models'):
    Alembic would apply the models' naming convention to the names a revision spells out in full.
    """
    options = {
        "version_table": VERSION_TABLE,
        "include_name": ours,
        "render_as_batch": True,
        "compare_type": True,
        **opts,
    }
    return MigrationContext.configure(connection, opts=options)


def revision(connection: Connection) -> str | None:
    """The revision the database is at; BASELINE when it has 0.1.0's tables unversioned, None when it has none."""
    current = context(connection).get_current_revision()
    if current is not None:
        return current
    return BASELINE if inspect(connection).has_table("sweeper_sweeps") else None


def upgrade(connection: Connection, target: str = "head") -> None:
    """Bring the database to revision ``target``; call it inside a transaction, under the schema lock.

    A database without sweeper's tables that goes to the head gets the models' tables at once (what
    the revisions add up to, as tests/store/test_migrations.py checks); an unversioned one is
    stamped BASELINE first.
    """
    script = scripts()
    current = revision(connection)
    if current is None and target in ("head", script.get_current_head()):
        Base.metadata.create_all(connection)
        context(connection).stamp(script, "head")
        return
    if current is not None and context(connection).get_current_revision() is None:
        context(connection).stamp(script, BASELINE)
    migration = context(connection, fn=lambda rev, _context: script._upgrade_revs(target, rev))
    with Operations.context(migration):
        migration.run_migrations()
