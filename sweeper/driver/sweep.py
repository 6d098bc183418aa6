"""The sweep driver: Optuna proposes configurations, packs are trained, results are stored.

Data flows one way: the search space gives configurations (Optuna's GridSampler, RandomSampler or
TPESampler asks for them in rounds that fill a pack), the planner groups their runs into packs, an
executor trains the packs, the store keeps every run, and Optuna is told each trial's objective (the
mean metric over its repeats and tasks). Resuming is the same call: runs already stored are skipped,
trials left running by an interrupted sweep are finished first. A raced grid (``repeats: {min, max}``)
creates all its trials at once and trains them in rounds, each giving more repeats only to the
configurations still open (``sweeper.stats.racing``: the race replayed from the stored runs).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import optuna
from sqlalchemy.exc import SQLAlchemyError

from sweeper import seeding
from sweeper.driver import _optuna, context
from sweeper.driver._interrupts import writes_finish
from sweeper.driver.executors import Executor
from sweeper.driver.planner import Pack, PlannedRun, plan
from sweeper.driver.prepare import Prepared, check_resumable, prepare
from sweeper.driver.prepare import spec_from_store as spec_from_store  # re-exported: the report imports it here
from sweeper.engine.machine import this_machine
from sweeper.errors import LeaseError, StoreError
from sweeper.noise.spec import NoiseConfig, config_label
from sweeper.records import TrialRef
from sweeper.space import SweepSpec
from sweeper.stats import racing
from sweeper.store import Owner, Store
from sweeper.tasks import files


class Progress(Protocol):
    """What a sweep tells its progress display, in runs: the total and those stored before (``start``),
    the runs stored since (``advance``), and, while packs train, how many runs' worth of training the
    ``packs`` not yet stored hold (``training``: a fraction of their runs, from their member-epochs).
    A display may also have ``race_round(k, open, runs, fixed, over)``: a raced sweep calls it as each round
    starts (round ``k``, configurations ``open``, ``runs`` stored of the ``fixed`` a fixed sweep would
    spend) and once the race is ``over``."""

    def start(self, total: int, done: int) -> None: ...
    def advance(self, runs: int) -> None: ...
    def training(self, runs: float, packs: int) -> None: ...


@dataclass(frozen=True)
class SweepOutcome:
    """What one ``run_sweep`` call did."""

    sweep_id: int
    name: str
    runs_total: int
    runs_trained: int  # by this call (the rest were stored already)
    seconds: float
    complete: bool = False  # the sweep was complete already: nothing was done

    @property
    def runs_per_second(self) -> float:
        return self.runs_trained / self.seconds if self.seconds > 0 else 0.0


def _sampler(spec: SweepSpec, trial_number: int) -> optuna.samplers.BaseSampler | None:
    """The sampler that proposes trial ``trial_number``, seeded by (sweep seed, trial number); none for a
    grid, whose trials are written, never asked for (``sweeper.driver._optuna``).

    Samplers keep no state but their random generator (TPE refits on the study's trials each time), so
    a fresh one per trial proposes the same configurations whether or not the sweep was interrupted.
    """
    if spec.search.sampler == "grid":
        return None
    seed = seeding.sampler_seed(spec.seed, trial_number)
    if spec.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def grid_order(configs: list[NoiseConfig], stored: dict[int, NoiseConfig]) -> list[NoiseConfig]:
    """A grid's configurations by trial number: each stored trial (number -> configuration) keeps its
    number and the file's other configurations take the numbers left, in file order. So a grid extended
    with new values or configurations trains only those, numbered after the ones it had."""
    if all(n < len(configs) and seeding.config_json(configs[n]) == seeding.config_json(c) for n, c in stored.items()):
        return list(configs)
    placed = {seeding.config_json(c) for c in stored.values()}
    rest = iter([c for c in configs if seeding.config_json(c) not in placed])
    return [stored[n] if n in stored else next(rest) for n in range(len(configs))]


def _extended(sweep) -> bool:
    """Whether the stored sweep (the store's row) was ever extended, as its history says."""
    return any(step["event"] == "extended" for step in (sweep.context or {}).get("history", ()))


#: A trial in flight: its Optuna trial id (the ``trials`` table's key) and its sweeper trial.
Asked = tuple[int, TrialRef]


class _Sweep:
    """One sweep's state while it runs: the spec, the store, the study and the runs already stored.

    Every write first checks ``lease``: a run that lost its hold on the sweep writes nothing more.
    A round is one transaction: the objectives of the trials just trained are told (sweeper's trials
    and Optuna's completed together) and, for a grid, the next round's trials created in both.
    """

    def __init__(
        self,
        spec: SweepSpec,
        store: Store,
        executor: Executor,
        progress: Progress | None,
        sizes: dict[str, int],
        storage,
        sweep_id: int,
        owner: Owner,
        lease,
    ):
        self.spec, self.store, self.executor, self.progress = spec, store, executor, progress
        self.sizes, self.sweep_id, self.owner, self.lease = sizes, sweep_id, owner, lease
        self.grid = spec.grid_configs()[0] if spec.search.sampler == "grid" else None
        self.done = store.done_runs(self.sweep_id)
        refs = store.trial_refs(spec.name)
        self.params = _optuna.GridParams(self.grid) if self.grid is not None else None
        if self.grid is not None:
            self.grid = grid_order(self.grid, {ref.number: ref.config for ref in refs})
        # trial number -> task -> repeat -> metric of each finished run (NaN: diverged): the objectives' inputs.
        self.values: dict[int, dict[str, dict[int, float]]] = {}
        for row in store.runs(spec.name) if self.done else ():
            self._record(row["trial"], row["task"], row["repeat"], row.get(spec.metric), row["diverged"])
        # A raced sweep: its plan (rho tuned to the first planned maximum, kept by the sweep's history)
        # and where the race stands, replayed from the stored runs (sweeper.stats.racing.race).
        self.plan = racing.plan_of(store.sweep(spec.name).context) if spec.racing is not None else None
        self.race = self.race_now()
        with store.transaction() as connection:
            if self.grid is None:  # a grid's trials are created whole, in one transaction
                suggested = {ref.optuna_trial_id for ref in refs}
                _optuna.forget_partial_suggestions(connection, spec.name, suggested)
            elif refs and _extended(store.sweep(spec.name)):
                # A grid grown with new values widens its distributions: its stored trials get the grown grid's.
                _optuna.set_params(connection, spec.name, {r.optuna_trial_id: self.params.rows(r.config) for r in refs})
            # An extended sweep's trials that gain repeats: trained and told again, as the resumed trials are.
            grown = [ref for ref in refs if self.pending_runs(ref)]
            store.reopen_trials(connection, [ref.id for ref in grown])
            _optuna.reopen(connection, spec.name, [ref.optuna_trial_id for ref in grown])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                study_name=spec.name,
                storage=storage,
                direction=spec.direction,
                load_if_exists=True,
                sampler=_sampler(spec, 0),
            )
            if self.study.metric_names != [spec.metric]:
                self.study.set_metric_names([spec.metric])
        self.writer: _optuna.StudyWriter | None = None  # a grid's, made in the first round's transaction
        self.summaries = _optuna.Summaries(list(spec.tasks), spec.repeats)
        self.n_trials = len(self.grid) if self.grid is not None else spec.search.n_trials + 1
        # trial number -> logged epoch -> [sum, count] of the metric's finite values: the mean curve.
        self.curves: dict[int, dict[int, list]] = {}
        self.trained = 0
        self.training: dict[int, float] = {}  # id of a pack in training -> the runs' worth it has trained
        self.numbers: dict[int, int] = {}  # sweeper trial id -> trial number
        self.registered = {t["trial"] for t in store.trials(spec.name)}  # trial numbers with a stored config
        self.first_unregistered = 0  # grid: no configuration before this number is left to ask for

    def trial_ref(self, trial) -> TrialRef:
        """The sweeper trial of a new Optuna trial of a sampled sweep: its configuration, stored."""
        ref = self.store.ensure_trial(self.sweep_id, _optuna.suggest(self.spec, trial), optuna_trial_id=trial.number)
        self.registered.add(ref.number)
        return ref

    def pending_runs(self, ref: TrialRef) -> list[PlannedRun]:
        """The runs of a trial still to train: every repeat, or in a race the repeats its round gives it."""
        repeats = self.spec.repeats if self.race is None else int(self.race.targets[ref.number])
        return [
            PlannedRun(ref.id, ref.config, name, r)
            for name in self.spec.tasks
            for r in range(repeats)
            if (ref.number, name, r) not in self.done
        ]

    def race_now(self) -> racing.Race | None:
        """Where a raced sweep's race stands on the runs stored so far (None for fixed repeats): a pure
        function of the stored validation metric, so a resumed race goes on exactly where it was."""
        if self.plan is None:
            return None
        names = list(self.spec.tasks)
        n_repeats = max([self.spec.repeats, *(r + 1 for _, _, r in self.done)])
        values = np.full((len(names), n_repeats, len(self.grid)), np.nan)
        present = np.zeros(values.shape, dtype=bool)
        for number, per_task in self.values.items():
            for t, name in enumerate(names):
                for repeat, value in per_task.get(name, {}).items():
                    values[t, repeat, number], present[t, repeat, number] = value, True
        base = next(i for i, config in enumerate(self.grid) if config == ())
        d = racing.differences(values, present, base, higher_is_better=self.spec.higher_is_better)
        return racing.race(d, base, self.plan, len(self.grid) - 1, racing.ALPHA)

    def resume_stale(self) -> list[Asked]:
        """Trials an interrupted sweep left running, each with its configuration, to go on with.

        One whose configuration was stored goes on with it (a grid's trials are created with theirs, in
        one transaction). A sampled one interrupted before that gets it again from Optuna, which
        recorded its parameters as they were suggested: suggested again on the same trial, by the
        sampler it was asked with. So no trial is failed and none asked twice: the study never holds
        more trials than were asked for.
        """
        stored = {ref.optuna_trial_id: ref for ref in self.store.trial_refs(self.spec.name)}
        resumed = []
        for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            ref = stored.get(frozen.number)
            if ref is not None:
                resumed.append(
                    (frozen._trial_id, self.store.ensure_trial(self.sweep_id, ref.config, number=ref.number))
                )
            elif self.grid is None:
                self.study.sampler = _sampler(self.spec, frozen.number)
                resumed.append((frozen._trial_id, self.trial_ref(optuna.trial.Trial(self.study, frozen._trial_id))))
            # else: a grid trial a sweeper <= 0.2 left before storing its configuration; that
            # configuration is still unregistered, so a new trial of this round takes it on.
        self._load_curves([ref.number for _, ref in resumed])
        return resumed

    def resume(self) -> list[Asked]:
        """The first round of trials to train: the round an interrupted sweep was in, else a new one.

        Interrupted while the round was asked for or trained, its trials are completed with the same
        number of trials as it would have had (so an adaptive sampler sees the same history as without
        the interruption); interrupted while its objectives were told, the telling is finished first.
        """
        resumed = self.resume_stale()
        if resumed and not any(self.pending_runs(ref) for _, ref in resumed):
            return self.tell_and_ask(resumed)
        if self.grid is not None:
            with self.store.transaction() as connection:
                return resumed + self.ask_grid(connection, already=len(resumed))
        return resumed + self.ask_sampled(already=len(resumed))

    def _want(self, already: int) -> int:
        """Configurations enough to keep every pack slot of the executor busy (one, locally), less those
        ``already`` asked."""
        if self.race is not None:
            return len(self.grid) - already  # a race's rounds take every configuration at once
        per_config = self.spec.repeats * len(self.spec.tasks)
        return max(1, min(self.sizes.values()) * getattr(self.executor, "parallel_packs", 1) // per_config) - already

    def ask_grid(self, connection, already: int = 0) -> list[Asked]:
        """A grid's next configurations not yet stored, in file order (the baseline first), as new
        trials of both sweeper and Optuna, with their parameters (one statement per table)."""
        self.lease.check()
        if self.writer is None:
            self.writer = _optuna.StudyWriter(connection, self.study._study_id)
        while self.first_unregistered < len(self.grid) and self.first_unregistered in self.registered:
            self.first_unregistered += 1
        todo = (i for i in range(self.first_unregistered, len(self.grid)) if i not in self.registered)
        numbers = list(itertools.islice(todo, max(0, self._want(already))))
        created = self.writer.add_running(connection, [self.params.rows(self.grid[n]) for n in numbers])
        refs = self.store.add_trials(
            connection,
            self.sweep_id,
            [(n, self.grid[n], optuna_number) for n, (_, optuna_number) in zip(numbers, created)],
        )
        self.registered.update(numbers)
        return [(trial_id, ref) for (trial_id, _), ref in zip(created, refs)]

    def ask_sampled(self, already: int = 0) -> list[Asked]:
        """New trials of a random or TPE sweep enough to fill a pack (at least one) with the ``already``
        asked, none once the study has all it needs; each asked of Optuna's sampler in turn.

        Trials an interrupted sweep queued (enqueued, never asked) are asked first, never queued twice.
        """
        self.lease.check()
        trials = self.study.get_trials(deepcopy=False)
        if not trials:
            _optuna.enqueue_baseline(self.study)
        waiting = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        # Queued trials are asked first (Optuna pops them in order), then new ones are numbered on.
        numbers = itertools.chain((t.number for t in waiting), itertools.count(len(trials) + (not trials)))
        settled = sum(t.state not in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING) for t in trials)
        asked = []
        for _ in range(max(0, min(self._want(already), self.n_trials - settled))):
            self.study.sampler = _sampler(self.spec, next(numbers))
            trial = self.study.ask()
            asked.append((trial._trial_id, self.trial_ref(trial)))
        return asked

    def _record(self, number: int, task: str, repeat: int, value: float | None, diverged: bool) -> None:
        finite = value is not None and math.isfinite(value) and not diverged
        self.values.setdefault(number, {}).setdefault(task, {})[repeat] = value if finite else math.nan

    def _add_curve(self, number: int, epochs, values) -> None:
        curve = self.curves.setdefault(number, {})
        for epoch, value in zip(epochs, values):
            point = curve.setdefault(int(epoch), [0.0, 0])
            if math.isfinite(value):
                point[0] += float(value)
                point[1] += 1

    def _load_curves(self, numbers: list[int]) -> None:
        """The curves of runs an earlier run of the sweep stored for these trials."""
        for number, epoch, value in self.store.trial_curves(self.sweep_id, numbers, self.spec.metric):
            self._add_curve(number, (epoch,), (math.nan if value is None else value,))

    def pack_writer(self) -> _PackWriter:
        """A writer of this sweep's finished packs (its own thread and connection)."""
        return _PackWriter(self.store, self.sweep_id, self.owner, self.lease)

    def train(self, runs: list[PlannedRun], writer: _PackWriter | None = None) -> tuple | None:
        """Trains the runs' packs, each finished pack stored while the next one trains (``_PackWriter``).
        With no ``writer``, returns when every pack is stored. With the caller's, returns the last trained
        ``(pack, results)`` (None without packs) for the caller to hand over (``put``) once it has done its
        own writes, so that they do not wait on this pack's (SQLite writes one transaction at a time); the
        others are handed over as they finish, their writes recorded as they are drained. An interruption
        first lets the packs already trained be stored."""
        packs = plan(self.spec.seed, self.spec.tasks, runs, self.sizes)
        own = writer is None
        writer = writer or self.pack_writer()

        def on_epochs(pack, member_epochs: int) -> None:
            # Called between the engine's chunks (each logging interval): a lost lease (or a failed write
            # of a pack before) stops training here, whatever SIGINT's disposition (nohup, a background
            # job), and on Ray the executor then cancels the trials still running.
            self.lease.check()
            writer.check()
            for done in writer.drain():  # the packs stored while this one trains: progress says so now
                self.stored(*done)
            if self.progress is not None:
                self.training[id(pack)] = member_epochs / pack.task.epochs
                self.progress.training(sum(self.training.values()), len(self.training))

        held = None  # the round's last pack, trained, not yet handed over
        try:
            for k, (pack, results) in enumerate(self.executor.run(packs, on_epochs=on_epochs), 1):
                if own or k < len(packs):
                    self.put(writer, pack, results)
                else:
                    held = (pack, results)
        except BaseException:
            if held is not None:  # interrupted after the round's last pack trained: it is stored first
                self.put(writer, *held)
            raise
        finally:
            if own:
                self.close_writer(writer)
        return held  # None with its own writer: it handed over every pack

    def put(self, writer: _PackWriter, pack: Pack, results) -> None:
        """Hands a trained pack to ``writer``, recording the packs it stored meanwhile."""
        for done in writer.put(pack, results):
            self.stored(*done)

    def close_writer(self, writer: _PackWriter) -> None:
        """Waits until the writer stored every pack handed over (also on an interruption: the packs trained
        are stored first) and records them; raises what stopped it, if anything."""
        with writes_finish():
            for done in writer.close():
                self.stored(*done)
        writer.check()

    def stored(self, pack: Pack, results) -> None:
        """Records a pack the writer stored: its runs done, their metrics and curves, progress."""
        for t, m, r in zip(pack.trial_ids, pack.members, results):
            number = self.numbers[t]
            self.done.add((number, pack.task_name, m.repeat))
            self._record(number, pack.task_name, m.repeat, r.final.get(self.spec.metric), r.diverged)
            if self.spec.metric in r.curves:
                self._add_curve(number, r.curve_epochs, np.asarray(r.curves[self.spec.metric], dtype=float))
        self.trained += len(pack)
        if self.progress is not None:
            self.training.pop(id(pack), None)
            self.progress.training(sum(self.training.values()), len(self.training))
            self.progress.advance(len(pack))

    def tell(self, connection, asked: list[Asked]) -> None:
        """Stores each trial's objective and tells Optuna, in the ``connection``'s transaction: the mean
        metric over its tasks (each the mean over finished repeats). A trial with no finished run on
        some task (all diverged) has no objective; Optuna is told the worst value, so adaptive samplers
        learn to avoid it. Its user attributes and mean curve go with it.
        """
        self.lease.check()
        per_trial = [self.values.get(ref.number, {}) for _, ref in asked]
        objectives, finished = [], []
        worst = -math.inf if self.spec.higher_is_better else math.inf
        for (trial_id, ref), per_task, ci in zip(asked, per_trial, self.summaries.intervals(per_trial)):
            finite_runs = [[r[k] for k in sorted(r) if math.isfinite(r[k])] for r in per_task.values()]
            means = [sum(v) / len(v) for v in finite_runs if v]
            objective = sum(means) / len(means) if len(means) == len(self.spec.tasks) else math.nan
            finite = math.isfinite(objective)
            objectives.append((ref.id, objective if finite else None))
            curve = {
                epoch: total / count if count else math.nan
                for epoch, (total, count) in sorted(self.curves.pop(ref.number, {}).items())
            }
            attrs = {
                "label": config_label(ref.config),
                "n_runs": sum(map(len, per_task.values())),
                "mean": objective if finite else None,
                "ci": ci,
            }
            if self.race is not None:  # how far the race took it, and why it stopped
                attrs["repeats"] = int(self.race.targets[ref.number])
                attrs["stopped"] = self.race.stopped[ref.number]
            finished.append(_optuna.Finished(trial_id, objective if finite else worst, attrs, curve))
        self.store.complete_trials(connection, objectives)
        _optuna.StudyWriter.complete(connection, finished)

    def tell_and_ask(self, asked: list[Asked]) -> list[Asked]:
        """Tells a finished round and asks the next: for a grid in one transaction."""
        with self.store.transaction() as connection:
            self.tell(connection, asked)
            if self.grid is not None:
                return self.ask_grid(connection)
        return self.ask_sampled()

    def run(self) -> None:
        total = self.n_trials * self.spec.repeats * len(self.spec.tasks)
        if self.progress is not None:
            self.progress.start(total, min(len(self.done), total))
        # Trials an interrupted sweep left running are finished first, with the configs they had.
        with writes_finish():
            asked = self.resume()
        if self.grid is not None and self.race is None:
            self.run_grid(asked)
            return
        while asked:
            self.numbers.update({ref.id: ref.number for _, ref in asked})
            if self.race is None:
                self.train([run for _, ref in asked for run in self.pending_runs(ref)])
            else:
                self.run_race(asked)
            with writes_finish():
                asked = self.tell_and_ask(asked)

    def run_grid(self, asked: list[Asked]) -> None:
        """A fixed grid's rounds, each stored while the next one trains. Once a round has trained, one
        transaction tells the round before (its runs stored by then) and asks the next; only then is the
        round's last pack handed to the writer. No sampler learns from a grid's objectives, so asking a
        round before the last is told proposes the same trials; an interruption leaves at most two rounds
        running, which ``resume`` finishes as one."""
        writer = self.pack_writer()
        storing: tuple[list[Asked], int] | None = None  # the round trained last; the packs handed over with it
        try:
            while asked or storing is not None:
                trained, last = asked, None
                if trained:
                    self.numbers.update({ref.id: ref.number for _, ref in trained})
                    last = self.train([run for _, ref in trained for run in self.pending_runs(ref)], writer)
                try:
                    with writes_finish():
                        if storing is not None:
                            for done in writer.wait_for(storing[1]):
                                self.stored(*done)
                        with self.store.transaction() as connection:
                            if storing is not None:
                                self.tell(connection, storing[0])
                            asked = self.ask_grid(connection) if trained else []
                finally:
                    if last is not None:  # stored while the next round trains (interrupted: before it stops)
                        self.put(writer, *last)
                storing = (trained, writer.handed) if trained else None
        finally:
            self.close_writer(writer)

    def run_race(self, asked: list[Asked]) -> None:
        """A raced sweep's rounds: each trains the runs the race gives the configurations still open,
        then the race is decided again on the stored runs; one progress line a round."""
        fixed = len(self.grid) * self.spec.repeats * len(self.spec.tasks)
        while True:
            runs = [run for _, ref in asked for run in self.pending_runs(ref)]
            said = getattr(self.progress, "race_round", None)
            if said is not None:
                said(
                    self.race.rounds + 1 if runs else self.race.rounds, self.race.open, len(self.done), fixed, not runs
                )
            if not runs:
                return
            self.train(runs)
            self.race = self.race_now()


class _PackWriter:
    """Stores finished packs from a thread of its own (its own connection), so that a pack is written while the
    next one trains; one pack at most waits its turn.

    Every write is checked as before: the lease first (a run that lost it writes nothing more), and
    ``save_runs`` stores a pack only while its owner holds the lease, in one transaction, skipping runs already
    stored. A write in this thread is never cut by a signal (Python delivers them to the main thread), so a
    killed or interrupted run leaves each pack stored whole or not at all. The driver learns what was stored
    from ``put`` and ``close`` and records it in its own thread.
    """

    def __init__(self, store: Store, sweep_id: int, owner: Owner, lease):
        self.store, self.sweep_id, self.owner, self.lease = store, sweep_id, owner, lease
        self.todo: queue.Queue = queue.Queue(maxsize=1)
        self.stored: queue.SimpleQueue = queue.SimpleQueue()  # (pack, results) once written
        self.handed = self.returned = 0  # packs handed over; packs stored and handed back to the driver
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def put(self, pack, results) -> list:
        """Hands a trained pack over (waiting while another waits its turn); the packs stored meanwhile."""
        self.check()
        if self.thread is None:
            self.thread = threading.Thread(target=self._write, name="sweeper-pack-writer", daemon=True)
            self.thread.start()
        while True:
            try:
                self.todo.put((pack, results), timeout=0.05)
                self.handed += 1
                break
            except queue.Full:
                self.check()
        return self.drain()

    def check(self) -> None:
        """Raises what stopped the writer (a lost lease, a database error), in the driver's thread."""
        if self.error is not None:
            raise self.error

    def close(self) -> list:
        """Waits until every pack handed over is stored (or the writer stopped); the packs stored since the
        last ``put``. What stopped the writer, if anything, ``check`` raises."""
        if self.thread is not None:
            self.todo.put(None)
            self.thread.join()
        return self.drain()

    def wait_for(self, handed: int) -> list:
        """Waits until the first ``handed`` packs handed over are stored (they are stored in turn); the packs
        stored since the last ``put``, ``drain`` or ``close``. If the writer stopped before storing them,
        what stopped it is raised (``check``)."""
        out = []
        while self.returned < handed:
            try:
                out.append(self.stored.get(timeout=0.05))
            except queue.Empty:
                self.check()  # a pack stored before the writer stopped is always in the queue first
                continue
            self.returned += 1
        return out

    def drain(self) -> list:
        """The packs stored since the last ``put``, ``drain`` or ``close`` (in the driver's thread)."""
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.stored.get_nowait())
        self.returned += len(out)
        return out

    def _write(self) -> None:
        while (item := self.todo.get()) is not None:
            if self.error is not None:
                continue  # stopped: what is left is not written, and the driver is told at its next check
            pack, results = item
            try:
                self.lease.check()
                items = [(t, pack.task_name, m, r) for t, m, r in zip(pack.trial_ids, pack.members, results)]
                self.store.save_runs(self.sweep_id, items, self.owner)
            except BaseException as exc:  # noqa: BLE001 - raised again in the driver's thread
                self.error = exc
            else:
                self.stored.put(item)


