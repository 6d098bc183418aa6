"""The store: where sweeps, trials, runs and curves are written and read back as flat rows."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import yaml
from sqlalchemy import bindparam, case, delete, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from sweeper import metrics
from sweeper.errors import LeaseError, StoreError
from sweeper.noise.spec import NoiseConfig, make_config
from sweeper.records import MACHINE_FIELDS, Machine, Member, RunResult, TrialRef, stored_config
from sweeper.store import _connection, _lease, _query, _rows, _schema
from sweeper.store._lease import Owner
from sweeper.store._query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, QueryResult
from sweeper.store._url import default_url, parse_url, redact, sqlite_path
from sweeper.store.models import (
    PROBLEMS,
    SWEEP_STATUSES,
    Curve,
    Run,
    Sweep,
    Trial,
    TrialSite,
    utcnow,
)


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open the database at ``url``; for writing (``create``), with sweeper's tables created or upgraded.

    Without a URL: ``$SWEEPER_DB``, else ``sqlite:///sweeps.db``. ``postgresql://`` uses psycopg 3.
    With ``create=False`` nothing is written: a SQLite file must exist, and reading sweeper's tables
    is refused (StoreError, one line) unless they are at this version's schema.
    """
    parsed = parse_url(url or default_url())
    path = sqlite_path(parsed)
    if not create and path is not None and not os.path.exists(path):
        raise StoreError(
            f"no database at {redact(str(url or default_url()))}; run a sweep first (sweeper run FILE --db ...)"
        )
    if not create and path is None and parsed.get_backend_name() == "sqlite":
        raise StoreError(
            f"{redact(str(url or default_url()))} is a database in memory, which holds no sweeps; allowed: "
            "a database file (sqlite:///sweeps.db) or PostgreSQL"
        )
    db = _connection.connect(parsed)
    store = Store(db)
    if create:
        try:
            store.upgrade_schema()
        except StoreError:
            db.dispose()
            raise
    return store


