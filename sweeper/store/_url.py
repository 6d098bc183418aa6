"""Database URLs: the default one, the driver we use for PostgreSQL, and a form safe to print."""

from __future__ import annotations

import os
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sweeper.errors import StoreError

DEFAULT_URL = "sqlite:///sweeps.db"
ENV_VAR = "SWEEPER_DB"


def default_url() -> str:
    """The database to use when none is given: ``$SWEEPER_DB``, else ``sweeps.db`` in the working directory."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def redact(url: str) -> str:
    """The URL with its password, if any, replaced by ``***``, whatever the shape of the string: a URL
    SQLAlchemy reads, one it cannot (``u:pw@h/x`` without a scheme, a bad port or IPv6 address), or a
    password given in the query string (``?password=...``)."""
    try:
        if url.count("@") > 1:  # SQLAlchemy splits at the first "@", a password may hold more
            raise ValueError(url)
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # ArgumentError, ValueError (a port that is not a number): not a URL it reads
        shown = _mask_userinfo(url)
    return _SECRET_PARAMETER.sub(r"\1=***", shown)


#: Query parameters of a database URL that hold a secret (libpq's and psycopg's names).
_SECRET_PARAMETER = re.compile(r"\b(password|passwd|pwd|sslpassword|secret|token)=[^&\s]*", re.IGNORECASE)


def _mask_userinfo(url: str) -> str:
    """``user:***@rest``: everything between the user's name and the last ``@`` is taken for a password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, userinfo = head.partition("://")
    prefix = scheme + sep if sep else ""
    userinfo = userinfo if sep else head
    user, colon, _ = userinfo.partition(":")
    return f"{prefix}{user}{':***' if colon else ''}@{tail}" if colon else url


def parse_url(url: str) -> URL:
    """The URL as SQLAlchemy reads it, with ``postgresql://`` mapped to the psycopg 3 driver."""
    if url.partition("://")[2].count("@") > 1:
        # SQLAlchemy would take the rest of the password for the host, and the driver print it.
        raise StoreError(
            f"{redact(url)!r} is not a database URL: it has more than one '@'; write an '@' of the password as %40"
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        why = "" if isinstance(exc, ArgumentError) else " (its host or port cannot be read)"
        raise StoreError(
            f"{redact(url)!r} is not a database URL{why}; expected e.g. {DEFAULT_URL} "
            "or postgresql://user:password@host:5432/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_path(url: URL) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return url.database
