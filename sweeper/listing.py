"""Flat rows (one dict per row) rendered as a Rich table, CSV or a JSON array."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

from rich.table import Table

from sweeper.records import describe

#: The columns of ``sweeper sweeps`` that say what trained its runs; a table shows them as one ``ran``.
RAN_COLUMNS = ("engine", "device", "cpu", "gpu", "sweeper_version", "torch_version", "host")


class Format(str, Enum):
    """How a listing is printed: a table to read, CSV, or one JSON array for scripts."""

    table = "table"
    csv = "csv"
    json = "json"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, dict)):
        return json.loads(json.dumps(value, default=str))
    return value


def to_json(rows: Sequence[dict]) -> str:
    """One JSON array of flat objects; NaN/inf become null so any JSON parser reads it."""
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], allow_nan=False, default=str)


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                "" if row.get(c) is None else json.dumps(row[c]) if isinstance(row[c], (list, dict)) else row[c]
                for c in columns
            ]
        )
    return out.getvalue()


def ran_in_one_column(rows: Sequence[dict]) -> list[dict]:
    """Rows with RAN_COLUMNS put into one ``ran`` column in words, for a table a terminal can hold."""
    return [{**{k: v for k, v in row.items() if k not in RAN_COLUMNS}, "ran": describe(row)} for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def to_table(rows: Sequence[dict], title: str | None = None, columns: Sequence[str] | None = None) -> Table:
    columns = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    return table
