"""Connections: the engine of a store, and read-only execution of a user's SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sweeper.errors import StoreError
from sweeper.store._rows import plain

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
    # WAL lets the report read while workers write; the busy timeout queues concurrent writers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
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


def _refused_or_failed(exc: BaseException, refused: bool) -> StoreError:
    if refused:
        return StoreError(f"query refused: {reason(exc)} (queries are read-only)")
    return StoreError(f"query failed: {reason(exc)}")


def _deny_attach(action, *_args) -> int:
    # ATTACH (and VACUUM INTO, which attaches) would open a second, writable database file.
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def query_sqlite(path: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one statement on a SQLite file opened read-only (``mode=ro``): SQLite itself refuses writes."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise StoreError(f"query failed: cannot open {path} read-only: {reason(exc)}") from exc
    try:
        connection.set_authorizer(_deny_attach)
        cursor = connection.execute(sql)
        return _columns(cursor), [tuple(map(plain, row)) for row in cursor.fetchall()]
    except sqlite3.Error as exc:
        text = str(exc)
        refused = "readonly database" in text or "authoriz" in text
        raise _refused_or_failed(exc, refused) from exc
    finally:
        connection.close()


def query_postgresql(engine: Engine, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one statement inside a read-only transaction: PostgreSQL itself refuses writes."""
    import psycopg

    with engine.connect() as connection:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        _drop_superuser_powers(connection)
        try:
            # A prepared statement holds exactly one command, so "...; COMMIT; INSERT ..." cannot
            # end the read-only transaction and write after it.
            with connection.connection.driver_connection.cursor() as cursor:
                cursor.execute(sql, prepare=True)
                rows = cursor.fetchall() if cursor.description else []
                return _columns(cursor), [tuple(map(plain, row)) for row in rows]
        except psycopg.Error as exc:
            # read_only_sql_transaction, insufficient_privilege
            raise _refused_or_failed(exc, exc.sqlstate in ("25006", "42501")) from exc
        finally:
            connection.rollback()


def _drop_superuser_powers(connection) -> None:
    """Read as ``pg_read_all_data`` for the rest of the transaction when we may.

    A read-only transaction still lets a superuser write server files (``COPY ... TO 'file'``) or run
    programs (``COPY ... TO PROGRAM``); that role reads every table and can do neither.
    """
    member = connection.exec_driver_sql(
        "SELECT pg_has_role(oid, 'MEMBER') FROM pg_roles WHERE rolname = 'pg_read_all_data'"
    ).scalar()
    if member:
        connection.exec_driver_sql("SET LOCAL ROLE pg_read_all_data")


def _columns(cursor) -> list[str]:
    return [d[0] for d in cursor.description or ()]
