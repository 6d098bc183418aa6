"""Rerun a stored trial from its stored seeds, to check that its numbers reproduce."""

from __future__ import annotations

from collections.abc import Callable

from sweeper import metrics
from sweeper.driver.planner import PlannedRun, member
from sweeper.driver.prepare import refuse_changed_data, refuse_old_annealing, spec_from_store
from sweeper.engine.population import train_population
from sweeper.errors import SweeperError
from sweeper.records import RunResult
from sweeper.store import Store

#: What a rerun compares with the stored runs (the host may differ: the same software on the same
#: kind of device gives the same numbers anywhere), and how a warning names it.
COMPARED = {
    "sweeper_version": "sweeper",
    "torch_version": "torch",
    "engine": "engine",
    "device": "device",
    "cpu": "CPU",
    "gpu": "GPU",
}


def rerun_trial(
    store: Store,
    sweep: str,
    trial: int,
    repeat: int | None,
    device: str = "cpu",
    warn: Callable[[str], None] | None = None,
) -> list[dict]:
    """Trains the trial's runs again (one pack per task) and returns stored and new metrics per run.

    ``warn`` gets one line if the rerun's software, engine or device differ from what trained the
    stored runs (the numbers then need not agree).
    """
    row = store.sweep(sweep)
    spec = spec_from_store(row, f"sweep {sweep!r}")
    refuse_changed_data(spec, row["data_files"])
    ref = next((t for t in store.trial_refs(sweep) if t.number == trial), None)
    if ref is None:
        raise SweeperError(f"sweep {sweep!r} has no trial {trial}; see: sweeper trials {sweep}")
    stored = [r for r in store.runs(sweep) if r["trial"] == trial and (repeat is None or r["repeat"] == repeat)]
    if not stored:
        raise SweeperError(
            f"sweep {sweep!r} trial {trial} has no stored run" + (f" at repeat {repeat}" if repeat is not None else "")
        )
    for version in {r["sweeper_version"] for r in stored}:
        refuse_old_annealing(spec, version)
    compared = [m for m in metrics.COLUMNS if m in stored[0]]
    rows = []
    differences: dict[str, dict[str, set[str]]] = {}  # field -> value now -> values stored
    for task_name, task in spec.tasks.items():
        mine = [r for r in stored if r["task"] == task_name]
        members = [member(spec.seed, task, PlannedRun(0, ref.config, task_name, r["repeat"])) for r in mine]
        if not members:
            continue
        for r, m, result in zip(mine, members, train_population(task, members, device)):
            if (m.data_seed, m.init_seed, m.noise_seed) != (r["data_seed"], r["init_seed"], r["noise_seed"]):
                raise SweeperError(
                    f"trial {trial} repeat {r['repeat']}: the seeds derived now differ from the stored ones"
                )
            line = {"task": task_name, "repeat": r["repeat"]}
            for name in compared:
                new = result.final.get(name)
                line[f"stored_{name}"], line[f"new_{name}"] = r[name], new
            line["same"] = all(_same(r[n], result.final.get(n)) for n in compared)
            rows.append(line)
            for key, (new, old) in _differences(r, result).items():
                differences.setdefault(key, {}).setdefault(new, set()).add(old)
    if differences and warn is not None:
        said = "; ".join(
            f"{COMPARED[key]} {new} (stored: {', '.join(sorted(old))})"
            for key in COMPARED
            for new, old in sorted(differences.get(key, {}).items())
        )
        warn(f"this rerun differs from what trained the stored runs, so its numbers need not agree: {said}")
    return rows


def _differences(stored: dict, result: RunResult) -> dict[str, tuple[str, str]]:
    """(value now, value stored) of each compared field where both are known and they differ; a run
    stored before sweeper recorded them knows none."""
    now = {
        "engine": result.engine,
        "device": result.device,
        **(result.machine.as_dict() if result.machine is not None else {}),
    }
    return {
        key: (str(now[key]), str(stored[key]))
        for key in COMPARED
        if stored.get(key) is not None and now.get(key) is not None and str(now[key]) != str(stored[key])
    }


def _same(a, b) -> bool:
    if a is None or b is None or b != b:
        return (a is None) == (b is None or b != b)
    return abs(a - b) <= 1e-6 * max(1.0, abs(a))
