"""What the store's reads give back: frozen records of sweeps, trials, runs and curve points.

Like Optuna's ``FrozenTrial``, a record is read by attribute (``run.trial``, ``run.metrics["test_accuracy"]``)
and never changes. Each is also a read-only mapping of the flat row the listings print (``sweeper runs
--format json``), in their column order: ``record.row()`` is that row as a dict, ``record["n_runs"]`` one
of its columns, and a record equals a dict holding the same row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sweeper import metrics

_METRIC_COLUMNS = frozenset(metrics.COLUMNS + metrics.EARLY_COLUMNS)


@dataclass(frozen=True, eq=False)
class _Stored(Mapping):
    """A record and the flat row it was read as (compared, iterated and indexed as that row)."""

    _row: dict = field(repr=False)

    @classmethod
    def of(cls, row: dict):
        """The record of a flat row; the fields it does not name stay in the row only."""
        named = {f.name for f in fields(cls)} - {"_row"}
        return cls(_row=row, **{name: row.get(name) for name in named})

    def row(self) -> dict:
        """The flat row, as the listings print it (a new dict)."""
        return dict(self._row)

    def __getitem__(self, key: str) -> Any:
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


@dataclass(frozen=True, eq=False)
class StoredSweep(_Stored):
    """A sweep as stored: the file it was started from, its settings, the lease, what drove it."""

    id: int
    name: str
    spec_yaml: str
    overrides: dict  # the command line's (repeats, epochs, name); {} when none
    seed: int
    metric: str  # what it selects on
    higher_is_better: bool
    repeats: int
    problem: str
    status: str
    study_name: str
    created_at: datetime | str | None
    updated_at: datetime | str | None
    finished_at: datetime | str | None
    device: str | None
    data_files: dict | None  # what its tasks' data files held (schema 0005)
    context: dict | None  # what the report shows besides the runs (schema 0006); None before
    lease_token: str | None
    lease_host: str | None
    lease_pid: int | None
    lease_since: datetime | str | None
    lease_heartbeat_at: datetime | str | None
    sweeper_version: str | None
    torch_version: str | None
    cpu: str | None
    gpu: str | None
    host: str | None


@dataclass(frozen=True, eq=False)
class SweepSummary(_Stored):
    """One line of ``sweeper sweeps``: a sweep with its counts and what trained its runs (each the distinct
    values over them, comma-separated)."""

    name: str
    status: str
    problem: str
    metric: str
    higher_is_better: bool
    seed: int
    repeats: int
    overrides: str | None  # as flags: ``--epochs 50 --repeats 2``
    n_trials: int
    n_runs: int
    created_at: datetime | str | None
    finished_at: datetime | str | None
    engine: str | None
    sweeper_version: str | None
    torch_version: str | None
    device: str | None
    cpu: str | None
    gpu: str | None
    host: str | None


@dataclass(frozen=True, eq=False)
class StoredTrial(_Stored):
    """A trial (one configuration) of a sweep with its run counts and objective."""

    sweep: str
    trial: int  # its number; 0 is the baseline
    label: str
    placement: str
    kind: str | None  # None where its sites differ
    std: float | None
    schedule: str | None
    gamma: float | None
    params: list[dict]  # each site's noise, as NoiseSpec.as_dict gives it; [] for the baseline
    status: str
    n_runs: int
    n_diverged: int
    n_failed_to_learn: int
    objective: float | None
    optuna_trial_id: int | None


@dataclass(frozen=True, eq=False)
class StoredRun(_Stored):
    """A run (a trial's configuration, on one task, at one repeat): its seeds, metrics and what trained it."""

    sweep: str
    trial: int
    task: str
    repeat: int
    label: str
    placement: str
    kind: str | None
    std: float | None
    schedule: str | None
    gamma: float | None
    data_seed: int
    init_seed: int
    noise_seed: int
    best_epoch: int | None
    diverged: bool
    diverged_epoch: int | None
    failed_to_learn: bool | None
    wall_time: float | None
    device: str | None
    engine: str | None
    sweeper_version: str | None
    torch_version: str | None
    cpu: str | None
    gpu: str | None
    host: str | None
    #: The problem's final metrics and those at the best validation epoch (``early_*``) by name.
    metrics: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def of(cls, row: dict) -> StoredRun:
        named = {f.name for f in fields(cls)} - {"_row", "metrics"}
        found = {k: v for k, v in row.items() if k in _METRIC_COLUMNS}
        return cls(_row=row, metrics=found, **{name: row.get(name) for name in named})


@dataclass(frozen=True, eq=False)
class StoredCurvePoint(_Stored):
    """One logged epoch of a run: its problem's metrics then."""

    sweep: str
    trial: int
    task: str
    repeat: int
    epoch: int
    metrics: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def of(cls, row: dict) -> StoredCurvePoint:
        named = {f.name for f in fields(cls)} - {"_row", "metrics"}
        found = {k: v for k, v in row.items() if k not in named}
        return cls(_row=row, metrics=found, **{name: row.get(name) for name in named})
