"""The planner: groups (configuration, task, repeat) runs into packs that share a task and model."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from sweeper import seeding
from sweeper.records import Member
from sweeper.tasks.spec import TaskSpec


@dataclass(frozen=True)
class Pack:
    """A unit of work: members trained as one population. ``trial_ids[i]`` is the stored trial (its row id,
    not its number in the sweep) of ``members[i]``."""

    task_name: str
    task: TaskSpec
    members: tuple[Member, ...]
    trial_ids: tuple[int, ...]  # the trials\' row ids in the store

    def __len__(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class PlannedRun:
    """One run to do: a trial's configuration on a task at a repeat."""

    trial_id: int
    config: tuple
    task_name: str
    repeat: int


def member(sweep_seed: int, task: TaskSpec, run: PlannedRun) -> Member:
    """The member of a run, with the seeds of its streams (common random numbers across configurations)."""
    return Member(
        config=run.config,
        repeat=run.repeat,
        data_seed=seeding.data_seed(sweep_seed, run.repeat, task.dataset_seed),
        init_seed=seeding.init_seed(sweep_seed, run.repeat),
        noise_seed=seeding.noise_seed(sweep_seed, run.repeat, run.config),
    )


def plan(sweep_seed: int, tasks: dict[str, TaskSpec], runs: Sequence[PlannedRun], size: dict[str, int]) -> list[Pack]:
    """Packs of at most ``size[task]`` members, per task, in the order the runs were given."""
    packs = []
    # Each seed is a hash (SeedSequence, SHA-256): derived once per repeat and per configuration, not per run.
    data, init, key = _memo(seeding.data_seed), _memo(seeding.init_seed), _memo(seeding.config_key)
    for name, task in tasks.items():
        todo = [r for r in runs if r.task_name == name]
        members = [
            Member(
                config=r.config,
                repeat=r.repeat,
                data_seed=data(sweep_seed, r.repeat, task.dataset_seed),
                init_seed=init(sweep_seed, r.repeat),
                noise_seed=seeding.noise_seed_of_key(sweep_seed, r.repeat, key(r.config)),
            )
            for r in todo
        ]
        for i in range(0, len(todo), size[name]):
            chunk = slice(i, i + size[name])
            packs.append(Pack(name, task, tuple(members[chunk]), tuple(r.trial_id for r in todo[chunk])))
    return packs


def _memo(function):
    """``function`` remembering its answers for this call of :func:`plan` (its arguments hashable)."""
    return functools.lru_cache(maxsize=None)(function)
