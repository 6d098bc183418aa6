"""The verdicts the driver records in Optuna's study are the report's, computed without the rest of the report."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.stats.comparisons import compare, verdicts


def the_reports(sweep, trials, runs, planned=None) -> dict[int, str]:
    return {
        row["trial"]: row["verdict"] for row in compare(sweep, trials, runs, n_boot=100, planned=planned).top.configs
    }


@pytest.mark.parametrize("tasks", [("circles",), ("circles", "moons")])
def test_verdicts_are_the_reports_on_simulated_sweeps(sim, tasks):
    rng = np.random.default_rng(len(tasks))
    seen = set()
    for case in range(12):
        sweep, trials, runs = sim.sweep(
            rng,
            n_configs=7,
            repeats=int(rng.integers(3, 12)),
            effects={1: 2.0, 2: -2.0, 3: float(rng.normal())},
            tasks=tasks,
            diverged={4: 2, 0: int(rng.integers(0, 2))},
        )
        if case % 3 == 1:  # ties and zeros: the metric rounded as accuracies on 70 points are
            runs = [
                {**r, "test_accuracy": None if r["test_accuracy"] is None else round(r["test_accuracy"] * 2) / 2}
                for r in runs
            ]
        if case % 4 == 2:  # some runs not stored yet
            runs = [r for i, r in enumerate(runs) if i % 5]
        planned = 12 if case % 2 else None  # configurations planned but not run count in Holm's family

        got = verdicts(sweep, trials, runs, planned=planned)

        assert got == the_reports(sweep, trials, runs, planned)
        seen.update(got.values())
    assert {"baseline", "better", "worse", "no_difference"} <= seen


def test_without_a_finished_baseline_run_every_configuration_is_incomparable_as_in_the_report(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(5), n_configs=3, repeats=4, diverged={0: 4})

    got = verdicts(sweep, trials, runs)

    assert got == the_reports(sweep, trials, runs) == {0: "baseline", 1: "incomparable", 2: "incomparable"}


def test_a_task_whose_baseline_always_diverged_is_left_out_as_in_the_report(sim):
    sweep, trials, runs = sim.sweep(
        np.random.default_rng(6), n_configs=4, repeats=10, tasks=("a", "b"), effects={1: 3.0}
    )
    gone = [{**r, "test_accuracy": None, "diverged": True} if (r["task"], r["trial"]) == ("b", 0) else r for r in runs]

    assert verdicts(sweep, trials, gone) == the_reports(sweep, trials, gone)
    assert verdicts(sweep, trials, gone)[1] == "better"


def test_planned_configurations_without_runs_widen_holms_family_as_in_the_report(sim):
    # Seven repeats all better: the exact p is 2/2^7 = 0.016, under 0.05 alone, over it times four.
    sweep, trials, runs = sim.sweep(np.random.default_rng(7), n_configs=2, repeats=7, effects={1: 20.0})

    alone, among_five = verdicts(sweep, trials, runs), verdicts(sweep, trials, runs, planned=5)

    assert (alone[1], among_five[1]) == ("better", "no_difference")
    assert (alone, among_five) == (the_reports(sweep, trials, runs), the_reports(sweep, trials, runs, planned=5))
