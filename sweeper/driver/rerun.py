"""Rerun a stored trial from its stored seeds, to check that its numbers reproduce."""

from __future__ import annotations

from sweeper.driver.planner import Run, member
from sweeper.driver.sweep import spec_from_store
from sweeper.engine.population import train_population
from sweeper.errors import SweeperError
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.store import Store
from sweeper.store.models import METRICS


def rerun_trial(store: Store, sweep: str, trial: int, repeat: int | None, device: str = "cpu") -> list[dict]:
    """Trains the trial's runs again (one pack per task) and returns stored and new metrics per run."""
    row = store.sweep(sweep)
    spec = spec_from_store(row["spec_yaml"], f"sweep {sweep!r}")
    trial_row = next((t for t in store.trials(sweep) if t["trial"] == trial), None)
    if trial_row is None:
        raise SweeperError(f"sweep {sweep!r} has no trial {trial}; see: sweeper trials {sweep}")
    config = make_config(NoiseSpec(**p) for p in trial_row["params"])
    stored = [r for r in store.runs(sweep) if r["trial"] == trial and (repeat is None or r["repeat"] == repeat)]
    if not stored:
        raise SweeperError(f"sweep {sweep!r} trial {trial} has no stored run" + (f" at repeat {repeat}" if repeat is not None else ""))
    metrics = [m for m in METRICS if m in stored[0]]
    rows = []
    for task_name, task in spec.tasks.items():
        mine = [r for r in stored if r["task"] == task_name]
        members = [member(spec.seed, task, Run(0, config, task_name, r["repeat"])) for r in mine]
        if not members:
            continue
        for r, m, result in zip(mine, members, train_population(task, members, device)):
            if (m.data_seed, m.init_seed, m.noise_seed) != (r["data_seed"], r["init_seed"], r["noise_seed"]):
                raise SweeperError(f"trial {trial} repeat {r['repeat']}: the seeds derived now differ from the stored ones")
            line = {"task": task_name, "repeat": r["repeat"]}
            for name in metrics:
                new = result.final.get(name)
                line[f"stored_{name}"], line[f"new_{name}"] = r[name], new
            line["same"] = all(_same(r[n], result.final.get(n)) for n in metrics)
            rows.append(line)
    return rows


def _same(a, b) -> bool:
    if a is None or b is None or b != b:
        return (a is None) == (b is None or b != b)
    return abs(a - b) <= 1e-6 * max(1.0, abs(a))
