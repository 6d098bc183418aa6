"""The store's writes: sweeps started and finished, trials, runs with their curves, deletes."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import bindparam, delete, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sweeper import metrics
from sweeper.errors import LeaseError, StoreError
from sweeper.noise.spec import NoiseConfig, make_config
from sweeper.records import Machine, Member, RunResult, TrialRef
from sweeper.seeding import config_json
from sweeper.space.changes import differences
from sweeper.store import _lease, _rows
from sweeper.store._lease import Owner
from sweeper.store.models import PROBLEMS, SWEEP_STATUSES, Curve, Run, Sweep, Trial, TrialSite, utcnow


class Writes:
    """The writing half of :class:`sweeper.store.Store` (which gives it ``_db``, ``_session``, ``display_url``,
    ``url`` and ``_sweep_by_id``/``_sweep_by_name``)."""

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
        context: dict | None = None,
        extending: tuple[str, dict] | None = None,
    ) -> int | None:
        """Create sweep ``name``, or resume it if it exists with the same search space; its id.

        ``overrides`` are the command line's (``repeats``, ``epochs``, ``name``); ``machine`` what drives
        the sweep now (recorded on every start, so a resumed sweep shows what last ran it); ``data_files``
        what the tasks' data files held (stored when the sweep is created; the driver compares it on resume);
        ``context`` what the report shows of the sweep besides its runs (recorded on every start, as the
        machine is).

        With an ``owner`` (the ``sweeper run`` that will drive it) the sweep's lease goes to the owner in
        the same statement that marks it running, and LeaseError (one line naming the holder) refuses a
        sweep another run holds; a completed sweep is left as it is, and None returned: nothing to do.

        ``extending``: the stored file and overrides that the driver found this sweep grows (more repeats,
        more configurations: ``sweeper.driver.prepare.extension``). While the sweep still holds them, its
        file, overrides and repeats become the new ones (a completed sweep is reopened) and the change is
        added to the history in its ``context``; any other difference is refused as without it.
        """
        if problem not in PROBLEMS:
            raise StoreError(f"problem {problem!r} is not one of {', '.join(PROBLEMS)}")
        if metric not in metrics.columns(problem):
            allowed = ", ".join(metrics.columns(problem))
            raise StoreError(f"metric {metric!r} is not kept for {problem} problems; choose one of {allowed}")
        settings = dict(seed=seed, metric=metric, higher_is_better=higher_is_better, repeats=repeats, problem=problem)
        overrides_json = _overrides_json(overrides)
        ran = machine.as_dict() if machine is not None else {}
        if context is not None:
            ran["context"] = json.dumps(context, sort_keys=True)
        created = {"data_files": json.dumps(data_files, sort_keys=True) if data_files is not None else None}
        try:
            return self._start_sweep(name, spec_yaml, overrides_json, settings, ran, owner, created, extending)
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        # Another run created the sweep between our look and our insert: resume it (or be refused) as
        # if it had been there.
        return self._start_sweep(name, spec_yaml, overrides_json, settings, ran, owner, created, extending)

    def _start_sweep(
        self,
        name: str,
        spec_yaml: str,
        overrides_json: str | None,
        settings: dict,
        ran: dict,
        owner: Owner | None,
        created: dict,
        extending: tuple[str, dict] | None,
    ) -> int | None:
        dialect = self._db.dialect.name
        with self._session() as session:
            sweep = session.scalar(select(Sweep).where(Sweep.name == name))
            if sweep is None:
                if "context" in ran:
                    ran = {**ran, "context": _with_history(None, ran["context"], None)}
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
            extended = self._check_resumable(sweep, spec_yaml, overrides_json, settings, extending)
            if "context" in ran:
                ran = {**ran, "context": _with_history(sweep, ran["context"], extended)}
            if extended is not None:
                ran = {**ran, "spec_yaml": spec_yaml, "overrides": overrides_json, "repeats": settings["repeats"]}
            if owner is None:
                sweep.status = "running"
                sweep.finished_at = None
                for key, value in ran.items():
                    setattr(sweep, key, value)
                return sweep.id
            if sweep.status == "completed" and extended is None:
                if sweep.context is None and "context" in ran:
                    sweep.context = ran["context"]  # stored by an older sweeper: what its report lacked
                return None
            # Never reopens a sweep that another run completed since we looked, unless this run extends
            # it: then only while it is still the sweep that was extended.
            unchanged = Sweep.status != "completed" if extended is None else Sweep.spec_yaml == sweep.spec_yaml
            holder = _lease.take(
                session.connection(),
                sweep.id,
                owner,
                unchanged,
                status="running",
                finished_at=None,
                **ran,
            )
            if holder is None:
                return sweep.id
            if session.scalar(select(Sweep.status).where(Sweep.id == sweep.id)) == "completed":
                return None
            raise _lease.busy(name, holder)

    def _check_resumable(
        self,
        sweep: Sweep,
        spec_yaml: str,
        overrides_json: str | None,
        settings: dict,
        extending: tuple[str, dict] | None = None,
    ) -> str | None:
        """Refuses, in one line, a sweep that differs from the stored one; the changes, in words, of one
        that extends it (``extending`` the stored file and overrides it grows, as the driver saw them)."""
        where = f"sweep {sweep.name!r} already exists in {self.display_url}"
        advice = f"pick another --name or delete it (sweeper delete {sweep.name})"
        differing = {
            key: (getattr(sweep, key), value) for key, value in settings.items() if getattr(sweep, key) != value
        }
        same_yaml = sweep.spec_yaml.rstrip("\n") == spec_yaml.rstrip("\n")  # trailing newlines mean nothing
        if (
            extending is not None
            and (sweep.spec_yaml, sweep.overrides) == (extending[0], _overrides_json(extending[1]))
            and set(differing) <= {"repeats"}
            and settings["repeats"] >= sweep.repeats
        ):
            return differences(sweep.spec_yaml, spec_yaml, sweep.overrides, overrides_json, differing)
        if not same_yaml or sweep.overrides != overrides_json:
            changed = differences(sweep.spec_yaml, spec_yaml, sweep.overrides, overrides_json, differing)
            raise StoreError(f"{where} with a different search space; {advice}; it differs in {changed}")
        if differing:
            listed = ", ".join(f"{key} {old!r} (not {new!r})" for key, (old, new) in differing.items())
            raise StoreError(f"{where} with {listed}; {advice}")
        return None

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

    def heartbeat(self, sweep_id: int, name: str, owner: Owner, *, on_lost=None) -> _lease.Heartbeat:
        """The heartbeat of ``owner``'s lease on the sweep: a context manager that renews it from a thread
        until the block ends (``on_lost``, if given, is called from that thread if it is lost)."""
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
        insert_rows(connection, TrialSite.__table__, sites)
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

    def reopen_trials(self, connection: Connection, trial_ids: Sequence[int]) -> None:
        """Put complete trials (row ids) back to pending, their objective cleared: an extended sweep's
        trials that gain repeats, to be told again over all their runs."""
        if trial_ids:
            statement = update(Trial).where(Trial.id.in_(list(trial_ids)), Trial.status == "complete")
            connection.execute(statement.values(status="pending", objective=None))

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
            row
            for key, (_, result) in new.items()
            if key in run_ids
            for row in _rows.curve_values(run_ids[key], result)
        ]
        if not curves:
            return
        if self._db.dialect.name == "postgresql":
            _copy_values(connection, Curve.__table__, _rows.CURVE_COLUMNS, curves)
        elif self._db.dialect.name == "sqlite":
            # The DB-API's executemany of plain tuples: a pack's curve points are most of what it writes, and
            # SQLAlchemy's per-row parameter handling cost more than SQLite's insert (numbers and NULLs only).
            names = ", ".join(_rows.CURVE_COLUMNS)
            marks = ", ".join("?" for _ in _rows.CURVE_COLUMNS)
            connection.exec_driver_sql(f"INSERT INTO {Curve.__tablename__} ({names}) VALUES ({marks})", curves)
        else:
            connection.execute(insert(Curve), [dict(zip(_rows.CURVE_COLUMNS, values)) for values in curves])

    def _check_members(self, session: Session, sweep_id: int, items: list) -> None:
        """Refuse runs filed under a trial of another sweep or of another configuration."""
        trial_ids = sorted({trial_id for trial_id, *_ in items})
        statement = select(Trial.id, Trial.config_json).where(Trial.sweep_id == sweep_id, Trial.id.in_(trial_ids))
        configs = {trial_id: config for trial_id, config in session.execute(statement)}
        for trial_id, _task, member, _result in items:
            if trial_id not in configs:
                raise StoreError(f"trial id {trial_id} is not a trial of sweep id {sweep_id}")
            if config_json(make_config(member.config)) != configs[trial_id]:
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


def _overrides_json(overrides: dict | None) -> str | None:
    """The command line's overrides as the sweep row keeps them."""
    return json.dumps(overrides, sort_keys=True) if overrides else None


