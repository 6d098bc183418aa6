"""The store: one database's connection, schema and sessions; its writes are in ``_writes``, its reads in ``_reads``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sweeper.errors import StoreError
from sweeper.store import _connection, _query, _schema
from sweeper.store._query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, QueryResult
from sweeper.store._reads import Reads
from sweeper.store._url import default_url, parse_url, redact, sqlite_path
from sweeper.store._writes import Writes
from sweeper.store.models import Sweep


def open_store(url: str | None = None, *, create: bool = True, read_only: bool = False) -> Store:
    """Open the database at ``url``; for writing (``create``), with sweeper's tables created or upgraded.

    Without a URL: ``$SWEEPER_DB``, else ``sqlite:///sweeps.db``. ``postgresql://`` uses psycopg 3.
    With ``create=False`` nothing is written: a SQLite file must exist, and reading sweeper's tables
    is refused (StoreError, one line) unless they are at this version's schema. ``read_only`` (what the
    commands that only read ask, implying ``create=False``): a SQLite file is opened so that SQLite
    itself refuses every write (``mode=ro``; ``immutable`` on a read-only filesystem), so reading a
    copy of a database, or one on a read-only disk, leaves it byte for byte as it was.
    """
    create = create and not read_only
    parsed = parse_url(url or default_url())
    path = sqlite_path(parsed)
    if not create and path is not None and not os.path.exists(path):
        raise StoreError(
            f"no database at {redact(str(url or default_url()))}; run a sweep first (sweeper run FILE --db ...)"
        )
    if not create and path is None and parsed.get_backend_name() == "sqlite":
        raise StoreError(
            f"{redact(str(url or default_url()))} is a database in memory, which holds no sweeps; allowed: "
            "a database file (sqlite:///sweeps.db) or PostgreSQL"
        )
    db = _connection.connect(parsed, read_only=read_only)
    store = Store(db)
    if create:
        try:
            store.upgrade_schema()
        except StoreError:
            db.dispose()
            raise
    return store


class Store(Writes, Reads):
    """Sweeps, trials, runs and curves in one SQL database (which also holds Optuna's study tables)."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._schema_checked = False

    @property
    def url(self) -> str:
        """The full URL, password included: for Optuna's ``RDBStorage``, never for printing."""
        return self._db.url.render_as_string(hide_password=False)

    @property
    def display_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact(self._db.url.render_as_string(hide_password=False))

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Create sweeper's tables, or upgrade them to this version's schema: the revisions before and after.

        None before: the database had no sweeper tables. StoreError if it was written by a newer sweeper.
        """
        revisions = _schema.upgrade(self._db, self.display_url)
        self._schema_checked = True
        return revisions

    def optuna_storage(self):
        """Optuna's storage on this database (an ``RDBStorage``), its tables created under the schema lock.

        Optuna creates its tables and stamps its own version table when its storage first opens a
        database; two processes doing that at once can both try, and one fails.
        """
        from optuna.storages import RDBStorage

        kwargs = {}
        if self._db.url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {
                "timeout": _connection.SQLITE_BUSY_TIMEOUT_S
            }  # wait for writers as the store does
        try:
            with _schema.schema_lock(self._db):
                return RDBStorage(self.url, engine_kwargs=kwargs)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open Optuna's tables in {self.display_url}: {_connection.reason(exc)}") from exc
        except RuntimeError as exc:  # Optuna's tables are of another Optuna's schema; its message says what to do
            raise StoreError(f"Optuna's tables in {self.display_url}: {_connection.reason(exc, self._db.url)}") from exc

    def database_error(self, exc: BaseException) -> StoreError:
        """The one-line error of a database error met outside the store (in Optuna's storage, say)."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return StoreError(f"database error in {self.display_url}: {_connection.reason(cause, self._db.url)}")

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    def query(self, sql: str, *, limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT_S) -> QueryResult:
        """Run one read-only SQL statement: its columns and at most ``limit`` rows, within ``timeout`` seconds.

        SQLite opens the file read-only; PostgreSQL runs the statement as the role ``sweeper_reader``
        (see :func:`create_reader`), which may read sweeper's and Optuna's tables and nothing else.
        """
        path = sqlite_path(self._db.url)
        backend = self._db.url.get_backend_name()
        if path is not None:
            return _query.query_sqlite(path, sql, limit=limit, timeout=timeout)
        if backend == "sqlite":
            raise StoreError(f"query needs a database file; {self.display_url} is in memory")
        if backend != "postgresql":
            raise StoreError(f"query supports SQLite and PostgreSQL, not {backend}")
        return _query.query_postgresql(self._db, sql, limit=limit, timeout=timeout)

    # -- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed if the block succeeds, rolled back otherwise.

        The first one checks that sweeper's tables are at this version's schema (a store opened for
        writing has just made sure of it).
        """
        if not self._schema_checked:
            _schema.check_readable(self._db, self.display_url)
            self._schema_checked = True
        try:
            with Session(self._db, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error in {self.display_url}: {_connection.reason(exc)}") from exc

    def _sweep_by_id(self, session: Session, sweep_id: int) -> Sweep:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise StoreError(f"no sweep with id {sweep_id} in {self.display_url}")
        return sweep

    def _sweep_by_name(self, session: Session, name: str) -> Sweep:
        sweep = session.scalar(select(Sweep).where(Sweep.name == name))
        if sweep is None:
            names = session.scalars(select(Sweep.name).order_by(Sweep.created_at, Sweep.id)).all()
            known = f"sweeps there: {', '.join(names)}" if names else "it holds no sweeps"
            raise StoreError(f"no sweep {name!r} in {self.display_url}; {known}")
        return sweep
