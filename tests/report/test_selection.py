"""Choosing on validation, judging on the test part: the report's estimates of the chosen configuration.

The calibration tests simulate sweeps in which no configuration differs from any other and run them
through ``build_report``, the code path of ``sweeper report``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.report.build import build_report
from sweeper.stats import statistics as st

TRUTH = 5.0
SIMULATIONS = 150


def chosen_estimates(sim, *, validation: bool, seed: int) -> np.ndarray:
    """(simulations, 3): the chosen configuration's selection mean, test mean and BBC estimate over null sweeps."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(SIMULATIONS):
        report = build_report(
            *sim.sweep(rng, n_configs=20, repeats=8, validation=validation, truth=TRUTH),
            n_boot=200,
            seed=int(rng.integers(1 << 30)),
        )
        chosen = report["chosen"]
        out.append((chosen["selection_mean"], chosen["mean"], np.nan if chosen["bbc"] is None else chosen["bbc"]))
    return np.array(out)


@pytest.mark.slow
def test_on_validation_the_chosen_configurations_test_estimate_is_unbiased_and_its_validation_mean_is_not(sim):
    estimates = chosen_estimates(sim, validation=True, seed=1)
    selection, test = estimates[:, 0], estimates[:, 1]
    standard_error = test.std(ddof=1) / np.sqrt(SIMULATIONS)

    assert abs(test.mean() - TRUTH) < 3 * standard_error
    # The winner's curse: the best of 20 equal configurations looks better on the data that chose it.
    assert selection.mean() - TRUTH > 10 * standard_error
    assert selection.mean() - test.mean() == pytest.approx(np.mean(estimates[:, 0] - estimates[:, 1]))
    assert np.isnan(estimates[:, 2]).all()  # no correction is needed, none is given


@pytest.mark.slow
def test_without_a_validation_part_bbc_shrinks_the_chosen_estimate_toward_the_truth(sim):
    estimates = chosen_estimates(sim, validation=False, seed=2)
    naive, bbc = estimates[:, 1], estimates[:, 2]
    assert (estimates[:, 0] == naive).all()  # selection and estimate are the same numbers

    naive_bias, bbc_bias = naive.mean() - TRUTH, bbc.mean() - TRUTH
    assert naive_bias > 10 * naive.std(ddof=1) / np.sqrt(SIMULATIONS)
    assert abs(bbc_bias) < naive_bias / 2


def test_the_report_says_what_was_chosen_on_which_data_and_its_test_estimate_beside_it(sim):
    report = build_report(*sim.sweep(np.random.default_rng(3), effects={2: 1.5}, validation=True), n_boot=300)

    chosen = report["chosen"]
    assert (report["selected_on"], report["metric"], report["shared"]) == ("val_accuracy", "test_accuracy", False)
    assert chosen["trials"] == [2] and not chosen["tied"]
    row = next(c for c in report["configs"] if c["trial"] == 2)
    assert (chosen["selection_mean"], chosen["mean"], chosen["ci"]) == (row["selection_mean"], row["mean"], row["ci"])
    assert chosen["optimism"] == pytest.approx(row["selection_mean"] - row["mean"])
    assert report["configs"][0]["trial"] == 2  # ordered on validation
    assert (
        f"Chosen: {row['label']}. On the test part, which took no part in choosing: test_accuracy {row['mean']:.4g}"
    ) in report["summary"]


def test_ordering_and_p_best_use_validation_and_verdicts_use_the_test_part(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(4), n_configs=3, validation=True)
    # Trial 1 is far better on validation only, trial 2 on the test part only.
    for row in runs:
        row["val_accuracy"] += 3.0 * (row["trial"] == 1)
        row["test_accuracy"] += 3.0 * (row["trial"] == 2)

    report = build_report(sweep, trials, runs, n_boot=300)

    by_trial = {c["trial"]: c for c in report["configs"]}
    assert report["configs"][0]["trial"] == 1 and by_trial[1]["p_best"] == 1.0
    assert (by_trial[1]["verdict"], by_trial[2]["verdict"]) == ("no_difference", "better")
    assert report["chosen"]["optimism"] == pytest.approx(by_trial[1]["selection_mean"] - by_trial[1]["mean"])
    assert report["chosen"]["optimism"] > 2.5


def test_without_a_validation_part_the_summary_says_selection_and_estimate_share_data(sim):
    report = build_report(*sim.sweep(np.random.default_rng(5), n_configs=10), n_boot=300)

    chosen = report["chosen"]
    assert report["shared"] and chosen["bbc"] is not None and chosen["bbc"] < chosen["mean"]
    assert (
        "Selection and estimate share the test part (n_val: 0): the chosen configuration's test_accuracy "
        f"{chosen['mean']:.4g}"
    ) in report["summary"]
    assert f"corrected for the selection (BBC) it is {chosen['bbc']:.4g}" in report["summary"]


