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
    """The URL with its password, if any, replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not a URL SQLAlchemy can read; still never echo what looks like a password.
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def parse_url(url: str) -> URL:
    """The URL as SQLAlchemy reads it, with ``postgresql://`` mapped to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{redact(url)!r} is not a database URL; expected e.g. {DEFAULT_URL} "
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
