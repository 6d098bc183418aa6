"""Conversions between records (sweeper.records) and table rows, and from rows to JSON-friendly values."""

from __future__ import annotations

import functools
import json
import math
from datetime import date, datetime, time
from decimal import Decimal

import numpy as np

from sweeper import metrics
from sweeper.noise.spec import BASELINE, DECAYS, NoiseConfig, config_label
from sweeper.records import MACHINE_FIELDS, Member, RunResult
from sweeper.seeding import config_json, config_key


def _shared(values: list):
    """The value every site shares; None when they differ or there are none."""
    return values[0] if len(set(values)) == 1 else None


def trial_columns(config: NoiseConfig) -> dict:
    """The columns of a trial: placements (and differing kinds) joined by ``+``; sizes if shared, else NULL."""
    columns = {
        "label": config_label(config),
        "config_json": config_json(config),
        "config_key": config_key(config),
    }
    if not config:
        return {**columns, "placement": BASELINE, "kind": None, "std": None, "schedule": None, "gamma": None}
    kinds = [s.kind for s in config]
    return {
        **columns,
        "placement": "+".join(s.placement for s in config),
        "kind": _shared(kinds) or "+".join(kinds),
        "std": _shared([s.std for s in config]),
        "schedule": _shared([s.schedule for s in config]),
        # gamma means something only under the annealed schedule
        "gamma": _shared([s.gamma for s in config if s.schedule == "annealed"]),
    }


def site_rows(trial_id: int, config: NoiseConfig) -> list[dict]:
    """One row per placement of a configuration, in full; gamma only where the schedule is annealed, std_min
    only where it decays."""
    return [
        {
            "trial_id": trial_id,
            "placement": s.placement,
            "kind": s.kind,
            "std": s.std,
            "schedule": s.schedule,
            "gamma": s.gamma if s.schedule == "annealed" else None,
            "std_min": s.std_min if s.schedule in DECAYS else None,
            "relative": s.relative,
        }
        for s in config
    ]


def finite(value) -> float | None:
    """A float, or None for a missing, NaN or infinite value (SQLite cannot keep NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def run_row(trial_id: int, task: str, member: Member, result: RunResult) -> dict:
    """The ``sweeper_runs`` row of one trained member."""
    return {
        "trial_id": trial_id,
        "task": task,
        "repeat": int(member.repeat),
        "data_seed": int(member.data_seed),
        "init_seed": int(member.init_seed),
        "noise_seed": int(member.noise_seed),
        **{name: finite(result.final.get(name)) for name in metrics.COLUMNS},
        "best_epoch": _optional_int(result.best_epoch),
        **{name: finite(result.final.get(name)) for name in metrics.EARLY_COLUMNS},
        "diverged": bool(result.diverged),
        "diverged_epoch": _optional_int(result.diverged_epoch),
        "failed_to_learn": None if result.failed_to_learn is None else bool(result.failed_to_learn),
        "wall_time": float(result.wall_time),
        "engine": result.engine,
        **_machine(result.machine),
        "device": str(result.device),
    }


@functools.lru_cache(maxsize=16)  # the runs of a pack share one machine: asdict once, not per run
def _machine(machine) -> dict:
    """The machine columns of a run: NULL where the result does not say."""
    if machine is None:
        return {name: None for name in MACHINE_FIELDS if name != "device"}
    return {name: value for name, value in machine.as_dict().items() if name != "device"}


def override_flags(overrides_json: str | None) -> str | None:
    """Stored overrides as the command line gave them: ``--epochs 50 --repeats 2``."""
    if not overrides_json:
        return None
    return " ".join(f"--{key} {value}" for key, value in sorted(json.loads(overrides_json).items()))


#: The columns of a ``sweeper_curves`` row as :func:`curve_values` gives them.
CURVE_COLUMNS = ("run_id", "epoch", *metrics.COLUMNS)


def curve_rows(run_id: int, result: RunResult) -> list[dict]:
    """The ``sweeper_curves`` rows of one run: one per logged epoch, every metric column filled or NULL."""
    return [dict(zip(CURVE_COLUMNS, values)) for values in curve_values(run_id, result)]


def curve_values(run_id: int, result: RunResult) -> list[tuple]:
    """:func:`curve_rows` as tuples in the order of ``CURVE_COLUMNS``: what a bulk insert takes."""
    epochs = np.asarray(result.curve_epochs).astype(int)
    if epochs.size == 0:
        return []
    table = np.full((epochs.size, len(metrics.COLUMNS)), np.nan)  # (logged epochs, metric columns)
    for j, name in enumerate(metrics.COLUMNS):
        if name in result.curves:
            table[:, j] = result.curves[name]
    rows = table.tolist()
    for i, j in zip(*np.nonzero(~np.isfinite(table))):  # NULL: not logged, or NaN/inf (SQLite keeps no NaN)
        rows[i][j] = None
    return [(run_id, epoch, *values) for epoch, values in zip(epochs.tolist(), rows)]


_JSON_TYPES = frozenset({int, float, str, bool, type(None)})


def plain(value):
    """A value as JSON can carry it: numbers, text, booleans, None; times as ISO 8601 text."""
    if type(value) in _JSON_TYPES:
        return value
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value
