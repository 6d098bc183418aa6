"""Where sweeps are kept: SQLAlchemy tables for sweeps, trials, runs and curves, next to Optuna's study.

Open a store with :func:`open_store` (SQLite by default, PostgreSQL for clusters); every listing comes
back as flat, JSON-friendly rows.
"""

from sweeper.store._lease import Owner
from sweeper.store._query import QueryResult
from sweeper.store._reader import READER, create_reader
from sweeper.store._store import Store, open_store
from sweeper.store._url import default_url, redact

__all__ = ["READER", "Owner", "QueryResult", "Store", "create_reader", "default_url", "open_store", "redact"]
