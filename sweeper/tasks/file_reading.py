"""A user's data file read within bounds: its bytes, then a table (CSV, TSV, Parquet) or arrays (.npz).

Every size a file declares (bytes, rows, columns, an array's shape) is checked against the limits below
before memory is spent on it, and nothing read from a file reaches a message but a bounded, printable name.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweeper.errors import TaskError

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npz",)
#: A numeric target with at most this many distinct values, all whole numbers, is taken for class
#: labels; any other numeric target for a regression target (``problem:`` says otherwise).
MAX_INFERRED_CLASSES = 10
#: Rows a file may hold: sweeper is for small data, and every repeat encodes it in memory.
MAX_ROWS = 1_000_000
#: Bytes a data file may hold, checked before it is read (a table of MAX_ROWS rows of a few numbers fits).
MAX_FILE_BYTES = 128 << 20
#: Values one sample may hold once encoded (a table's columns after one-hot encoding, an array's sample).
MAX_FEATURES = 100_000
#: Floats the encoded features of a file may hold in all (rows x features): 8 GB as float64 is far beyond
#: "small data", and every repeat encodes them again.
MAX_VALUES = 250_000_000
#: The largest magnitude a feature or regression target may have: sweeper trains in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _read_bytes(path: Path, label: str) -> bytes:
    """The file's bytes: a regular file of at most MAX_FILE_BYTES, its size checked before it is read."""
    from sweeper.regular_files import read_regular

    return read_regular(path, MAX_FILE_BYTES, label, TaskError, "data file")


