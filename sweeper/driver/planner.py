"""The planner: groups (configuration, task, repeat) runs into packs that share a task and model."""

from __future__ import annotations

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
    for name, task in tasks.items():
        todo = [r for r in runs if r.task_name == name]
        for i in range(0, len(todo), size[name]):
            chunk = todo[i : i + size[name]]
            packs.append(
                Pack(name, task, tuple(member(sweep_seed, task, r) for r in chunk), tuple(r.trial_id for r in chunk))
            )
    return packs
