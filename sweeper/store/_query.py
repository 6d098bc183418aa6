"""Users' SQL, read-only and bounded: one statement, at most ``limit`` rows, at most ``timeout`` seconds.

SQLite opens the file read-only. PostgreSQL runs the statement as the role ``sweeper_reader`` (see
``_reader``) in a read-only transaction, as a server-side cursor read in batches, with the time left
re-armed as ``statement_timeout`` before every batch; a watchdog thread cancels it as well, so the
limit holds whether the client or the server is the one that stalls.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from sweeper.errors import StoreError
from sweeper.store import _reader
from sweeper.store._connection import SQLITE_BUSY_TIMEOUT_S, read_only_uri, reason
from sweeper.store._rows import plain

DEFAULT_LIMIT = 10_000
DEFAULT_TIMEOUT_S = 300.0
#: Bytes of values a result may hold; past it the query stops (rows x width is what exhausts memory).
MAX_RESULT_BYTES = 128 * 2**20
_BATCH_BYTES = 4 * 2**20
_MAX_BATCH = 1000
_CURSOR = "sweeper_query"
_DECLARE = f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR "
_WHAT_RUNS = "a query is one SELECT, VALUES, TABLE or WITH ... SELECT statement"
# The first words of PostgreSQL's statements that are not queries (a misspelt SELECT is a plain syntax error).
_COMMANDS = frozenset(
    [
        "abort",
        "alter",
        "analyze",
        "begin",
        "call",
        "checkpoint",
        "close",
        "cluster",
        "comment",
        "commit",
        "copy",
        "create",
        "deallocate",
        "declare",
        "delete",
        "discard",
        "do",
        "drop",
        "end",
        "execute",
        "explain",
        "fetch",
        "grant",
        "import",
        "insert",
        "listen",
        "load",
        "lock",
        "merge",
        "move",
        "notify",
        "prepare",
        "reassign",
        "refresh",
        "reindex",
        "release",
        "reset",
        "revoke",
        "rollback",
        "savepoint",
        "security",
        "set",
        "show",
        "start",
        "truncate",
        "unlisten",
        "update",
        "vacuum",
    ]
)
# SQL comments and blanks before a statement's first word.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


@dataclass(frozen=True)
class QueryResult:
    """What a query returned: column names, at most ``limit`` rows, and whether it had more."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool


class _Rows:
    """The rows kept so far: stops at ``limit`` (one more row tells whether there were more) and at MAX_RESULT_BYTES."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: list[tuple] = []
        self.nbytes = 0
        self.truncated = False
        self.batch = 1  # grows while rows are narrow: a first batch of wide rows must not be large

    def next_batch(self) -> int:
        return min(self.batch, self.limit + 1 - len(self.rows))

    def check_bytes(self, nbytes: int) -> None:
        if self.nbytes + nbytes > MAX_RESULT_BYTES:
            raise StoreError(
                f"query stopped: its result passed {MAX_RESULT_BYTES // 2**20} MiB after "
                f"{len(self.rows)} rows; select fewer or narrower rows (or a lower --limit)"
            )

    def add(self, rows: list, nbytes: int) -> None:
        self.check_bytes(nbytes)
        self.nbytes += nbytes
        keep = rows[: self.limit - len(self.rows)]
        self.truncated = len(keep) < len(rows)
        self.rows.extend(tuple(map(plain, row)) for row in keep)
        width = max(1, nbytes // max(1, len(rows)))
        self.batch = max(1, min(2 * self.batch, _MAX_BATCH, _BATCH_BYTES // width))


def _timed_out(timeout: float) -> StoreError:
    return StoreError(f"query stopped: it ran past --timeout {timeout:g} s")


def _refused(text: str, why: str) -> StoreError:
    return StoreError(f"query refused: {text} ({why})")


# -- SQLite -----------------------------------------------------------------------------------------


def _deny_attach(action, *_args) -> int:
    # ATTACH (and VACUUM INTO, which attaches) would open a second, writable database file.
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _sqlite_bytes(row: tuple) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


def query_sqlite(path: str, sql: str, *, limit: int, timeout: float) -> QueryResult:
    """Run one statement on a SQLite file opened read-only (``mode=ro``): SQLite itself refuses writes."""
    uri = read_only_uri(path)
    deadline = time.monotonic() + timeout
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=min(SQLITE_BUSY_TIMEOUT_S, timeout))
    except sqlite3.Error as exc:
        raise StoreError(f"query failed: cannot open {path} read-only: {reason(exc)}") from exc
    try:
        connection.set_authorizer(_deny_attach)
        # Checked every few thousand virtual-machine steps: interrupts an endless recursive CTE too.
        connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        if hasattr(connection, "setlimit"):  # Python 3.11+: no single value larger than a whole result
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RESULT_BYTES)
        cursor = connection.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        rows = _Rows(limit)
        while cursor.description and not rows.truncated:
            asked = rows.next_batch()
            batch = cursor.fetchmany(asked)
            rows.add(batch, sum(map(_sqlite_bytes, batch)))
            if len(batch) < asked:
                break
        return QueryResult(columns, rows.rows, rows.truncated)
    except sqlite3.Error as exc:
        text = str(exc)
        if text == "interrupted":
            if time.monotonic() > deadline:
                raise _timed_out(timeout) from exc
            # Ctrl-C: its KeyboardInterrupt arose in the progress handler, where SQLite only saw a stop.
            raise KeyboardInterrupt from exc
        if "readonly database" in text or "authoriz" in text:
            raise _refused(reason(exc), "queries are read-only") from exc
        if "string or blob too big" in text:  # our SQLITE_LIMIT_LENGTH
            raise StoreError(f"query stopped: a value of its result passed {MAX_RESULT_BYTES // 2**20} MiB") from exc
        if "one statement at a time" in text:
            raise _refused("more than one statement", "a query is one statement") from exc
        raise StoreError(f"query failed: {reason(exc)}") from exc
    finally:
        connection.close()


# -- PostgreSQL -------------------------------------------------------------------------------------


def query_postgresql(db: Engine, sql: str, *, limit: int, timeout: float) -> QueryResult:
    """Run one SELECT as ``sweeper_reader`` in a read-only transaction, as a cursor read in batches."""
    import psycopg

    search_path = _reader.prepare_reader(db)
    kwargs = _reader.reader_connect_args(db)
    try:
        connection = psycopg.connect(**kwargs)
    except psycopg.Error as exc:
        raise StoreError(
            f"query cannot log in as {_reader.READER}: {reason(exc)}; its password follows the one "
            "in --db: run sweeper db reader --db URL again after a change"
        ) from exc
    deadline = time.monotonic() + timeout
    watchdog = _Watchdog(connection, timeout)
    try:
        connection.read_only = True
        with connection.cursor() as cursor:
            powers = cursor.execute(_reader.POWERS_SQL, {"role": _reader.READER}).fetchone()[0]
            if powers:
                raise StoreError(
                    f"query refused to run: role {_reader.READER} {powers}; reset it to a plain "
                    "reader with: sweeper db reader --db URL"
                )
            settings = {"search_path": search_path, "idle_in_transaction_session_timeout": _ms(timeout)}
            if connection.info.server_version >= 140000:
                # A backend notices a vanished client while a statement runs, not only when it next writes.
                settings["client_connection_check_interval"] = "1000"
            for name, value in settings.items():
                cursor.execute("SELECT set_config(%s, %s, true)", (name, value))
            _arm(cursor, deadline, timeout)
            # One prepared statement: "...; COMMIT; ..." cannot leave the read-only transaction.
            cursor.execute(_DECLARE + sql, prepare=True)
            rows = _Rows(limit)
            columns = None
            while not rows.truncated:
                _arm(cursor, deadline, timeout)
                asked = rows.next_batch()
                cursor.execute(f"FETCH FORWARD {asked} FROM {_CURSOR}")
                if columns is None:
                    columns = [d.name for d in cursor.description or ()]
                result = cursor.pgresult
                nbytes = sum(
                    len(result.get_value(r, c) or b"") for r in range(result.ntuples) for c in range(result.nfields)
                )
                rows.check_bytes(nbytes)  # before psycopg turns the batch into Python objects
                batch = cursor.fetchall()
                rows.add(batch, nbytes)
                if len(batch) < asked:
                    break
            return QueryResult(columns or [], rows.rows, rows.truncated)
    except psycopg.Error as exc:
        if watchdog.fired or exc.sqlstate == "57014" and "statement timeout" in str(exc):
            raise _timed_out(timeout) from exc
        raise _postgresql_error(exc, sql) from exc
    finally:
        watchdog.cancel()
        connection.close()


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


def _arm(cursor, deadline: float, timeout: float) -> None:
    """Set statement_timeout to the time left: each FETCH runs as its own statement, and the user's SQL may
    change the setting for the next one (``set_config``), never for the one already running."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timed_out(timeout)
    cursor.execute("SELECT set_config('statement_timeout', %s, true)", (_ms(left),))


class _Watchdog:
    """Cancels the connection's running statement when the time is up, from a thread of its own."""

    def __init__(self, connection, timeout: float) -> None:
        self.fired = False
        self._connection = connection
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        # The connection may be closing; the server's timeout still holds.
        with contextlib.suppress(Exception):
            self._connection.cancel_safe()

    def cancel(self) -> None:
        self._timer.cancel()


def _postgresql_error(exc, sql: str) -> StoreError:
    state, text = exc.sqlstate, reason(exc)
    if state == "25006":  # read_only_sql_transaction
        return _refused(text, "queries are read-only")
    if state == "42501":  # insufficient_privilege
        return _refused(text, f"queries run as {_reader.READER}, which may read sweeper's and Optuna's tables only")
    if state == "0A000" and "DECLARE CURSOR" in text:  # the cursor's own wording: say it in the user's
        return _refused("a WITH that changes data", _WHAT_RUNS)
    if state == "53400" and "temp_file_limit" in text:  # configuration_limit_exceeded
        return StoreError(f"query stopped: {text} (sweeper db reader --temp-file-limit sets it)")
    if state == "42601":  # syntax_error
        if "multiple commands" in text:
            return _refused("more than one statement", _WHAT_RUNS)
        first = _LEADING.match(sql).end()
        word = re.match(r"\w*", sql[first:])[0]
        position = exc.diag.statement_position
        at_first_word = position is not None and int(position) - 1 - len(_DECLARE) == first
        if at_first_word and word.lower() in _COMMANDS:
            return _refused(f"{word} is not a query", _WHAT_RUNS)
    return StoreError(f"query failed: {text}")