def _with_history(sweep: Sweep | None, context_json: str, extended: str | None) -> str:
    """The new ``context`` (JSON) with the sweep's history: its size as planned (when: its ``created_at``),
    then each extension (when, what changed, the size after it). ``sweep`` is the stored row (None: being
    created); a sweep stored before histories were kept starts its history from its row and stored context
    (its first size unknown, None, where it had no context and grows now)."""
    context = json.loads(context_json)
    if sweep is None:
        history = [{"event": "planned", "repeats": context["repeats"], "planned": context["planned"]}]
    else:
        old = json.loads(sweep.context) if sweep.context else {}
        first = old.get("planned", context["planned"] if extended is None else None)
        history = old.get("history") or [
            {"event": "planned", "repeats": old.get("repeats", sweep.repeats), "planned": first}
        ]
    if extended is not None:
        now = utcnow().isoformat(timespec="seconds")
        grown = {"repeats": context["repeats"], "planned": context["planned"]}
        history = [*history, {"event": "extended", "at": now, "changes": extended, **grown}]
    return json.dumps({**context, "history": history}, sort_keys=True)


def _next_trial_number(sweep_id: int):
    return select(func.coalesce(func.max(Trial.number) + 1, 0)).where(Trial.sweep_id == sweep_id)


def insert_rows(connection: Connection, table, rows: list[dict]) -> None:
    """INSERT ``rows`` (dicts of one set of keys) into ``table`` in the connection's transaction. On
    PostgreSQL one COPY: psycopg's executemany sends one statement per row, which made a grid's rounds
    of Optuna rows (parameters, attributes, curves, values) a third of the driver's time. Enum members go
    in by name, as SQLAlchemy's ``Enum`` stores them."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = list(rows[0])
    values = [[row[c] for c in columns] for row in rows]
    kinds = {i for i, v in enumerate(values[0]) if isinstance(v, enum.Enum)}
    if kinds:
        values = [[v.name if i in kinds else v for i, v in enumerate(row)] for row in values]
    _copy_values(connection, table, columns, values)


def _copy_rows(connection: Connection, table, rows: list[dict]) -> None:
    """PostgreSQL's COPY of ``rows`` (dicts of one set of keys) into ``table``: one round trip for them all."""
    columns = list(rows[0])
    _copy_values(connection, table, columns, [[row[c] for c in columns] for row in rows])


def _copy_values(connection: Connection, table, columns: Sequence[str], rows: list[Sequence]) -> None:
    """PostgreSQL's COPY of ``rows`` (values in the order of ``columns``) into ``table``."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _run_keys(trial_ids):
    """SELECT trial_id, task, repeat of the runs of these trials."""
    return select(Run.trial_id, Run.task, Run.repeat).where(Run.trial_id.in_(trial_ids))