def run_sweep(
    sweep: Prepared | SweepSpec, store: Store, executor: Executor | None = None, progress: Progress | None = None
) -> SweepOutcome:
    """Runs (or resumes) a sweep to the end; an interruption leaves every finished pack stored.

    ``sweep``: what :func:`~sweeper.driver.prepare.prepare` made of it (trained on its executor), or a
    spec, prepared here for ``executor``. While it runs the sweep is this run's alone: it holds the
    sweep's lease, renewed by a heartbeat (``sweeper.store._lease``); LeaseError, one line naming the
    holder, if another run holds it, and nothing is written. A completed sweep is left as it is
    (``SweepOutcome.complete``).
    """
    start = time.perf_counter()
    if not isinstance(sweep, Prepared):
        if executor is None:
            raise TypeError("run_sweep: a spec needs the executor to train on")
        sweep = prepare(sweep, executor)
    elif executor not in (None, sweep.executor):
        raise TypeError("run_sweep: a prepared sweep trains on the executor it was prepared for")
    spec, executor = sweep.spec, sweep.executor
    extending = check_resumable(spec, store)  # before anything of the sweep is written
    storage = store.optuna_storage()  # first: Optuna's tables refused, nothing of the sweep is written
    problems = {t.problem for t in spec.tasks.values()}
    owner = Owner.here()
    with writes_finish():
        sweep_id = store.start_sweep(
            spec.name,
            spec.source_text,
            seed=spec.seed,
            metric=spec.metric,
            higher_is_better=spec.higher_is_better,
            repeats=spec.repeats,
            problem=problems.pop() if len(problems) == 1 else "mixed",
            overrides=spec.overrides,
            machine=this_machine(executor.device),
            owner=owner,
            data_files=files.described(spec.tasks, spec.data_dir),
            context=context.sweep_context(spec, sweep.split_sizes),
            extending=None if extending is None else (extending.spec_yaml, extending.overrides),
        )
    if sweep_id is None:
        sweep_id = store.sweep(spec.name)["id"]
        return SweepOutcome(
            sweep_id, spec.name, len(store.done_runs(sweep_id)), 0, time.perf_counter() - start, complete=True
        )
    # A lost lease stops training at the engine's next chunk (``_Sweep.train``'s progress callback).
    lease = store.heartbeat(sweep_id, spec.name, owner)
    try:
        with lease:
            with writes_finish():
                running = _Sweep(spec, store, executor, progress, sweep.pack_sizes, storage, sweep_id, owner, lease)
            running.run()
            _optuna.record_verdicts(store, spec.name)
            lease.check()
    except BaseException as exc:
        with writes_finish():
            # A lost lease interrupts the sweep: nothing in it failed, and the next run goes on with it.
            stopped = isinstance(exc, (KeyboardInterrupt, LeaseError))
            _finish_quietly(store, sweep_id, "interrupted" if stopped else "failed", owner)
        if lease.lost is not None:
            lease.check()  # raises: the lease is why it stopped
        # Optuna's storage met a database error (a cut connection, say): one line, as the store's own.
        if isinstance(exc, (optuna.exceptions.StorageInternalError, SQLAlchemyError)):
            raise store.database_error(exc) from exc
        raise
    with writes_finish():
        store.finish_sweep(sweep_id, "completed", owner)
    return SweepOutcome(sweep_id, spec.name, len(running.done), running.trained, time.perf_counter() - start)


def _finish_quietly(store: Store, sweep_id: int, status: str, owner: Owner) -> None:
    """Record how the sweep ended and release its lease, if the database and the lease still allow it.

    When they do not (the database is gone, another run took the sweep over), the error that ended the
    sweep is the one to report; the lease then goes stale and the next run takes it over.
    """
    with contextlib.suppress(StoreError):
        store.finish_sweep(sweep_id, status, owner)
