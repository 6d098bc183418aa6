"""Connections: the engine of a store, and what a database error says in one line."""

from __future__ import annotations

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
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: URL) -> Engine:
    """An engine for ``url``, checked by connecting once; StoreError if that fails."""
    kwargs = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise _cannot_open(url, exc) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _cannot_open(url, exc) from exc
    return engine


def _cannot_open(url: URL, exc: BaseException) -> StoreError:
    return StoreError(f"cannot open database {url.render_as_string(hide_password=True)}: {reason(exc, url)}")