def test_configurations_tied_for_the_best_are_named_as_a_tie_and_share_p_best_equally(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(6), n_configs=6, repeats=2)
    # Trials 0-3 score alike on every repeat; trial 4 is best on repeat 1 and worst on repeat 0, the
    # pattern that made "targets flip p=1", ranked last, the "most likely best" of full_grid.yaml.
    for row in runs:
        row["test_accuracy"] = {0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6, 4: (0.1, 0.9)[row["repeat"]], 5: 0.5}[row["trial"]]

    report = build_report(sweep, trials, runs, n_boot=400)

    chosen = report["chosen"]
    assert chosen["tied"] and chosen["trials"] == [0, 1, 2, 3]
    assert "4 configurations tie for the best on the data the sweep selects on (0.6: no noise," in report["summary"]
    assert "the repeats cannot separate them" in report["summary"]
    assert "Chosen:" not in report["summary"]
    p_best = [c["p_best"] for c in report["configs"] if c["trial"] in (0, 1, 2, 3)]
    assert max(p_best) == min(p_best)


def test_a_partial_sweep_says_so_and_corrects_over_every_planned_configuration(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(7), n_configs=4, repeats=30, effects={1: 1.2})
    sweep["status"] = "interrupted"
    complete = build_report(sweep, trials, runs, n_boot=200)
    partial = build_report(sweep, trials, runs, n_boot=200, planned=40)

    one = {r["trial"]: r for r in complete["configs"]}[1]
    planned = {r["trial"]: r for r in partial["configs"]}[1]
    assert planned["p_value"] == one["p_value"]
    # Holm's smallest step multiplies by the family's size: 39 planned comparisons instead of 3.
    assert planned["p_adjusted"] == pytest.approx(min(1.0, one["p_value"] * 39))
    assert partial["progress"] == {
        "configs_planned": 40,
        "configs_with_runs": 4,
        "runs": 120,
        "runs_planned": 1200,
        "partial": True,
    }
    assert partial["summary"].startswith(
        "This sweep is partial (status interrupted): 120 of 1200 planned runs (1080 missing; 4 of 40 configurations "
        "have runs, 36 none); Holm's correction counts all 39 planned comparisons."
    )
    assert "over all 39 planned comparisons" in partial["summary"]


def test_a_difference_that_is_exactly_zero_is_zero(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(8), n_configs=2, repeats=7)
    # Shares of 70 test samples as the engine stores them (float64 fractions); the two configurations
    # differ on every repeat but their differences cancel exactly.
    correct = {0: [50, 51, 52, 53, 54, 55, 56], 1: [51, 50, 53, 52, 55, 54, 56]}
    for row in runs:
        row["test_accuracy"] = correct[row["trial"]][row["repeat"]] / 70

    report = build_report(sweep, trials, runs, n_boot=200)

    assert report["configs"][0]["delta"] == 0.0 or report["configs"][1]["delta"] == 0.0
    assert "Δ +0," not in report["summary"] and "e-1" not in str([c["delta"] for c in report["configs"]])


def test_best_val_compares_the_metrics_each_run_had_at_its_best_validation_epoch(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(9), n_configs=3, validation=True)
    for row in runs:  # early stopping helps trial 2 on the test part; the last epoch does not
        row["early_val_accuracy"] = row["val_accuracy"] + 0.5
        row["early_test_accuracy"] = row["test_accuracy"] + 2.0 * (row["trial"] == 2)

    last = build_report(sweep, trials, runs, n_boot=300)
    early = build_report(sweep, trials, runs, n_boot=300, at="best_val")

    assert (early["metric"], early["selected_on"], early["at"]) == (
        "early_test_accuracy",
        "early_val_accuracy",
        "best_val",
    )
    assert {c["trial"]: c["verdict"] for c in early["configs"]}[2] == "better"
    assert {c["trial"]: c["verdict"] for c in last["configs"]}[2] == "no_difference"


def test_ece_of_the_test_part_is_reported_beside_accuracy(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(10), n_configs=2, repeats=4)
    for row in runs:
        row["test_ece"] = 0.1 * (row["trial"] + 1) + 0.01 * row["repeat"]

    report = build_report(sweep, trials, runs, n_boot=100)

    assert {c["trial"]: c["ece"] for c in report["configs"]} == pytest.approx({0: 0.115, 1: 0.215})


def test_bbc_picks_on_the_resampled_repeats_and_scores_on_those_left_out():
    # Two repeats, two configurations: each is best on one repeat only.
    values = np.array([[1.0, 0.0], [0.0, 1.0]])
    counts = np.array([[2, 0], [0, 2], [1, 1]])
    # Drawn (r0, r0): pick config 0, score it on r1 -> 0. Drawn (r1, r1): config 1 on r0 -> 0.
    # Drawn (r0, r1): nothing left out -> NaN.
    np.testing.assert_array_equal(
        st.bootstrap_bias_corrected([values], [values], [counts], higher_is_better=True), [0.0, 0.0, np.nan]
    )
