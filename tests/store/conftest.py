"""Stores on both backends: a SQLite file per test, and a fresh PostgreSQL database per test module."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sweeper.store import open_store
from sweeper.store.migrations import VERSION_TABLE
from sweeper.store.models import Base


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
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {VERSION_TABLE}")
    engine.dispose()


@pytest.fixture
def store(db_url):
    with open_store(db_url) as store:
        yield store
