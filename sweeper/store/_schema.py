"""Creating and upgrading the tables, safely however many processes open one database at once.

Writers (``sweeper run``, ``sweeper db upgrade``) bring sweeper's tables to this version's schema
when they open a database; readers never write, and refuse a database of another schema with one
line that says what to do. Creating tables (sweeper's, and Optuna's when its storage is first
opened) happens under a lock held by one process at a time, so processes that open a new database
together cannot both create a table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from sweeper.errors import StoreError
from sweeper.store import migrations
from sweeper.store._connection import SQLITE_BUSY_TIMEOUT_S, reason
from sweeper.store._url import sqlite_path

#: pg_advisory_lock's key for "sweeper is changing the schema" (the bytes of "sweeper!").
PG_LOCK_KEY = int.from_bytes(b"sweeper!", "big")


@contextmanager
def schema_lock(db: Engine) -> Iterator[None]:
    """Holds the database's schema lock while the block creates or alters tables; waits for it first.

    PostgreSQL: a session-level advisory lock, released by the server if the process dies.
    SQLite: ``flock`` on ``<database>.lock`` beside the file (every process that opens the database
    sees it, whatever its temporary folder), released by the kernel if the process dies. Not SQLite's
    own write lock (``BEGIN IMMEDIATE``): Optuna creates its tables over connections of its own, which
    would wait for ours. Not a lock on the database file itself: closing our descriptor of it would
    drop the POSIX locks SQLite holds on it in this process.
    """
    if db.url.get_backend_name() == "postgresql":
        with _pg_advisory_lock(db):
            yield
        return
    path = sqlite_path(db.url)
    if path is None:  # in memory: no other process can see it
        yield
        return
    import fcntl

    try:
        lock = open(path + ".lock", "a")  # noqa: SIM115 - held open across the yield; closed in the finally below
    except OSError as exc:
        raise StoreError(f"cannot lock {path} for creating tables: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as exc:
            raise StoreError(f"cannot lock {path} for creating tables: {exc.strerror or exc}") from exc
        yield
    finally:
        lock.close()  # releases the flock


@contextmanager
def _pg_advisory_lock(db: Engine) -> Iterator[None]:
    with db.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
        try:
            yield
        finally:
            try:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
            except SQLAlchemyError:
                # A connection that cannot unlock must not go back to the pool still holding the lock.
                connection.invalidate()


@contextmanager
def _migration_connection(db: Engine) -> Iterator[Connection]:
    """One transaction for the whole migration: committed if every revision succeeds, else nothing changes.

    On SQLite that takes a connection of its own: Python's sqlite3 runs DDL outside any transaction
    unless it is told to leave transactions to us, and foreign keys must be off, since a batch
    migration drops and recreates a table (dropping ``sweeper_sweeps`` with them on would delete
    every trial, run and curve through ON DELETE CASCADE).
    """
    if db.url.get_backend_name() != "sqlite":
        with db.begin() as connection:
            yield connection
        return
    own = create_engine(db.url, poolclass=NullPool)

    @event.listens_for(own, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    @event.listens_for(own, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with own.begin() as connection:
            yield connection
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise StoreError(
                    f"the migration would break {len(broken)} foreign keys, first: {broken[0]}; nothing was changed"
                )
    finally:
        own.dispose()


def _revision(db: Engine) -> str | None:
    with db.connect() as connection:
        return migrations.revision(connection)


def _refuse_newer(current: str | None, display_url: str) -> None:
    known = {script.revision for script in migrations.scripts().walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"database {display_url} was written by a newer sweeper (schema {current}); "
            f"this sweeper knows up to {migrations.head()}: upgrade sweeper"
        )


def upgrade(db: Engine, display_url: str) -> tuple[str | None, str]:
    """Create or upgrade sweeper's tables to this version's schema; the revisions before and after.

    StoreError if the database is newer than this sweeper, or the database refused.
    """
    head = migrations.head()
    try:
        before = _revision(db)
        if before == head:  # the usual case: no lock to wait for
            return before, head
        _refuse_newer(before, display_url)
        with schema_lock(db), _migration_connection(db) as connection:
            before = migrations.revision(connection)  # again: another process may have just done it
            _refuse_newer(before, display_url)
            if before != head:
                migrations.upgrade(connection)
        return before, head
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot create or upgrade the tables of {display_url}: {reason(exc, db.url)}") from exc


def check_readable(db: Engine, display_url: str) -> None:
    """StoreError unless the database holds sweeper's tables at this version's schema.

    A reader never upgrades: it may be looking at a copy, a read-only file, or a database an older
    sweeper is still writing to.
    """
    try:
        current = _revision(db)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {display_url}: {reason(exc, db.url)}") from exc
    head = migrations.head()
    if current == head:
        return
    if current is None:
        raise StoreError(
            f"{display_url} holds no sweeps (it has no sweeper tables); run a sweep first (sweeper run FILE --db ...)"
        )
    _refuse_newer(current, display_url)
    raise StoreError(
        f"database {display_url} has the schema of an older sweeper ({current}; this one reads "
        f"{head}): run 'sweeper db upgrade' with the same --db first (any 'sweeper run' on it "
        "also upgrades it)"
    )
