"""The lease of a sweep: one ``sweeper run`` owns a sweep at a time, and shows it is alive by a heartbeat.

The lease is a few columns of the sweep's row: a random token, the owner's host and pid, since when
it holds the sweep, and its last heartbeat. Taking it is one conditional UPDATE (the lease is free,
already ours, or its heartbeat stopped STALE_S ago), so of two runs that try at once exactly one gets
it. Times are the database's clock, never a host's, so hosts whose clocks disagree judge a heartbeat's
age alike. An owner on this host whose process is gone (killed) is taken over at once.

The owner renews the heartbeat every HEARTBEAT_S from a thread with a connection of its own. One that
cannot renew it for GIVE_UP_S (less than STALE_S) stops, so it has stopped before another run may take
the sweep over: two runs never train the same sweep at once.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import create_engine, event, func, literal, or_, select, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from sweeper.errors import LeaseError
from sweeper.store import _connection
from sweeper.store.models import Sweep

#: Seconds between heartbeats.
HEARTBEAT_S = 5.0
#: A lease whose heartbeat is this many seconds old (by the database's clock) may be taken over.
STALE_S = 60.0
#: An owner that could not renew its heartbeat for this long stops: well before STALE_S, so that it
#: stops before anyone may take the sweep over, even with a write or a slow database in between.
GIVE_UP_S = 40.0


@dataclass(frozen=True)
class Owner:
    """Who holds (or asks for) a lease: a token of its own, and the host and process it runs in."""

    token: str
    host: str
    pid: int

    @classmethod
    def here(cls) -> Owner:
        """A new owner: this process on this host, with a fresh random token."""
        return cls(secrets.token_hex(16), socket.gethostname(), os.getpid())


@dataclass(frozen=True)
class Holder:
    """A lease as the database has it: the owner's token, host and pid, since when, heartbeat age (s)."""

    token: str
    host: str | None
    pid: int | None
    since: datetime | None
    heartbeat_age: float | None

    def is_gone(self, owner: Owner) -> bool:
        """Whether the holder is a process of ``owner``'s host that has ended (killed, say)."""
        return self.host == owner.host and self.pid is not None and not _alive(self.pid)

    def describe(self) -> str:
        """``host H (pid P) since T, heartbeat N s ago``."""
        since = f" since {self.since.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if self.since is not None else ""
        age = f", heartbeat {self.heartbeat_age:.0f} s ago" if self.heartbeat_age is not None else ""
        return f"host {self.host or '?'} (pid {self.pid if self.pid is not None else '?'}){since}{age}"


def why_gone(host: str | None, pid: int | None, heartbeat_age: float | None) -> str | None:
    """Why the run that holds a running sweep is gone (None while it looks alive): no run holds the
    lease, the holder's process on this host has ended, or its heartbeat stopped STALE_S ago."""
    if host is None:
        return "no run holds it"
    if host == socket.gethostname() and pid is not None and not _alive(pid):
        return f"its run (pid {pid} on this host) has ended"
    if heartbeat_age is None or heartbeat_age > STALE_S:
        ago = f" {heartbeat_age:.0f} s ago" if heartbeat_age is not None else ""
        return f"its run's heartbeat (host {host}, pid {pid}) stopped{ago}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except (OverflowError, ValueError):  # not a pid of this system
        return False
    return True


def now(dialect: str):
    """The database's current time, as a value to store in a timestamp column."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now")  # UTC, milliseconds
    return func.now()


def heartbeat_age(dialect: str):
    """Seconds since the lease's last heartbeat, by the database's clock (NULL without a lease)."""
    if dialect == "sqlite":
        return (func.julianday("now") - func.julianday(Sweep.lease_heartbeat_at)) * 86400.0
    return func.extract("epoch", func.now() - Sweep.lease_heartbeat_at)


def held_by(owner: Owner | None, dialect: str) -> dict:
    """The values of the lease columns that give the lease to ``owner`` (None: release it)."""
    if owner is None:
        return dict(lease_token=None, lease_host=None, lease_pid=None, lease_since=None, lease_heartbeat_at=None)
    return dict(
        lease_token=owner.token,
        lease_host=owner.host,
        lease_pid=owner.pid,
        lease_since=now(dialect),
        lease_heartbeat_at=now(dialect),
    )


def takeable(owner: Owner, dialect: str):
    """The condition under which ``owner`` may take a sweep's lease: free, its own, or its heartbeat stale."""
    return or_(Sweep.lease_token.is_(None), Sweep.lease_token == owner.token, heartbeat_age(dialect) > literal(STALE_S))


def holder(connection, sweep_id: int) -> Holder | None:
    """The sweep's lease as the database has it now; None when it is free."""
    dialect = connection.dialect.name
    row = connection.execute(
        select(Sweep.lease_token, Sweep.lease_host, Sweep.lease_pid, Sweep.lease_since, heartbeat_age(dialect)).where(
            Sweep.id == sweep_id
        )
    ).first()
    if row is None or row[0] is None:
        return None
    return Holder(row[0], row[1], row[2], row[3], None if row[4] is None else max(0.0, float(row[4])))


