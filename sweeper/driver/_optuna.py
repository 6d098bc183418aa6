"""Sweeper's side of Optuna: what a sweep's study says, and how its trials are written in bulk.

A sweep's Optuna study shows what sweeper knows, so that optuna-dashboard (or ``optuna.load_study``)
reads a sweep as a user does: each trial's real noise parameters, the objective under the metric's
name, per trial the label, the number of runs, the mean and its bootstrap interval (and the verdict the
report gives, once the sweep's trials are done), and as intermediate values the mean validation curve
over its runs.

Random and TPE sweeps get their configurations from Optuna's samplers (:func:`suggest`). A grid's
configurations are known in advance, so its trials are written straight into Optuna's tables, a
round of them in one statement per table (:class:`StudyWriter`): asking Optuna for each trial costs
several round trips to the database, and each of them grew with the study. Completing a trial
(values, intermediate values, user attributes, state) is written the same way for every sampler.
What is written is what Optuna's own ``ask``/``tell`` would write (tests/driver/test_optuna_study.py
compares the two field by field), in the tables of ``optuna.storages._rdb.models``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    distribution_to_json,
)
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from sweeper import metrics
from sweeper.errors import SpaceError
from sweeper.noise.spec import (
    BASELINE,
    DECAYS,
    DEFAULT_GAMMA,
    NoiseConfig,
    NoiseSpec,
    make_config,
    relative_fits,
)
from sweeper.stats import racing
from sweeper.stats import statistics as st
from sweeper.stats.comparisons import verdicts
from sweeper.store import insert_rows

#: The user attribute that marks a sampled study's baseline trial; ``suggest`` answers ``()`` for it.
BASELINE_USER_ATTR = "sweeper_baseline"
#: The interval of a trial's mean (user attribute ``ci``): as ``sweeper report`` computes it, a 95%
#: percentile bootstrap of 10,000 resamples of the repeats (its default seed, 0), on the selection metric.
CI_CONFIDENCE, CI_RESAMPLES, CI_SEED = 0.95, 10_000, 0


# --- random and TPE: configurations drawn by the sampler ------------------------------------------------


def suggest(spec: Any, trial: Any) -> NoiseConfig:
    """Samplers random/tpe: draw one configuration of ``spec``'s space with the trial's ``suggest_*`` calls.

    Parameters are ``placement`` (combined placements joined by ``+``) and, per site,
    ``<placement>.kind``, ``.std``, ``.schedule``, ``.gamma``, ``.std_min`` and ``.relative``; a
    choice with one value is not suggested. The baseline is not in the space: the driver queues it
    with :func:`enqueue_baseline`, and for that trial ``suggest`` returns ``()``.
    """
    if trial.user_attrs.get(BASELINE_USER_ATTR):
        return ()
    space = spec.search.space
    if space is None:
        raise SpaceError(f"{spec.source}: search.sampler: 'grid' has no space to sample from; use grid_configs()")
    label = _pick(trial, "placement", ["+".join(p) for p in space.placements])
    sites = []
    for placement in label.split("+"):
        kind = _pick(trial, f"{placement}.kind", space.kinds[placement])
        std = _draw(trial, f"{placement}.std", space.std)
        schedule = _pick(trial, f"{placement}.schedule", space.schedules)
        gamma, std_min, relative = DEFAULT_GAMMA, 0.0, False
        if schedule == "annealed":
            gamma = _draw(trial, f"{placement}.gamma", space.gamma)
        if schedule in DECAYS:
            std_min = _draw(trial, f"{placement}.std_min", space.std_min)
        if relative_fits(placement, kind):
            relative = bool(_pick(trial, f"{placement}.relative", space.relative))
        sites.append(NoiseSpec(placement, kind, std, schedule, gamma, std_min, relative))
    return make_config(s for s in sites if s.std > 0)  # noise of std 0 is no noise


def enqueue_baseline(study: Any) -> None:
    """Queue the no-noise baseline as the study's next trial (:func:`suggest` answers ``()`` for it)."""
    study.enqueue_trial({}, user_attrs={BASELINE_USER_ATTR: True})


def _pick(trial: Any, name: str, choices) -> Any:
    choices = list(choices)
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, choices)


def _draw(trial: Any, name: str, dist) -> float:
    if isinstance(dist, tuple):
        return float(_pick(trial, name, dist))
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


# --- grids: every configuration's parameters, known in advance -------------------------------------------


