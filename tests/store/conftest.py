"""Stores on both backends: a SQLite file per test, and a fresh PostgreSQL database per test module."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from sweeper.store import open_store
from sweeper.store.models import Base

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )


@pytest.fixture(scope="module")
def pg_url():
    """A PostgreSQL database created for this test module and dropped after it."""
    admin = _admin_engine()
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server {PG_SERVER} is not reachable: {str(exc.orig).splitlines()[0]}")
    name = f"sweeper_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The URL of an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sweeps.db'}"
        return
    url = request.getfixturevalue("pg_url")
    yield url
    # The module shares one database: leave it empty for the next test.
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def store(db_url):
    with open_store(db_url) as store:
        yield store