def take(connection, sweep_id: int, owner: Owner, *conditions, **values) -> Holder | None:
    """Give ``owner`` the sweep's lease, setting ``values`` too in the same UPDATE; None if it got it,
    else the holder that keeps it (or an empty Holder if ``conditions`` on the sweep's row did not hold).

    Taken when it is free, already ``owner``'s, stale, or held by a process of this host that has ended.
    """
    dialect = connection.dialect.name
    statement = update(Sweep).where(Sweep.id == sweep_id, *conditions).values(**held_by(owner, dialect), **values)
    current = None
    for _ in range(3):  # the lease may change hands between the statements: look again
        if connection.execute(statement.where(takeable(owner, dialect))).rowcount == 1:
            return None
        current = holder(connection, sweep_id)
        if current is None:
            continue
        if not current.is_gone(owner):
            return current
        # Compare-and-set on the token seen: of two runs taking over a killed one, one wins.
        if connection.execute(statement.where(Sweep.lease_token == current.token)).rowcount == 1:
            return None
    return current if current is not None else Holder("", None, None, None, None)  # it kept changing hands


def busy(name: str, current: Holder) -> LeaseError:
    """The one line that refuses a sweep another run holds."""
    return LeaseError(
        f"sweep {name!r} is being run by {current.describe()}; wait for it to finish, or stop it "
        f"(a lease whose heartbeat stopped for {STALE_S:.0f} s is taken over)"
    )


class Heartbeat:
    """Renews an owner's lease every HEARTBEAT_S from a daemon thread, over a connection of its own.

    When the lease is lost (another run took it over, or the database could not be reached for
    GIVE_UP_S) ``lost`` says why, and ``on_lost`` (if given) is called once, from the thread;
    :meth:`check` then raises LeaseError in the thread that drives the sweep, which calls it before each
    write and between the chunks of a pack in training.
    """

    def __init__(
        self,
        url: URL,
        sweep_id: int,
        name: str,
        owner: Owner,
        *,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sweep_id, self.name, self.owner = sweep_id, name, owner
        self.lost: str | None = None
        self._on_lost, self._clock = on_lost, clock
        self._last_renewed = clock()  # the lease was taken just now
        self._failure: str | None = None
        self._stop = threading.Event()
        self._db = _heartbeat_db(url)
        self._thread = threading.Thread(target=self._run, name=f"sweeper lease {name}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self._db.dispose()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S) and self.lost is None:
            self.beat()

    def beat(self) -> None:
        """Renew the heartbeat once; after failures for GIVE_UP_S, or if another run holds it, it is lost."""
        sent = self._clock()  # the database stamps a time after this: the lease lasts at least until then
        statement = (
            update(Sweep)
            .where(Sweep.id == self.sweep_id, Sweep.lease_token == self.owner.token)
            .values(lease_heartbeat_at=now(self._db.dialect.name))
        )
        try:
            with self._db.begin() as connection:
                renewed = connection.execute(statement).rowcount == 1
        except SQLAlchemyError as exc:
            self._failure = _connection.reason(exc, self._db.url)
            self.check_time()
            return
        if not renewed:
            self._lose("another run took it over")
            return
        self._last_renewed, self._failure = sent, None

    def check_time(self) -> None:
        """Lose the lease once it went GIVE_UP_S without a renewal."""
        silent = self._clock() - self._last_renewed
        if self.lost is None and silent > GIVE_UP_S:
            why = f": {self._failure}" if self._failure else ""
            self._lose(f"its heartbeat could not be written for {silent:.0f} s{why}")

    def check(self) -> None:
        """LeaseError if the lease is lost (call it before each write and between packs)."""
        self.check_time()
        if self.lost is not None:
            raise LeaseError(
                f"sweep {self.name!r}: stopped, its lease is lost ({self.lost}), so another run may "
                "take it over; finished packs are stored; run the same command to resume"
            )

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
            if self._on_lost is not None:
                self._on_lost()


#: The longest one heartbeat may wait for the database (to connect, for a lock, for an answer), so that a
#: heartbeat failing since just before GIVE_UP_S is known lost well before STALE_S.
BEAT_TIMEOUT_S = 5


def _heartbeat_db(url: URL) -> Engine:
    """A pool of one connection that never waits long: a hung heartbeat would hide a lost database."""
    if url.get_backend_name() == "sqlite":
        db = create_engine(url, pool_size=1)
        event.listen(db, "connect", _connection._sqlite_pragmas)
        event.listen(db, "connect", _short_busy_timeout)  # after the store's own pragmas
        return db
    given = url.query.get("options")  # the URL's own (a search_path, say) are kept
    options = " ".join(
        filter(None, [given if isinstance(given, str) else None, f"-c statement_timeout={BEAT_TIMEOUT_S * 1000}"])
    )
    connect_args = {
        "connect_timeout": BEAT_TIMEOUT_S,
        "options": options,
        "keepalives": 1,
        "keepalives_idle": BEAT_TIMEOUT_S,
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }
    return create_engine(url, pool_size=1, pool_pre_ping=True, connect_args=connect_args)


def _short_busy_timeout(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BEAT_TIMEOUT_S * 1000}")
    cursor.close()