class GridParams:
    """The Optuna parameters of a grid's configurations: every trial carries the same names, so that
    Optuna's importance (which keeps the parameters all trials share), slice and parallel-coordinate
    plots use them all.

    A grid whose configurations have one site each names them ``placement``, ``kind``, ``std``,
    ``schedule``, and where they apply ``gamma`` (annealed), ``std_min`` (linear, cosine) and
    ``relative``. A grid of combined placements names ``placement`` (``input+weights``) and, per
    placement, ``<placement>.kind``, ``<placement>.std``, ... The baseline, and a configuration without
    noise at a placement, is ``none`` there with std 0. A parameter with one value wherever there is
    noise is left out (``placement`` tells the rest apart). Words are categorical over the grid's
    values (in file order); numbers are a float range over them, log-scaled where they are positive
    and span a decade or more: a row's distribution stays the same few bytes however large the grid.
    """

    def __init__(self, configs: Sequence[NoiseConfig]):
        sites = {s.placement for config in configs for s in config}
        self.slots: list[str | None] = (
            [None]
            if max(map(len, configs), default=0) <= 1
            else [p for p in dict.fromkeys(s.placement for config in configs for s in config) if p in sites]
        )
        values: dict[str, list] = {}
        noisy: dict[str, set] = {}  # the values of configurations with noise there
        for config in configs:
            for name, value, present in self._values(config):
                values.setdefault(name, []).append(value)
                if present:
                    noisy.setdefault(name, set()).add(value)
        self.distributions: dict[str, BaseDistribution] = {}
        for name, seen in values.items():
            distinct = list(dict.fromkeys(seen))
            if len(noisy.get(name, ())) < 2 and name != "placement":
                continue  # one value wherever there is noise: placement tells the rest apart
            if isinstance(distinct[0], float):
                low, high = min(distinct), max(distinct)
                self.distributions[name] = FloatDistribution(low, high, log=low > 0 and high >= 10 * low)
            else:
                self.distributions[name] = CategoricalDistribution(distinct)
        self._json = {name: distribution_to_json(d) for name, d in self.distributions.items()}

    def _values(self, config: NoiseConfig) -> list[tuple[str, Any, bool]]:
        """(name, value, whether the configuration has noise there) of every parameter a configuration
        has, before those that tell nothing apart are dropped."""
        out: list[tuple[str, Any, bool]] = [("placement", "+".join(s.placement for s in config) or BASELINE, True)]
        by_placement = {s.placement: s for s in config}
        for slot in self.slots:
            site = (config[0] if config else None) if slot is None else by_placement.get(slot)
            prefix = "" if slot is None else f"{slot}."
            if site is None:
                out += [
                    (prefix + "kind", BASELINE, False),
                    (prefix + "std", 0.0, False),
                    (prefix + "schedule", BASELINE, False),
                ]
                continue
            out += [
                (prefix + "kind", site.kind, True),
                (prefix + "std", site.std, True),
                (prefix + "schedule", site.schedule, True),
            ]
            if site.schedule == "annealed":
                out.append((prefix + "gamma", site.gamma, True))
            if site.schedule in DECAYS:
                out.append((prefix + "std_min", site.std_min, True))
            if relative_fits(site.placement, site.kind):
                out.append((prefix + "relative", site.relative, True))
        return out

    def params(self, config: NoiseConfig) -> dict[str, Any]:
        """The configuration's parameters, as ``FrozenTrial.params`` shows them."""
        return {name: value for name, value, _ in self._values(config) if name in self.distributions}

    def rows(self, config: NoiseConfig) -> list[dict]:
        """The configuration's ``trial_params`` rows, but their ``trial_id``."""
        return [
            {
                "param_name": name,
                "distribution_json": self._json[name],
                "param_value": self.distributions[name].to_internal_repr(value),
            }
            for name, value in self.params(config).items()
        ]


