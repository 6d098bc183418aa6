"""The store's reads: sweeps, trials, runs and curves as frozen records (``records``), and what a resumed
sweep needs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import case, func, select

from sweeper import metrics
from sweeper.records import MACHINE_FIELDS, TrialRef, stored_config
from sweeper.store import _lease, _rows
from sweeper.store.models import Curve, Run, Sweep, Trial, utcnow
from sweeper.store.records import StoredCurvePoint, StoredRun, StoredSweep, StoredTrial, SweepSummary


class Reads:
    """The reading half of :class:`sweeper.store.Store` (which gives it ``_session`` and ``_sweep_by_name``)."""

    def done_runs(self, sweep_id: int) -> set[tuple[int, str, int]]:
        """The (trial number, task, repeat) of every run the sweep has stored."""
        statement = select(Trial.number, Run.task, Run.repeat).join_from(Run, Trial)
        statement = statement.where(Trial.sweep_id == sweep_id)
        with self._session() as session:
            return {tuple(row) for row in session.execute(statement)}

    def trial_curves(self, sweep_id: int, numbers: Sequence[int], metric: str) -> list[tuple[int, int, float | None]]:
        """(trial number, epoch, value of ``metric``) of every logged epoch of these trials' runs."""
        if not numbers:
            return []
        statement = (
            select(Trial.number, Curve.epoch, getattr(Curve, metric))
            .join(Run, Curve.run_id == Run.id)
            .join(Trial, Run.trial_id == Trial.id)
            .where(Trial.sweep_id == sweep_id, Trial.number.in_(list(numbers)))
        )
        with self._session() as session:
            return [tuple(row) for row in session.execute(statement)]

    def sweeps(self) -> list[SweepSummary]:
        """One row per sweep, oldest first: how many trials and runs it has (and plans), its overrides, what
        trained its runs (each column the distinct values over them, comma-separated), and for a running
        sweep its rate over the last minute, ETA, lease holder and heartbeat, and whether the holder is gone.

        The rate counts the runs stored in the last ``RATE_WINDOW_S`` by this host's clock (runs are
        stamped by their writer's); the heartbeat's age is the database's clock, as the lease judges it."""
        n_trials = select(func.count(Trial.id)).where(Trial.sweep_id == Sweep.id).scalar_subquery()
        n_runs = select(func.count(Run.id)).join(Trial).where(Trial.sweep_id == Sweep.id).scalar_subquery()
        since = utcnow() - timedelta(seconds=RATE_WINDOW_S)
        recent = (
            select(func.count(Run.id))
            .join(Trial)
            .where(Trial.sweep_id == Sweep.id, Run.created_at >= since)
            .scalar_subquery()
        )
        statement = select(
            Sweep.id,
            Sweep.name,
            Sweep.status,
            Sweep.problem,
            Sweep.metric,
            Sweep.higher_is_better,
            Sweep.seed,
            Sweep.repeats,
            Sweep.overrides,
            n_trials.label("n_trials"),
            n_runs.label("n_runs"),
            Sweep.created_at,
            Sweep.finished_at,
            Sweep.context,
            Sweep.lease_host,
            Sweep.lease_pid,
            recent.label("recent"),
        ).order_by(Sweep.created_at, Sweep.id)
        ran = [Run.engine, *(getattr(Run, name) for name in MACHINE_FIELDS)]
        with self._session() as session:
            age = _lease.heartbeat_age(session.get_bind().dialect.name).label("age")
            rows = _plain_rows(session.execute(statement.add_columns(age)))
            distinct = session.execute(select(Trial.sweep_id, *ran).join_from(Run, Trial).distinct()).all()
        for row in rows:
            sweep_id = row.pop("id")
            row["overrides"] = _rows.override_flags(row["overrides"])
            _progress(row)
            mine = [values for sweep, *values in distinct if sweep == sweep_id]
            for i, column in enumerate(ran):
                row[column.key] = ", ".join(sorted({str(v[i]) for v in mine if v[i] is not None})) or None
        return [SweepSummary.of(row) for row in rows]

    def sweep(self, sweep_name: str) -> StoredSweep:
        """The sweep's row, with the search-space YAML it was started from and its overrides (a dict)."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            columns = Sweep.__table__.columns.keys()
            row = {key: _rows.plain(getattr(sweep, key)) for key in columns}
        row["overrides"] = json.loads(row["overrides"]) if row["overrides"] else {}
        row["data_files"] = json.loads(row["data_files"]) if row["data_files"] else None
        row["context"] = json.loads(row["context"]) if row["context"] else None
        return StoredSweep.of(row)

    def trials(self, sweep_name: str) -> list[StoredTrial]:
        """One row per trial of the sweep, by number, with its noise, run counts (all, diverged, failed to
        learn) and objective."""
        counts = (
            select(
                Run.trial_id,
                func.count(Run.id).label("n_runs"),
                func.sum(case((Run.diverged, 1), else_=0)).label("n_diverged"),
                func.sum(case((Run.failed_to_learn, 1), else_=0)).label("n_failed_to_learn"),
            )
            .group_by(Run.trial_id)
            .subquery()
        )
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            statement = (
                select(
                    Trial.number.label("trial"),
                    *_noise_columns(),
                    Trial.config_json.label("params"),
                    Trial.status,
                    func.coalesce(counts.c.n_runs, 0).label("n_runs"),
                    func.coalesce(counts.c.n_diverged, 0).label("n_diverged"),
                    func.coalesce(counts.c.n_failed_to_learn, 0).label("n_failed_to_learn"),
                    Trial.objective,
                    Trial.optuna_trial_id,
                )
                .outerjoin(counts, counts.c.trial_id == Trial.id)
                .where(Trial.sweep_id == sweep.id)
                .order_by(Trial.number)
            )
            rows = _plain_rows(session.execute(statement), sweep=sweep_name)
        for row in rows:
            row["params"] = json.loads(row["params"])
        return [StoredTrial.of(row) for row in rows]

    def trial_refs(self, sweep_name: str) -> list[TrialRef]:
        """The sweep's trials by number, as records with their configurations (for programs; listings
        are :meth:`trials`)."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            statement = (
                select(Trial.id, Trial.number, Trial.optuna_trial_id, Trial.config_json)
                .where(Trial.sweep_id == sweep.id)
                .order_by(Trial.number)
            )
            rows = session.execute(statement).all()
        return [
            TrialRef(trial_id, number, optuna_id, stored_config(json.loads(text)))
            for trial_id, number, optuna_id, text in rows
        ]

    def runs(self, sweep_name: str) -> list[StoredRun]:
        """One row per run of the sweep (by trial, task, repeat): its noise, seeds, final metrics and what
        trained it."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            statement = _per_run(
                sweep.id,
                *_noise_columns(),
                Run.data_seed,
                Run.init_seed,
                Run.noise_seed,
                *_metric_columns(Run, sweep.problem),
                Run.best_epoch,
                *_early_columns(sweep.problem),
                Run.diverged,
                Run.diverged_epoch,
                Run.failed_to_learn,
                Run.wall_time,
                Run.device,
                Run.engine,
                *(getattr(Run, name) for name in MACHINE_FIELDS if name != "device"),
            )
            return [StoredRun.of(row) for row in _plain_rows(session.execute(statement), sweep=sweep_name)]

    def outcomes(self, sweep_name: str, metric: str) -> list[dict]:
        """What a verdict reads of each run, as :meth:`runs` gives it (by trial, task, repeat): the bare
        ``metric`` on the test and training parts, divergence and failure to learn; plain dicts, for the
        end of a sweep, where reading every column of every run was a tenth of the driver's time."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            names = [f"{part}_{metric}" for part in ("test", "train") if f"{part}_{metric}" in metrics.COLUMNS]
            columns = (getattr(Run, name) for name in names)
            return _plain_rows(session.execute(_per_run(sweep.id, *columns, Run.diverged, Run.failed_to_learn)))

    def curves(self, sweep_name: str) -> list[StoredCurvePoint]:
        """One row per logged epoch of every run of the sweep, with the metrics of its problem."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            statement = (
                select(
                    Trial.number.label("trial"),
                    Run.task,
                    Run.repeat,
                    Curve.epoch,
                    *_metric_columns(Curve, sweep.problem),
                )
                .join(Run, Curve.run_id == Run.id)
                .join(Trial, Run.trial_id == Trial.id)
                .where(Trial.sweep_id == sweep.id)
                .order_by(Trial.number, Run.task, Run.repeat, Curve.epoch)
            )
            return [StoredCurvePoint.of(row) for row in _plain_rows(session.execute(statement), sweep=sweep_name)]


#: The window of ``sweeper sweeps``' rate: runs stored in the last minute.
RATE_WINDOW_S = 60.0


def _progress(row: dict) -> None:
    """``runs_planned`` and, for a running sweep, its rate, ETA and holder, from the columns read for them."""
    context = json.loads(row.pop("context")) if row["context"] else None
    recent, host, pid, age = (row.pop(key) for key in ("recent", "lease_host", "lease_pid", "age"))
    planned = context["planned"] * context["repeats"] * len(context["tasks"]) if context else None
    row["runs_planned"] = planned
    live = dict.fromkeys(("runs_per_second", "eta_seconds", "lease_host", "lease_pid", "heartbeat_age_s"))
    live.update(holder_alive=None, note=None)
    if row["status"] == "running":
        rate = recent / RATE_WINDOW_S
        gone = _lease.why_gone(host, pid, None if age is None else max(0.0, float(age)))
        live.update(
            runs_per_second=round(rate, 3),
            eta_seconds=(
                round((planned - row["n_runs"]) / rate, 1) if planned is not None and rate > 0 and not gone else None
            ),
            lease_host=host,
            lease_pid=pid,
            heartbeat_age_s=None if age is None else round(max(0.0, float(age)), 1),
            holder_alive=gone is None,
        )
        if gone is not None:
            again = f"sweeper run FILE {row['overrides'] or ''}".rstrip()
            live["note"] = f"stopped: {gone}; resume it with the command that started it ({again})"
    row.update(live)


def _per_run(sweep_id: int, *columns):
    """The sweep's runs, one row each by (trial number, task, repeat), keyed by those and ``columns``."""
    statement = select(Trial.number.label("trial"), Run.task, Run.repeat, *columns).join_from(Run, Trial)
    return statement.where(Trial.sweep_id == sweep_id).order_by(Trial.number, Run.task, Run.repeat)


def _noise_columns() -> tuple:
    """The trial's label and noise columns, as every listing shows them."""
    return (Trial.label, Trial.placement, Trial.kind, Trial.std, Trial.schedule, Trial.gamma)


def _metric_columns(model, problem: str) -> list:
    return [getattr(model, name) for name in metrics.columns(problem)]


def _early_columns(problem: str) -> list:
    """A run's metrics at its best validation epoch, for the problem's metrics."""
    early = [metrics.EARLY_PREFIX + name for name in metrics.columns(problem)]
    return [getattr(Run, name) for name in early if name in metrics.EARLY_COLUMNS]


def _plain_rows(result, **first) -> list[dict]:
    """Result rows as dicts of JSON-friendly values, each opening with the ``first`` items."""
    keys = list(result.keys())
    return [{**first, **dict(zip(keys, map(_rows.plain, row)))} for row in result]