class Store:
    """Sweeps, trials, runs and curves in one SQL database (which also holds Optuna's study tables)."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._schema_checked = False

    @property
    def url(self) -> str:
        """The full URL, password included: for Optuna's ``RDBStorage``, never for printing."""
        return self._db.url.render_as_string(hide_password=False)

    @property
    def display_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact(self._db.url.render_as_string(hide_password=False))

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Create sweeper's tables, or upgrade them to this version's schema: the revisions before and after.

        None before: the database had no sweeper tables. StoreError if it was written by a newer sweeper.
        """
        revisions = _schema.upgrade(self._db, self.display_url)
        self._schema_checked = True
        return revisions

    def optuna_storage(self):
        """Optuna's storage on this database (an ``RDBStorage``), its tables created under the schema lock.

        Optuna creates its tables and stamps its own version table when its storage first opens a
        database; two processes doing that at once can both try, and one fails.
        """
        from optuna.storages import RDBStorage

        kwargs = {}
        if self._db.url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {
                "timeout": _connection.SQLITE_BUSY_TIMEOUT_S
            }  # wait for writers as the store does
        try:
            with _schema.schema_lock(self._db):
                return RDBStorage(self.url, engine_kwargs=kwargs)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open Optuna's tables in {self.display_url}: {_connection.reason(exc)}") from exc
        except RuntimeError as exc:  # Optuna's tables are of another Optuna's schema; its message says what to do
            raise StoreError(f"Optuna's tables in {self.display_url}: {_connection.reason(exc, self._db.url)}") from exc

    def database_error(self, exc: BaseException) -> StoreError:
        """The one-line error of a database error met outside the store (in Optuna's storage, say)."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return StoreError(f"database error in {self.display_url}: {_connection.reason(cause, self._db.url)}")

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    # -- writing --------------------------------------------------------------------------------

    def start_sweep(
        self,
        name: str,
        spec_yaml: str,
        *,
        seed: int,
        metric: str,
        higher_is_better: bool,
        repeats: int,
        problem: str,
        overrides: dict | None = None,
        machine: Machine | None = None,
        owner: Owner | None = None,
        data_files: dict | None = None,
    ) -> int | None:
        """Create sweep ``name``, or resume it if it exists with the same search space; its id.

        ``overrides`` are the command line's (``repeats``, ``epochs``, ``name``); ``machine`` what drives
        the sweep now (recorded on every start, so a resumed sweep shows what last ran it); ``data_files``
        what the tasks' data files held (stored when the sweep is created; the driver compares it on resume).

        With an ``owner`` (the ``sweeper run`` that will drive it) the sweep's lease goes to the owner in
        the same statement that marks it running, and LeaseError (one line naming the holder) refuses a
        sweep another run holds; a completed sweep is left as it is, and None returned: nothing to do.
        """
        if problem not in PROBLEMS:
            raise StoreError(f"problem {problem!r} is not one of {', '.join(PROBLEMS)}")
        if metric not in metrics.columns(problem):
            allowed = ", ".join(metrics.columns(problem))
            raise StoreError(f"metric {metric!r} is not kept for {problem} problems; choose one of {allowed}")
        settings = dict(seed=seed, metric=metric, higher_is_better=higher_is_better, repeats=repeats, problem=problem)
        overrides_json = json.dumps(overrides, sort_keys=True) if overrides else None
        ran = machine.as_dict() if machine is not None else {}
        created = {"data_files": json.dumps(data_files, sort_keys=True) if data_files is not None else None}
        try:
            return self._start_sweep(name, spec_yaml, overrides_json, settings, ran, owner, created)
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        # Another run created the sweep between our look and our insert: resume it (or be refused) as
        # if it had been there.
        return self._start_sweep(name, spec_yaml, overrides_json, settings, ran, owner, created)

    def _start_sweep(
        self,
        name: str,
        spec_yaml: str,
        overrides_json: str | None,
        settings: dict,
        ran: dict,
        owner: Owner | None,
        created: dict,
    ) -> int | None:
        dialect = self._db.dialect.name
        with self._session() as session:
            sweep = session.scalar(select(Sweep).where(Sweep.name == name))
            if sweep is None:
                lease = _lease.held_by(owner, dialect) if owner is not None else {}
                sweep = Sweep(
                    name=name,
                    spec_yaml=spec_yaml,
                    overrides=overrides_json,
                    study_name=name,
                    status="running",
                    **settings,
                    **ran,
                    **lease,
                    **created,
                )
                session.add(sweep)
                session.flush()
                return sweep.id
            self._check_resumable(sweep, spec_yaml, overrides_json, settings)
            if owner is None:
                sweep.status = "running"
                sweep.finished_at = None
                for key, value in ran.items():
                    setattr(sweep, key, value)
                return sweep.id
            if sweep.status == "completed":
                return None
            # Never reopens a sweep that another run completed since we looked.
            holder = _lease.take(
                session.connection(),
                sweep.id,
                owner,
                Sweep.status != "completed",
                status="running",
                finished_at=None,
                **ran,
            )
            if holder is None:
                return sweep.id
            if session.scalar(select(Sweep.status).where(Sweep.id == sweep.id)) == "completed":
                return None
            raise _lease.busy(name, holder)

    def _check_resumable(self, sweep: Sweep, spec_yaml: str, overrides_json: str | None, settings: dict) -> None:
        where = f"sweep {sweep.name!r} already exists in {self.display_url}"
        advice = f"pick another --name or delete it (sweeper delete {sweep.name})"
        differing = {
            key: (getattr(sweep, key), value) for key, value in settings.items() if getattr(sweep, key) != value
        }
        # Trailing newlines mean nothing in YAML, and a sweep migrated from 0.1.0 lost its own (its
        # overrides comment had taken their place).
        same_yaml = sweep.spec_yaml.rstrip("\n") == spec_yaml.rstrip("\n")
        if not same_yaml or sweep.overrides != overrides_json:
            changes = (
                (_yaml_changes(sweep.spec_yaml, spec_yaml) if not same_yaml else [])
                or [f"{key} {old!r} -> {new!r}" for key, (old, new) in differing.items()]
                or _override_changes(sweep.overrides, overrides_json)
                or _line_changes(sweep.spec_yaml, spec_yaml)
            )
            raise StoreError(f"{where} with a different search space; {advice}; it differs in {_listed(changes)}")
        if differing:
            listed = ", ".join(f"{key} {old!r} (not {new!r})" for key, (old, new) in differing.items())
            raise StoreError(f"{where} with {listed}; {advice}")

    def finish_sweep(self, sweep_id: int, status: str, owner: Owner | None = None) -> None:
        """Mark a sweep completed, interrupted or failed (or running again).

        With the ``owner`` of its lease, the lease is released in the same statement; LeaseError if the
        owner no longer held it (another run took it over), and nothing is changed.
        """
        if status not in SWEEP_STATUSES:
            raise StoreError(f"sweep status {status!r} is not one of {', '.join(SWEEP_STATUSES)}")
        with self._session() as session:
            sweep = self._sweep_by_id(session, sweep_id)
            if owner is None:
                sweep.status = status
                sweep.finished_at = None if status == "running" else utcnow()
                return
            finished = (
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.lease_token == owner.token)
                .values(
                    status=status,
                    finished_at=None if status == "running" else utcnow(),
                    **_lease.held_by(None, self._db.dialect.name),
                )
            )
            if session.execute(finished).rowcount != 1:
                raise LeaseError(f"sweep {sweep.name!r}: another run took it over before it could be marked {status}")

    def heartbeat(self, sweep_id: int, name: str, owner: Owner, *, on_lost) -> _lease.Heartbeat:
        """The heartbeat of ``owner``'s lease on the sweep: a context manager that renews it from a thread
        until the block ends (``on_lost`` is called, from that thread, if it is lost)."""
        return _lease.Heartbeat(self._db.url, sweep_id, name, owner, on_lost=on_lost)

    def check_not_running(self, name: str) -> None:
        """LeaseError, one line naming the run, if another ``sweeper run`` holds the sweep's lease."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, name)
            holder = _lease.holder(session.connection(), sweep.id)
        if (
            holder is not None
            and holder.heartbeat_age is not None
            and holder.heartbeat_age <= _lease.STALE_S
            and not holder.is_gone(Owner.here())
        ):
            raise _lease.busy(name, holder)

    def ensure_trial(
        self,
        sweep_id: int,
        config: NoiseConfig,
        *,
        number: int | None = None,
        optuna_trial_id: int | None = None,
    ) -> TrialRef:
        """The trial of ``config`` in the sweep, created if missing (as ``number``, or the next free one).

        An existing trial keeps its number; its Optuna trial id is filled in only if it had none.
        """
        config = make_config(config)
        columns = _rows.trial_columns(config)
        with self._session() as session:
            self._sweep_by_id(session, sweep_id)
            trial = session.scalar(
                select(Trial).where(Trial.sweep_id == sweep_id, Trial.config_json == columns["config_json"])
            )
            if trial is None:
                if number is None:
                    number = session.scalar(_next_trial_number(sweep_id))
                trial = Trial(sweep_id=sweep_id, number=number, optuna_trial_id=optuna_trial_id, **columns)
                session.add(trial)
                session.flush()
                session.add_all(TrialSite(**row) for row in _rows.site_rows(trial.id, config))
            elif trial.optuna_trial_id is None:
                trial.optuna_trial_id = optuna_trial_id
            return TrialRef(trial.id, trial.number, trial.optuna_trial_id, config)

    def set_trial_optuna_id(self, trial_id: int, optuna_trial_id: int) -> None:
        """Link a trial to the Optuna trial that proposed it."""
        self._update_trial(trial_id, optuna_trial_id=optuna_trial_id)

    def complete_trial(self, trial_id: int, objective: float | None) -> None:
        """Mark a trial complete with its objective (the mean metric over its runs; NaN is stored as NULL)."""
        self._update_trial(trial_id, status="complete", objective=_rows.finite(objective))

    def _update_trial(self, trial_id: int, **values) -> None:
        with self._session() as session:
            if session.execute(update(Trial).where(Trial.id == trial_id).values(**values)).rowcount != 1:
                raise StoreError(f"no trial with id {trial_id} in {self.display_url}")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction for several writes (sweeper's and Optuna's tables alike): all or nothing."""
        with self._session() as session:
            yield session.connection()

    def add_trials(
        self, connection: Connection, sweep_id: int, trials: Sequence[tuple[int, NoiseConfig, int | None]]
    ) -> list[TrialRef]:
        """New trials ``(number, configuration, Optuna trial number)``, with their sites, in the
        ``transaction``'s connection; none of their numbers or configurations may be stored yet."""
        if not trials:
            return []
        rows = [
            {
                "sweep_id": sweep_id,
                "number": number,
                "optuna_trial_id": optuna,
                "status": "pending",
                "created_at": utcnow(),
                **_rows.trial_columns(make_config(config)),
            }
            for number, config, optuna in trials
        ]
        statement = insert(Trial).returning(Trial.id, sort_by_parameter_order=True)
        ids = [trial_id for (trial_id,) in connection.execute(statement, rows)]
        sites = [row for trial_id, (_, config, _) in zip(ids, trials) for row in _rows.site_rows(trial_id, config)]
        if sites:
            connection.execute(insert(TrialSite), sites)
        return [
            TrialRef(trial_id, number, optuna, make_config(config))
            for trial_id, (number, config, optuna) in zip(ids, trials)
        ]

    def complete_trials(self, connection: Connection, objectives: Sequence[tuple[int, float | None]]) -> None:
        """Mark trials ``(trial id, objective)`` complete in the ``transaction``'s connection (NaN: NULL)."""
        if objectives:
            statement = (
                update(Trial)
                .where(Trial.id == bindparam("trial_id"))
                .values(status="complete", objective=bindparam("value"))
            )
            connection.execute(statement, [{"trial_id": t, "value": _rows.finite(v)} for t, v in objectives])

    def save_runs(
        self, sweep_id: int, items: Sequence[tuple[int, str, Member, RunResult]], owner: Owner | None = None
    ) -> int:
        """Store runs and their curves in one transaction; runs already stored are skipped. How many were new.

        ``items`` holds ``(trial_id, task, member, result)``; a run is identified by (trial, task, repeat),
        so a retried or resumed pack may bring the same runs again without duplicating them. With an
        ``owner``, they are stored only while it holds the sweep's lease (LeaseError otherwise).
        """
        items = list(items)
        if not items:
            return 0
        with self._session() as session:
            if owner is not None:
                held = update(Sweep).where(Sweep.id == sweep_id, Sweep.lease_token == owner.token)
                if session.execute(held.values(updated_at=utcnow())).rowcount != 1:
                    name = self._sweep_by_id(session, sweep_id).name
                    raise LeaseError(
                        f"sweep {name!r}: another run took it over; this run stopped without storing its last pack"
                    )
            self._check_members(session, sweep_id, items)
            trial_ids = sorted({trial_id for trial_id, *_ in items})
            stored = {tuple(key) for key in session.execute(_run_keys(trial_ids))}
            new = {}  # (trial_id, task, repeat) -> (member, result), first one wins
            for trial_id, task, member, result in items:
                key = (trial_id, task, int(member.repeat))
                if key not in stored:
                    new.setdefault(key, (member, result))
            if new:
                self._insert_runs(session, new, held=owner is not None)
                session.execute(update(Sweep).where(Sweep.id == sweep_id).values(updated_at=utcnow()))
            return len(new)

    def _insert_runs(self, session: Session, new: dict, *, held: bool) -> None:
        """Insert new runs, then the curves of those this statement inserted (not of any a concurrent
        writer inserted first), under the ids the database gave them.

        ``held``: this transaction holds the sweep's row (its lease renewed), so no other writer adds runs
        to the sweep before it ends; on PostgreSQL the runs are then one COPY (an INSERT of a pack's
        thousands of parameters costs psycopg more to parse than the database to run).
        """
        connection = session.connection()
        runs = [_rows.run_row(trial_id, task, m, r) for (trial_id, task, _), (m, r) in new.items()]
        if held and self._db.dialect.name == "postgresql":
            now = utcnow()
            _copy_rows(connection, Run.__table__, [{**row, "created_at": now} for row in runs])
            keys = select(Run.id, Run.trial_id, Run.task, Run.repeat).where(
                Run.trial_id.in_(sorted({trial_id for trial_id, _, _ in new}))
            )
            run_ids = {tuple(key): run_id for run_id, *key in connection.execute(keys) if tuple(key) in new}
        else:
            inserted = connection.execute(
                self._insert_new(Run).returning(Run.id, Run.trial_id, Run.task, Run.repeat), runs
            )
            run_ids = {tuple(key): run_id for run_id, *key in inserted}
        curves = [
            row for key, (_, result) in new.items() if key in run_ids for row in _rows.curve_rows(run_ids[key], result)
        ]
        if not curves:
            return
        if self._db.dialect.name == "postgresql":
            _copy_rows(connection, Curve.__table__, curves)
        else:
            connection.execute(insert(Curve), curves)

    def _check_members(self, session: Session, sweep_id: int, items: list) -> None:
        """Refuse runs filed under a trial of another sweep or of another configuration."""
        trial_ids = sorted({trial_id for trial_id, *_ in items})
        statement = select(Trial.id, Trial.config_json).where(Trial.sweep_id == sweep_id, Trial.id.in_(trial_ids))
        configs = {trial_id: config for trial_id, config in session.execute(statement)}
        for trial_id, _task, member, _result in items:
            if trial_id not in configs:
                raise StoreError(f"trial id {trial_id} is not a trial of sweep id {sweep_id}")
            if _rows.config_json(make_config(member.config)) != configs[trial_id]:
                raise StoreError(f"a member's noise configuration differs from that of trial id {trial_id}")

    def _insert_new(self, model):
        """A Core INSERT that skips rows already stored (a concurrent writer may have just written them)."""
        table = model.__table__
        dialect = self._db.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        return insert(table)

    def delete_sweep(self, name: str) -> dict[str, int]:
        """Delete a sweep with its trials, runs and curves, and its Optuna study if there is one.

        Returns how many ``trials``, ``runs`` and ``curves`` rows went, and ``optuna_studies`` (0 or 1).
        LeaseError (nothing deleted) while another ``sweeper run`` holds the sweep; the delete holds its
        lease meanwhile, so no run can start on it.
        """
        with self._session() as session:
            sweep = self._sweep_by_name(session, name)
            holder = _lease.take(session.connection(), sweep.id, Owner.here())
            if holder is not None:
                raise _lease.busy(name, holder)
            study_name = sweep.study_name
            runs = select(Run.id).join(Trial).where(Trial.sweep_id == sweep.id)
            deleted = {
                "trials": session.scalar(select(func.count(Trial.id)).where(Trial.sweep_id == sweep.id)),
                "runs": session.scalar(select(func.count()).select_from(runs.subquery())),
                "curves": session.scalar(select(func.count(Curve.run_id)).where(Curve.run_id.in_(runs))),
            }
        deleted["optuna_studies"] = int(self._delete_optuna_study(study_name))
        with self._session() as session:
            session.execute(delete(Sweep).where(Sweep.name == name))  # the foreign keys cascade
        return deleted

    def _delete_optuna_study(self, study_name: str) -> bool:
        """Delete Optuna's study of that name; whether there was one."""
        # A stale study would make a new sweep of the same name resume the old one's trials.
        if "studies" not in inspect(self._db).get_table_names():
            return False
        from optuna.storages import RDBStorage

        storage = RDBStorage(self.url, skip_compatibility_check=True, skip_table_creation=True)
        try:
            storage.delete_study(storage.get_study_id_from_name(study_name))
            return True
        except KeyError:
            return False
        finally:
            storage.remove_session()
            storage.engine.dispose()

    # -- reading --------------------------------------------------------------------------------

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

    def sweeps(self) -> list[dict]:
        """One row per sweep, oldest first: how many trials and runs it has, its overrides, and what
        trained its runs (each column the distinct values over them, comma-separated)."""
        n_trials = select(func.count(Trial.id)).where(Trial.sweep_id == Sweep.id).scalar_subquery()
        n_runs = select(func.count(Run.id)).join(Trial).where(Trial.sweep_id == Sweep.id).scalar_subquery()
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
        ).order_by(Sweep.created_at, Sweep.id)
        ran = [Run.engine, *(getattr(Run, name) for name in MACHINE_FIELDS)]
        with self._session() as session:
            rows = _plain_rows(session.execute(statement))
            distinct = session.execute(select(Trial.sweep_id, *ran).join_from(Run, Trial).distinct()).all()
        for row in rows:
            sweep_id = row.pop("id")
            row["overrides"] = _rows.override_flags(row["overrides"])
            mine = [values for sweep, *values in distinct if sweep == sweep_id]
            for i, column in enumerate(ran):
                row[column.key] = ", ".join(sorted({str(v[i]) for v in mine if v[i] is not None})) or None
        return rows

    def sweep(self, sweep_name: str) -> dict:
        """The sweep's row, with the search-space YAML it was started from and its overrides (a dict)."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            columns = Sweep.__table__.columns.keys()
            row = {key: _rows.plain(getattr(sweep, key)) for key in columns}
        row["overrides"] = json.loads(row["overrides"]) if row["overrides"] else {}
        row["data_files"] = json.loads(row["data_files"]) if row["data_files"] else None
        return row

    def trials(self, sweep_name: str) -> list[dict]:
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
        return rows

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

    def runs(self, sweep_name: str) -> list[dict]:
        """One row per run of the sweep (by trial, task, repeat): its noise, seeds, final metrics and what
        trained it."""
        with self._session() as session:
            sweep = self._sweep_by_name(session, sweep_name)
            statement = (
                select(
                    Trial.number.label("trial"),
                    Run.task,
                    Run.repeat,
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
                .join_from(Run, Trial)
                .where(Trial.sweep_id == sweep.id)
                .order_by(Trial.number, Run.task, Run.repeat)
            )
            return _plain_rows(session.execute(statement), sweep=sweep_name)

    def curves(self, sweep_name: str) -> list[dict]:
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
            return _plain_rows(session.execute(statement), sweep=sweep_name)

    def query(self, sql: str, *, limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT_S) -> QueryResult:
        """Run one read-only SQL statement: its columns and at most ``limit`` rows, within ``timeout`` seconds.

        SQLite opens the file read-only; PostgreSQL runs the statement as the role ``sweeper_reader``
        (see :func:`create_reader`), which may read sweeper's and Optuna's tables and nothing else.
        """
        path = sqlite_path(self._db.url)
        backend = self._db.url.get_backend_name()
        if path is not None:
            return _query.query_sqlite(path, sql, limit=limit, timeout=timeout)
        if backend == "sqlite":
            raise StoreError(f"query needs a database file; {self.display_url} is in memory")
        if backend != "postgresql":
            raise StoreError(f"query supports SQLite and PostgreSQL, not {backend}")
        return _query.query_postgresql(self._db, sql, limit=limit, timeout=timeout)

    # -- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed if the block succeeds, rolled back otherwise.

        The first one checks that sweeper's tables are at this version's schema (a store opened for
        writing has just made sure of it).
        """
        if not self._schema_checked:
            _schema.check_readable(self._db, self.display_url)
            self._schema_checked = True
        try:
            with Session(self._db, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error in {self.display_url}: {_connection.reason(exc)}") from exc

    def _sweep_by_id(self, session: Session, sweep_id: int) -> Sweep:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise StoreError(f"no sweep with id {sweep_id} in {self.display_url}")
        return sweep

    def _sweep_by_name(self, session: Session, name: str) -> Sweep:
        sweep = session.scalar(select(Sweep).where(Sweep.name == name))
        if sweep is None:
            names = session.scalars(select(Sweep.name).order_by(Sweep.created_at, Sweep.id)).all()
            known = f"sweeps there: {', '.join(names)}" if names else "it holds no sweeps"
            raise StoreError(f"no sweep {name!r} in {self.display_url}; {known}")
        return sweep


#: The changes of a search space an error names; more are counted. And the longest value it shows.
_MAX_CHANGES, _MAX_VALUE = 4, 40
_NOT_SET = object()


def _yaml_changes(old: str, new: str) -> list[str]:
    """The settings that differ between two search-space YAML texts, as ``key old -> new``."""
    try:
        return list(_tree_changes("", yaml.safe_load(old), yaml.safe_load(new)))
    except yaml.YAMLError:
        return []


def _tree_changes(path: str, old, new) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from _tree_changes(
                f"{path}.{key}" if path else str(key), old.get(key, _NOT_SET), new.get(key, _NOT_SET)
            )
    elif (
        isinstance(old, list)
        and isinstance(new, list)
        and old != new
        and max(len(_shown(old)), len(_shown(new))) > _MAX_VALUE
    ):
        # Long lists (of configurations, say) item by item; short ones (of stds) whole.
        for i in range(max(len(old), len(new))):
            yield from _tree_changes(
                f"{path}[{i}]", old[i] if i < len(old) else _NOT_SET, new[i] if i < len(new) else _NOT_SET
            )
    elif old != new:
        yield f"{path or 'the whole file'} {_short(old)} -> {_short(new)}"


def _override_changes(old: str | None, new: str | None) -> list[str]:
    """The command-line overrides (stored as JSON) that differ, as ``--flag old -> new``."""
    old, new = json.loads(old or "{}"), json.loads(new or "{}")
    return [
        f"--{key} {_short(old.get(key, _NOT_SET))} -> {_short(new.get(key, _NOT_SET))}"
        for key in sorted({*old, *new})
        if old.get(key, _NOT_SET) != new.get(key, _NOT_SET)
    ]


def _line_changes(old: str, new: str) -> list[str]:
    """The first line that differs, for texts whose settings agree (a comment or the layout changed)."""
    pairs = itertools.zip_longest(old.splitlines(), new.splitlines(), fillvalue=_NOT_SET)
    for number, (a, b) in enumerate(pairs, 1):
        if a != b:
            return [f"line {number} {_short(a)} -> {_short(b)}"]
    return []


def _shown(value) -> str:
    return "(not set)" if value is _NOT_SET else repr(value)


def _short(value) -> str:
    text = _shown(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _listed(changes: list[str]) -> str:
    more = len(changes) - _MAX_CHANGES
    shown = ", ".join(changes[:_MAX_CHANGES])
    return f"{shown} and {more} more" if more > 0 else shown


def _next_trial_number(sweep_id: int):
    return select(func.coalesce(func.max(Trial.number) + 1, 0)).where(Trial.sweep_id == sweep_id)


def _copy_rows(connection: Connection, table, rows: list[dict]) -> None:
    """PostgreSQL's COPY of ``rows`` (dicts of one set of keys) into ``table``: one round trip for them all."""
    from psycopg import sql

    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _run_keys(trial_ids):
    """SELECT trial_id, task, repeat of the runs of these trials."""
    return select(Run.trial_id, Run.task, Run.repeat).where(Run.trial_id.in_(trial_ids))


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