# --- what a finished trial says --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """What the study records of a finished trial: Optuna's trial id, the value it is told, its user
    attributes, and the mean curve (logged epoch -> mean metric) as intermediate values."""

    trial_id: int
    value: float
    user_attrs: dict[str, Any]
    curve: dict[int, float]


class Summaries:
    """A trial's mean and interval as ``sweeper report`` computes them (``sweeper.stats.statistics``), on
    the selection metric: per task the mean over finished repeats, averaged over tasks, and the
    percentile bootstrap of repeats resampled within each task (the resamples drawn once per sweep,
    shared by every trial as the report shares them across configurations).

    A round's trials are summarised in one call, the interval read from one sort of each trial's resampled
    means. Resamples that draw the same repeats (on every task) have the same mean, so with few repeats
    the means are computed once per distinct resample and weighted: 3 per trial of 2 repeats, not 10,000.
    """

    def __init__(self, tasks: Sequence[str], repeats: int):
        rng = np.random.default_rng(CI_SEED)
        self.tasks, self.repeats = list(tasks), repeats
        # As floats: the means are then one BLAS product per round (integer counts take numpy's slow loop).
        counts = [st.bootstrap_counts(repeats, CI_RESAMPLES, rng).astype(float) for _ in self.tasks]
        rows, weights = st.distinct_resamples(np.concatenate(counts, axis=1))
        # Few distinct resamples (few repeats): their means, with weights. Many: every resample's mean.
        self.weights: np.ndarray | None = weights if len(weights) <= CI_RESAMPLES // 4 else None
        if self.weights is not None:
            counts = [rows[:, i * repeats : (i + 1) * repeats] for i in range(len(self.tasks))]
        self.counts = counts

    def intervals(self, values: list[dict[str, dict[int, float]]]) -> list[list[float | None]]:
        """[low, high] of each trial's mean; ``values[i]`` maps task -> repeat -> metric (NaN: diverged)."""
        if not values:
            return []
        table = np.full((len(self.tasks), self.repeats, len(values)), np.nan)  # (tasks, repeats, trials)
        for t, task in enumerate(self.tasks):
            for i, per_task in enumerate(values):
                for repeat, value in per_task.get(task, {}).items():
                    table[t, repeat, i] = value
        if np.isnan(table).any():
            boot = np.stack([st.bootstrap_means(table[t], counts) for t, counts in enumerate(self.counts)])
        else:  # every resample draws `repeats` finished runs: bootstrap_means' total / drawn, to the bit
            boot = np.stack([st.repeat_sums(counts, table[t]) / self.repeats for t, counts in enumerate(self.counts)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: every run of a trial diverged
            means = np.nanmean(boot, axis=0) if len(self.tasks) > 1 else boot[0]  # (resamples, trials)
        interval = st.percentile_interval_by_sorting(means, CI_CONFIDENCE, self.weights)
        return [[_finite(low), _finite(high)] for low, high in interval.T.tolist()]


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --- Optuna's tables, written in bulk ------------------------------------------------------------------


def _utcnow() -> datetime:
    """Now as Optuna's RDB storage keeps times: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


_TRIALS = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_VALUES = models.TrialValueModel.__table__
_INTERMEDIATE = models.TrialIntermediateValueModel.__table__
_USER_ATTRS = models.TrialUserAttributeModel.__table__


class StudyWriter:
    """Writes one study's trials in bulk, in the caller's transaction (``connection``).

    Its run holds the sweep's lease, so nobody else adds trials meanwhile: trial numbers are counted
    once and go on from there, as Optuna numbers a study's trials (in the order they were created).
    """

    def __init__(self, connection: Connection, study_id: int):
        self.study_id = study_id
        self.next_number = connection.scalar(select(func.count()).where(_TRIALS.c.study_id == study_id))

    def add_running(self, connection: Connection, params: list[list[dict]]) -> list[tuple[int, int]]:
        """New running trials, one per item of ``params`` (its ``trial_params`` rows, ``trial_id`` left
        out): as ``Study.ask`` starts a trial and its ``suggest_*`` calls record parameters. Returns the
        (trial id, number) of each, in order."""
        if not params:
            return []
        now = _utcnow()
        rows = [
            {
                "study_id": self.study_id,
                "number": self.next_number + i,
                "state": TrialState.RUNNING,
                "datetime_start": now,
                "datetime_complete": None,
            }
            for i in range(len(params))
        ]
        created = connection.execute(
            insert(_TRIALS).returning(_TRIALS.c.trial_id, _TRIALS.c.number, sort_by_parameter_order=True), rows
        ).all()
        self.next_number += len(rows)
        param_rows = [{**row, "trial_id": trial_id} for (trial_id, _), rows_ in zip(created, params) for row in rows_]
        insert_rows(connection, _PARAMS, param_rows)
        return [(trial_id, number) for trial_id, number in created]

    @staticmethod
    def complete(connection: Connection, finished: list[Finished]) -> None:
        """Completes running trials: as ``Trial.report`` for each curve point and ``set_user_attr`` for
        each attribute, then ``Study.tell`` with the value."""
        if not finished:
            return
        intermediate = []
        for f in finished:
            for step, value in f.curve.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                intermediate.append(
                    {
                        "trial_id": f.trial_id,
                        "step": step,
                        "intermediate_value": stored,
                        "intermediate_value_type": kind,
                    }
                )
        insert_rows(connection, _INTERMEDIATE, intermediate)
        attrs = [
            {"trial_id": f.trial_id, "key": key, "value_json": json.dumps(value)}
            for f in finished
            for key, value in f.user_attrs.items()
        ]
        insert_rows(connection, _USER_ATTRS, attrs)
        values = []
        for f in finished:
            stored, kind = models.TrialValueModel.value_to_stored_repr(f.value)
            values.append({"trial_id": f.trial_id, "objective": 0, "value": stored, "value_type": kind})
        insert_rows(connection, _VALUES, values)
        done = (
            update(_TRIALS)
            .where(_TRIALS.c.trial_id == bindparam("id"), _TRIALS.c.state == TrialState.RUNNING)
            .values(state=TrialState.COMPLETE, datetime_complete=bindparam("complete"))
        )
        now = _utcnow()
        connection.execute(done, [{"id": f.trial_id, "complete": now} for f in finished])

    @staticmethod
    def set_user_attrs(connection: Connection, attrs: dict[int, dict[str, Any]]) -> None:
        """User attributes of trials (trial id -> key -> value), replacing those of the same key, also of
        finished trials (which ``Trial.set_user_attr`` no longer takes): the verdicts."""
        rows = [(trial_id, key, json.dumps(value)) for trial_id, items in attrs.items() for key, value in items.items()]
        if not rows:
            return
        table = _USER_ATTRS
        connection.execute(
            table.delete().where(table.c.trial_id == bindparam("t"), table.c.key == bindparam("k")),
            [{"t": t, "k": k} for t, k, _ in rows],
        )
        insert_rows(connection, table, [{"trial_id": t, "key": k, "value_json": v} for t, k, v in rows])


def trial_ids(connection: Connection, study_id: int, numbers: Sequence[int]) -> dict[int, int]:
    """Optuna trial number -> trial id, for these numbers of the study."""
    statement = select(_TRIALS.c.number, _TRIALS.c.trial_id).where(
        _TRIALS.c.study_id == study_id, _TRIALS.c.number.in_(list(numbers))
    )
    return dict(connection.execute(statement).all())


def record_user_attrs(connection: Connection, study_name: str, attrs: dict[int, dict[str, Any]]) -> None:
    """User attributes of the study's trials, by Optuna trial number (the verdicts, say)."""
    studies = models.StudyModel.__table__
    study_id = connection.scalar(select(studies.c.study_id).where(studies.c.study_name == study_name))
    if study_id is not None:
        ids = trial_ids(connection, study_id, list(attrs))
        StudyWriter.set_user_attrs(connection, {ids[number]: items for number, items in attrs.items() if number in ids})


def record_verdicts(store, sweep_name: str) -> None:
    """Each configuration's verdict against the baseline (as ``sweeper report`` gives it at its defaults),
    as the user attribute ``verdict`` of its trial in the sweep's study: what optuna-dashboard shows.
    ``store`` is the sweep's ``sweeper.store.Store``; the driver calls it when the sweep's trials are done."""
    sweep, trials = store.sweep(sweep_name), store.trials(sweep_name)
    context = sweep.context or {}
    plan = racing.plan_of(context)
    if plan is None and sweep.metric:  # a fixed sweep's verdicts read only the test metric's columns
        runs = store.outcomes(sweep_name, metrics.base(sweep.metric))
    else:
        runs = store.runs(sweep_name)
    found = verdicts(sweep, trials, runs, planned=context.get("planned"), plan=plan)
    optuna_numbers = {t.trial: t.optuna_trial_id for t in trials if t.optuna_trial_id is not None}
    attrs = {optuna_numbers[n]: {"verdict": v} for n, v in found.items() if n in optuna_numbers}
    if attrs:
        with store.transaction() as connection:
            record_user_attrs(connection, sweep.study_name, attrs)


def _study_trials(connection: Connection, study_name: str, numbers: Sequence[int]) -> dict[int, int]:
    """Optuna trial number -> trial id of these trials of the named study ({} if it has none)."""
    studies = models.StudyModel.__table__
    study_id = connection.scalar(select(studies.c.study_id).where(studies.c.study_name == study_name))
    return {} if study_id is None or not numbers else trial_ids(connection, study_id, numbers)


def reopen(connection: Connection, study_name: str, numbers: Sequence[int]) -> None:
    """Puts completed trials (Optuna numbers) of an extended sweep back to running, their value, curve and
    user attributes cleared, so that they are told again over all their runs as a new trial would be.
    Call it before the study is loaded (Optuna's storage caches finished trials) and while holding the
    sweep's lease. (Their told user attributes go; those they were created with stay.)"""
    ids = list(_study_trials(connection, study_name, numbers).values())
    if not ids:
        return
    complete = select(_TRIALS.c.trial_id).where(_TRIALS.c.trial_id.in_(ids), _TRIALS.c.state == TrialState.COMPLETE)
    ids = list(connection.scalars(complete))
    for table in (_VALUES, _INTERMEDIATE):
        connection.execute(table.delete().where(table.c.trial_id.in_(ids)))
    # What telling it wrote and the verdict; not what it was created with (the baseline's mark, say).
    told = _USER_ATTRS.c.key.in_(["label", "n_runs", "mean", "ci", "verdict", "repeats", "stopped"])
    connection.execute(_USER_ATTRS.delete().where(_USER_ATTRS.c.trial_id.in_(ids), told))
    reopened = update(_TRIALS).where(_TRIALS.c.trial_id.in_(ids))
    connection.execute(reopened.values(state=TrialState.RUNNING, datetime_complete=None))


def set_params(connection: Connection, study_name: str, params: dict[int, list[dict]]) -> None:
    """Gives trials (Optuna number -> ``trial_params`` rows, ``trial_id`` left out) these parameters where
    theirs differ: a grid extended with new values widens its distributions, and its stored trials get
    them as the trials of a grid of the final size would have them."""
    ids = _study_trials(connection, study_name, list(params))
    stored: dict[int, set] = {trial_id: set() for trial_id in ids.values()}
    rows = select(_PARAMS.c.trial_id, _PARAMS.c.param_name, _PARAMS.c.distribution_json, _PARAMS.c.param_value)
    for trial_id, *row in connection.execute(rows.where(_PARAMS.c.trial_id.in_(list(stored)))):
        stored[trial_id].add(tuple(row))
    changed = {
        trial_id: params[number]
        for number, trial_id in ids.items()
        if stored[trial_id] != {(r["param_name"], r["distribution_json"], r["param_value"]) for r in params[number]}
    }
    if changed:
        connection.execute(_PARAMS.delete().where(_PARAMS.c.trial_id.in_(list(changed))))
        connection.execute(insert(_PARAMS), [{**r, "trial_id": t} for t, rows_ in changed.items() for r in rows_])


def forget_partial_suggestions(connection: Connection, study_name: str, suggested: set[int]) -> list[int]:
    """Clears the parameters of the study's RUNNING trials that are not in ``suggested`` (the Optuna
    trial numbers whose whole configuration sweeper stored); returns their numbers.

    Optuna stores each parameter as it is suggested, so a run killed between two ``suggest`` calls of
    one trial leaves it with some of its parameters. Suggesting the rest on resume would draw them from
    a fresh sampler whose generator had not made the draws of the first ones, so the trial would not
    get the configuration an uninterrupted sweep gives it (and every later trial would differ). With
    its parameters cleared, the trial is suggested again from the start, by the sampler seeded as
    before, on the same finished trials: the same configuration. Call it before the study is loaded
    (Optuna's storage caches what it reads) and while holding the sweep's lease.
    """
    studies = models.StudyModel.__table__
    study_id = connection.scalar(select(studies.c.study_id).where(studies.c.study_name == study_name))
    if study_id is None:
        return []
    running = connection.execute(
        select(_TRIALS.c.trial_id, _TRIALS.c.number).where(
            _TRIALS.c.study_id == study_id, _TRIALS.c.state == TrialState.RUNNING
        )
    ).all()
    partial = {trial_id: number for trial_id, number in running if number not in suggested}
    if partial:
        connection.execute(_PARAMS.delete().where(_PARAMS.c.trial_id.in_(list(partial))))
    return sorted(partial.values())
