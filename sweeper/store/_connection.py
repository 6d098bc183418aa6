"""Connections to a store's database (a pool of them: SQLAlchemy's ``Engine``, called ``db`` here, since
"engine" in sweeper means what trains), and what a database error says in one line."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

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


def _sqlite_read_pragmas(dbapi_connection, _record) -> None:
    # What a reader may set: this connection's own settings, nothing stored in the file.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def read_only_uri(path: str) -> str:
    """The ``file:`` URI that opens the SQLite file ``path`` read-only: ``mode=ro``, and ``immutable=1``
    where nothing can write it (see :func:`connect`)."""
    return Path(path).resolve().as_uri() + "?mode=ro" + ("&immutable=1" if cannot_change(path) else "")


def cannot_change(path: str) -> bool:
    """Whether no process of ours can write the SQLite file ``path`` or its ``-wal``/``-shm`` beside it: a
    read-only filesystem, or a file or folder not writable."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    try:
        read_only_fs = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_fs = False
    return read_only_fs or not os.access(path, os.W_OK) or not os.access(folder, os.W_OK)


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


def connect(url: URL, *, read_only: bool = False) -> Engine:
    """The connection pool of ``url``, checked by connecting once; StoreError if that fails.

    ``read_only``: a SQLite file is opened with ``mode=ro`` (SQLite itself refuses every write, and the
    file is never switched to WAL), and ``immutable=1`` too where it cannot change under us (a read-only
    filesystem, or a file or folder this process may not write): no lock or ``-shm`` file is needed then.
    """
    kwargs = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if read_only and sqlite_file:
        uri = read_only_uri(url.database)
        # The URL still names the file (messages, sqlite_path); the connections are the read-only ones.
        kwargs["creator"] = lambda: sqlite3.connect(
            uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
        )
    try:
        db = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise _cannot_open(url, exc) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(db, "connect", _sqlite_read_pragmas if read_only else _sqlite_pragmas)
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