def read_table(path: Path, label: str) -> tuple[pd.DataFrame, str]:
    """The table of a CSV, TSV or Parquet file, and the sha256 of the bytes it was parsed from."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TaskError(
            f"{label}: {suffix or 'no suffix'} is not a data file sweeper reads; allowed: "
            f"{', '.join(TABLE_SUFFIXES + ARRAY_SUFFIXES)}"
        )
    raw = _read_bytes(path, label)
    sep = "\t" if suffix == ".tsv" else ","
    try:
        if suffix in (".parquet", ".pq"):
            _check_parquet_metadata(raw, label)
            table = pd.read_parquet(io.BytesIO(raw))
            header = list(table.columns)
        else:
            # The header as written: pandas renames a second "outcome" to "outcome.1", which would then
            # be a feature holding the target.
            header = list(pd.read_csv(io.BytesIO(raw), sep=sep, header=None, nrows=1, dtype=str).iloc[0])
            table = pd.read_csv(io.BytesIO(raw), sep=sep)
    except TaskError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many kinds; each means "not such a file"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TaskError(f"{label}: cannot be read as {suffix[1:].upper()}: {printable(first, 120)}") from None
    if len(table) > MAX_ROWS:
        raise TaskError(f"{label}: {len(table):,} rows; allowed: at most {MAX_ROWS:,}")
    if not all(isinstance(c, str) for c in table.columns):
        raise TaskError(f"{label}: column names must be text (a header row); got {listed(table.columns)}")
    seen = set()
    for name in (n for n in header if isinstance(n, str)):  # a blank header cell is pandas' "Unnamed: i"
        if name in seen:
            raise TaskError(
                f"{label}: two columns are named {column_name(name)}; allowed: one column per name (rename one)"
            )
        seen.add(name)
    if len(table) == 0:
        raise TaskError(f"{label}: holds no rows (a header only); allowed: at least one row")
    return table, hashlib.sha256(raw).hexdigest()


def read_arrays(path: Path, label: str) -> tuple[np.ndarray, np.ndarray, str]:
    """X (N, ...) and y (N,) of a ``.npz`` file, and the sha256 of its bytes."""
    raw = _read_bytes(path, label)
    declared = _declared_arrays(raw, label)
    if "X" not in declared or "y" not in declared:
        raise TaskError(f"{label}: needs arrays X (samples) and y (targets); it holds {listed(declared) or 'none'}")
    (x_shape, x_type), (y_shape, y_type) = declared["X"], declared["y"]
    if len(x_shape) < 2 or len(y_shape) != 1 or x_shape[0] != y_shape[0]:
        raise TaskError(f"{label}: X must be (N, ...) and y (N,); got X {x_shape} and y {y_shape}")
    n, features = x_shape[0], math.prod(x_shape[1:])
    if n == 0:
        raise TaskError(f"{label}: X and y hold no samples; allowed: at least one")
    if n > MAX_ROWS:
        raise TaskError(f"{label}: {n:,} samples; allowed: at most {MAX_ROWS:,}")
    if features > MAX_FEATURES or n * features > MAX_VALUES:
        raise TaskError(
            f"{label}: X is {x_shape}, {features:,} values per sample and {n * features:,} in all; allowed: at "
            f"most {MAX_FEATURES:,} per sample and {MAX_VALUES:,} in all"
        )
    for key, kind in (("X", x_type), ("y", y_type)):
        numbers = np.issubdtype(kind, np.number) or kind == np.bool_
        if kind.hasobject or not (numbers or (key == "y" and kind.kind in "US")):
            allowed = "numbers or text labels" if key == "y" else "numbers"
            raise TaskError(f"{label}: {key} holds {kind} values; allowed: {allowed}")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            x, y = npz["X"], npz["y"]  # only these: other members are never decompressed
    except Exception as exc:  # a damaged member
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TaskError(f"{label}: cannot be read as NumPy .npz: {printable(first, 120)}") from None
    bad = ~np.isfinite(x.reshape(len(x), -1).astype(np.float64)).all(axis=1)
    if bad.any():
        raise TaskError(
            f"{label}: X has missing or infinite values in {int(bad.sum())} samples "
            f"(first: sample {int(np.argmax(bad))}); allowed: finite numbers"
        )
    big = (np.abs(x.reshape(len(x), -1).astype(np.float64)) > FLOAT32_MAX).any(axis=1)
    if big.any():
        raise TaskError(
            f"{label}: X has values beyond float32's range in {int(big.sum())} samples (first: sample "
            f"{int(np.argmax(big))}); allowed: numbers of magnitude at most {FLOAT32_MAX:.3g} "
            "(sweeper trains in float32)"
        )
    x.setflags(write=False)
    return x, y, hashlib.sha256(raw).hexdigest()


def _check_parquet_metadata(raw: bytes, label: str) -> None:
    """Refuses a Parquet file whose footer declares more rows or columns than allowed, or more bytes
    uncompressed than MAX_VALUES float64s, before any of its data is decompressed."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    if meta.num_rows > MAX_ROWS:
        raise TaskError(f"{label}: {meta.num_rows:,} rows; allowed: at most {MAX_ROWS:,}")
    if meta.num_columns > MAX_FEATURES:
        raise TaskError(f"{label}: {meta.num_columns:,} columns; allowed: at most {MAX_FEATURES:,}")
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > 8 * MAX_VALUES:
        raise TaskError(
            f"{label}: {size / (1 << 30):.1f} GiB uncompressed; allowed: at most {8 * MAX_VALUES / (1 << 30):.1f} GiB"
        )


def _declared_arrays(raw: bytes, label: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array of a ``.npz`` as its member's header declares it (shape, dtype), read without loading
    or decompressing its data: what a file may say it holds is checked before memory is spent on it."""
    import zipfile

    from numpy.lib import format as npy

    declared = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = npy.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = npy.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = npy.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"array format version {version} is not one NumPy writes for .npz")
                declared[info.filename.removesuffix(".npy")] = (tuple(shape), np.dtype(dtype))
    except Exception as exc:  # not a zip, a damaged header
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TaskError(f"{label}: cannot be read as NumPy .npz: {printable(first, 120)}") from None
    return declared


def listed(names) -> str:
    names = [printable(n) for n in names]
    return ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")


def printable(name, width: int = 40) -> str:
    """A name read from a user's file, as a message may show it: printable characters only, at most
    ``width`` of them (a file's first line is never echoed whole)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name)[: width + 1])
    return text if len(text) <= width else text[: width - 3] + "..."


def column_name(name) -> str:
    return repr(printable(name))


def shown(value) -> str:
    return printable(repr(value.item() if hasattr(value, "item") else value))
