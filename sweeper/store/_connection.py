"""Connections to a store's database (a pool of them: SQLAlchemy's ``Engine``, called ``db`` here, since
"engine" in sweeper means what trains), and what a database error says in one line."""

from __future__ import annotations

import random
import sqlite3
import time

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sweeper.errors import StoreError

SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10


def reason(exc: BaseException, url: URL | None = None) -> str:
    """The first line of what the database said, without the URL's password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    text = lines[0] if lines else type(cause).__name__
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the report read while workers write; the busy timeout queues concurrent writers. The
    # timeout first: turning a new file to WAL needs its lock, which another process may hold.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    _switch_to_wal(cursor)
    # In WAL mode NORMAL syncs at checkpoints, not at every commit (4.5 ms each on this project's disk, two
    # or more per pack): a killed process still loses nothing committed; a power cut may lose the last
    # packs, which a resume trains again, to the same numbers (every seed derives from the sweep's).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _switch_to_wal(cursor) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another process switching the file holds it.

    SQLite answers "database is locked" at once, without its busy timeout, when two connections that
    both read a file not yet in WAL both ask for the lock to switch it (each waiting for the other
    could deadlock): 1 round in 4 of 6 processes opening a new file together.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.001, 0.02))  # apart, so the next try of each does not meet again


def connect(url: URL) -> Engine:
    """The connection pool of ``url``, checked by connecting once; StoreError if that fails."""
    kwargs = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        db = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise _cannot_open(url, exc) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(db, "connect", _sqlite_pragmas)
    try:
        with db.connect():
            pass
    except SQLAlchemyError as exc:
        db.dispose()
        raise _cannot_open(url, exc) from exc
    return db


def _cannot_open(url: URL, exc: BaseException) -> StoreError:
    from sweeper.store._url import redact

    shown = redact(url.render_as_string(hide_password=False))
    return StoreError(f"cannot open database {shown}: {reason(exc, url)}")
