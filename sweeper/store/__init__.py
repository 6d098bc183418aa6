"""Where sweeps are kept: SQLAlchemy tables for sweeps, trials, runs and curves, next to Optuna's study.

Open a store with :func:`open_store` (SQLite by default, PostgreSQL for clusters); its reads come back as
frozen records (``StoredSweep``, ``SweepSummary``, ``StoredTrial``, ``StoredRun``, ``StoredCurvePoint``),
each also the flat, JSON-friendly row the listings print (``record.row()``).
"""

from sweeper.store._lease import Owner
from sweeper.store._query import QueryResult
from sweeper.store._reader import READER, create_reader
from sweeper.store._store import Store, open_store
from sweeper.store._url import default_url, redact
from sweeper.store._writes import insert_rows
from sweeper.store.records import StoredCurvePoint, StoredRun, StoredSweep, StoredTrial, SweepSummary

__all__ = [
    "READER",
    "Owner",
    "QueryResult",
    "Store",
    "StoredCurvePoint",
    "StoredRun",
    "StoredSweep",
    "StoredTrial",
    "SweepSummary",
    "create_reader",
    "default_url",
    "insert_rows",
    "open_store",
    "redact",
]
