"""Simulated sweeps as the store returns them (flat rows), for the report's tests.

Tests get the helpers through the ``sim`` fixture (``sim.sweep(...)``, ``sim.curves(...)``, ...),
since test modules are imported in importlib mode and cannot import each other.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

PLACEMENTS = ("input", "pre_activation", "weights", "gradients")


def baseline_trial(sweep: str = "sim") -> dict:
    return {
        "sweep": sweep,
        "trial": 0,
        "label": "none",
        "placement": "none",
        "kind": None,
        "std": None,
        "schedule": None,
        "gamma": None,
        "params": [],
        "status": "done",
        "n_runs": None,
        "objective": None,
    }


def noise_trial(trial: int, sites: list[dict], sweep: str = "sim") -> dict:
    first = sites[0]
    return {
        "sweep": sweep,
        "trial": trial,
        "label": " + ".join(f"{s['placement']} {s['kind']} σ={s['std']:g}" for s in sites),
        "placement": "+".join(s["placement"] for s in sites),
        "kind": first["kind"],
        "std": first["std"],
        "schedule": first["schedule"],
        "gamma": None,
        "params": sites,
        "status": "done",
        "n_runs": None,
        "objective": None,
    }


def simulate_sweep(
    rng: np.random.Generator,
    *,
    n_configs: int = 5,
    repeats: int = 20,
    effects: dict[int, float] | None = None,
    tasks: tuple[str, ...] = ("circles",),
    metric: str = "test_accuracy",
    diverged: dict[int, int] | None = None,
    validation: bool = False,
    truth: float = 5.0,
) -> tuple[dict, list[dict], list[dict]]:
    """(sweep, trials, runs): trial 0 is the baseline, trial i has gaussian noise of std 0.1·i at one placement.

    Each repeat has a level shared by every configuration (same data, same init) plus independent
    noise of sd 1/√2 per run, so paired differences have sd 1: ``effects[trial]`` is the true
    improvement in paired-sd units (added to the metric, or subtracted for a loss). The first
    ``diverged[trial]`` repeats of a trial diverge. The train metric sits 0.5 on the good side of test.
    With ``validation`` the sweep selects on ``val_<metric>``, which each run scores with the same repeat
    level and effect as its test metric but noise of its own (its own sample of data); ``truth`` is the
    expected metric of the baseline.
    """
    effects, diverged = effects or {}, diverged or {}
    suffix = metric.removeprefix("test_")
    higher = suffix in ("accuracy", "r2")
    sweep = {
        "name": "sim",
        "metric": f"val_{suffix}" if validation else metric,
        "higher_is_better": higher,
        "repeats": repeats,
        "problem": "circles",
        "seed": 0,
        "status": "done",
    }
    trials = [baseline_trial()] + [
        noise_trial(
            t,
            [
                {
                    "placement": PLACEMENTS[(t - 1) % len(PLACEMENTS)],
                    "kind": "gaussian",
                    "std": round(0.1 * t, 3),
                    "schedule": "constant",
                }
            ],
        )
        for t in range(1, n_configs)
    ]
    sign = 1.0 if higher else -1.0
    runs = []
    for task in tasks:
        level = rng.normal(size=repeats)
        for t in range(n_configs):
            test = truth + level + rng.normal(scale=np.sqrt(0.5), size=repeats) + sign * effects.get(t, 0.0)
            if validation:  # drawn only then, so that the other simulations keep their numbers
                val = truth + level + rng.normal(scale=np.sqrt(0.5), size=repeats) + sign * effects.get(t, 0.0)
            for r in range(repeats):
                gone = r < diverged.get(t, 0)
                row = {
                    "sweep": "sim",
                    "trial": t,
                    "task": task,
                    "repeat": r,
                    f"train_{suffix}": None if gone else float(test[r] + 0.5 * sign),
                    metric: None if gone else float(test[r]),
                    "best_epoch": 100,
                    "diverged": gone,
                    "diverged_epoch": 7 if gone else None,
                }
                if validation:
                    row[f"val_{suffix}"] = None if gone else float(val[r])
                runs.append(row)
    return sweep, trials, runs


def simulate_curves(runs: list[dict], *, epochs: int = 200, every: int = 10) -> list[dict]:
    """Curve rows for ``runs``: train accuracy rising to 1, test accuracy rising then falling with trial number."""
    rows = []
    for run in runs:
        for epoch in range(every, epochs + 1, every):
            rise = 1.0 - np.exp(-epoch / 40.0)
            rows.append(
                {
                    "sweep": run["sweep"],
                    "trial": run["trial"],
                    "task": run["task"],
                    "repeat": run["repeat"],
                    "epoch": epoch,
                    "train_loss": 1.0 - rise,
                    "test_loss": 1.2 - rise,
                    "train_accuracy": rise,
                    "test_accuracy": 0.9 * rise - 0.1 * (epoch / epochs) ** 2 * run["trial"],
                }
            )
    return rows


@pytest.fixture
def sim() -> SimpleNamespace:
    return SimpleNamespace(
        sweep=simulate_sweep, curves=simulate_curves, baseline_trial=baseline_trial, noise_trial=noise_trial
    )
