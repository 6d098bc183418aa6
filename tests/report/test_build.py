import json

import numpy as np
import pytest
from scipy import stats

from sweeper.errors import SweeperError
from sweeper.report.build import build_report


def by_trial(report: dict, trial: int) -> dict:
    return next(c for c in report["configs"] if c["trial"] == trial)


def verdicts(report: dict) -> list[str]:
    return [c["verdict"] for c in report["configs"] if c["verdict"] != "baseline"]


def hand_made(sim, values: dict[int, list], metric: str = "test_accuracy") -> tuple[dict, list[dict], list[dict]]:
    """A one-task sweep from per-trial lists of metric values (None = diverged); trial 0 is the baseline."""
    sweep = {"name": "hand", "metric": metric, "higher_is_better": None, "repeats": len(values[0]), "problem": "p"}
    trials = [sim.baseline_trial("hand")] + [
        sim.noise_trial(t, [{"placement": "input", "kind": "gaussian", "std": 0.1 * t, "schedule": "constant"}], "hand")
        for t in values
        if t
    ]
    runs = [
        {"sweep": "hand", "trial": t, "task": "t", "repeat": r, metric: v, "diverged": v is None}
        for t, column in values.items()
        for r, v in enumerate(column)
    ]
    return sweep, trials, runs


def test_report_has_the_required_keys_and_dumps_as_strict_json(sim):
    report = build_report(*sim.sweep(np.random.default_rng(0), effects={2: 1.0}), n_boot=2000)
    assert {"sweep", "metric", "higher_is_better", "repeats", "baseline", "configs", "summary"} <= report.keys()
    assert report["baseline"]["trial"] == 0 and report["baseline"]["n"] == 20
    config = by_trial(report, 2)
    for key in (
        "trial",
        "params",
        "n",
        "mean",
        "std",
        "ci",
        "delta",
        "delta_ci",
        "p_improve",
        "p_improve_ci",
        "p_value",
        "p_adjusted",
        "verdict",
        "p_best",
        "gap",
        "diverged",
        "label",
        "median",
        "iqm",
        "mde",
    ):
        assert key in config, key
    assert config["params"] == {"placement": "pre_activation", "kind": "gaussian", "std": 0.2, "schedule": "constant"}
    assert config["ci"][0] < config["mean"] < config["ci"][1]
    assert config["delta_ci"][0] < config["delta"] < config["delta_ci"][1]
    assert report["baseline"]["params"] == {"placement": "none"}
    json.dumps(report, allow_nan=False)


def test_configs_are_sorted_best_first_with_the_baseline_among_them(sim):
    report = build_report(*sim.sweep(np.random.default_rng(1), effects={1: 2.0, 3: -2.0}), n_boot=2000)
    trials = [c["trial"] for c in report["configs"]]
    assert trials[0] == 1 and trials[-1] == 3 and 0 in trials
    means = [c["mean"] for c in report["configs"]]
    assert means == sorted(means, reverse=True)
    assert sum(c["p_best"] for c in report["configs"]) == pytest.approx(1.0)


def test_a_lower_is_better_metric_flips_the_verdict(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(2), effects={1: 1.5})
    assert by_trial(build_report(sweep, trials, runs, n_boot=500), 1)["verdict"] == "better"
    # the same numbers read as a loss: higher is now worse
    as_loss = [{**r, "test_loss": r["test_accuracy"], "train_loss": r["train_accuracy"]} for r in runs]
    report = build_report({**sweep, "metric": "test_loss", "higher_is_better": False}, trials, as_loss, n_boot=500)
    config = by_trial(report, 1)
    assert config["verdict"] == "worse" and config["delta"] > 0 and config["p_improve"] < 0.5
    assert report["configs"][-1]["trial"] == 1


def test_aa_sweeps_rarely_claim_a_difference(sim):
    """No real difference anywhere: better/worse verdicts stay within α (Holm controls the whole family)."""
    rng = np.random.default_rng(10)
    n_sweeps, alpha = 200, 0.05
    any_claim = 0
    for _ in range(n_sweeps):
        claims = [v != "no_difference" for v in verdicts(build_report(*sim.sweep(rng), n_boot=200))]
        any_claim += any(claims)
    slack = 3 * np.sqrt(alpha * (1 - alpha) / n_sweeps)
    assert any_claim / n_sweeps <= alpha + slack


def test_a_planted_effect_of_one_sd_at_20_repeats_is_found_in_most_sweeps(sim):
    rng = np.random.default_rng(11)
    found = [
        by_trial(build_report(*sim.sweep(rng, effects={1: 1.0}), n_boot=200), 1)["verdict"] == "better"
        for _ in range(60)
    ]
    assert np.mean(found) >= 0.8


def test_at_tiny_n_the_minimum_detectable_effect_exceeds_the_planted_one(sim):
    report = build_report(*sim.sweep(np.random.default_rng(12), repeats=4, effects={1: 1.0}), n_boot=500)
    config = by_trial(report, 1)
    assert config["verdict"] == "no_difference"
    assert config["mde"] > 1.0
    assert "Too few repeats" in report["summary"]


def test_undecided_configs_say_how_many_repeats_would_settle_them(sim):
    report = build_report(*sim.sweep(np.random.default_rng(13), repeats=10, effects={1: 0.6}), n_boot=500)
    config = by_trial(report, 1)
    assert config["verdict"] == "no_difference"
    assert config["n_needed"] > 10 and config["mde"] > abs(config["delta"])
    assert f"about {config['n_needed']} repeats would detect it" in report["summary"]


def test_diverged_runs_are_left_out_of_means_and_count_as_losses(sim):
    base = [0.70, 0.72, 0.68, 0.71, 0.69, 0.70]
    noisy = [0.80, 0.82, None, 0.81, None, 0.80]
    report = build_report(*hand_made(sim, {0: base, 1: noisy}), n_boot=500)
    config = by_trial(report, 1)
    assert config["n"] == 4 and config["diverged"] == 2
    assert config["mean"] == pytest.approx(np.mean([0.80, 0.82, 0.81, 0.80]))
    assert config["delta"] == pytest.approx(np.mean([0.10, 0.10, 0.10, 0.10]))
    assert config["p_improve"] == pytest.approx(4 / 6)
    d = np.array([0.80 - 0.70, 0.82 - 0.72, -1.0, 0.81 - 0.71, -1.0, 0.80 - 0.70])  # divergence = the largest loss
    assert config["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert "2 runs diverged" in report["summary"]


def test_a_configuration_that_always_diverges_is_worse_and_has_no_mean(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(3), diverged={2: 20})
    report = build_report(sweep, trials, runs, n_boot=500)
    config = by_trial(report, 2)
    assert config["verdict"] == "worse" and config["n"] == 0 and config["diverged"] == 20
    assert config["mean"] is None and config["ci"] == [None, None] and config["p_improve"] == 0.0
    assert report["configs"][-1]["trial"] == 2 and config["p_best"] == 0.0
    json.dumps(report, allow_nan=False)


def test_the_gap_is_positive_when_overfitting_for_accuracy_and_for_loss(sim):
    for metric in ("test_accuracy", "test_loss"):
        report = build_report(*sim.sweep(np.random.default_rng(4), metric=metric), n_boot=200)
        assert report["baseline"]["gap"] == pytest.approx(0.5)


def test_several_tasks_get_per_task_tables_and_a_friedman_ranking(sim):
    tasks = ("circles", "moons", "blobs", "iris", "wine", "digits")
    sweep, trials, runs = sim.sweep(np.random.default_rng(5), tasks=tasks, effects={3: 1.5})
    report = build_report(sweep, trials, runs, n_boot=1000)
    assert [t["task"] for t in report["tasks"]] == sorted(tasks)
    assert all(len(t["configs"]) == 5 for t in report["tasks"])
    assert report["configs"][0]["trial"] == 3 and report["configs"][0]["verdict"] == "better"
    across = report["across_tasks"]
    assert across["best"]["trial"] == 3 and across["ranking"][0]["average_rank"] == pytest.approx(1.0)
    per_task_means = np.array([[by_trial(t, trial)["mean"] for trial in range(5)] for t in report["tasks"]])
    assert across["friedman"]["statistic"] == pytest.approx(stats.friedmanchisquare(*per_task_means.T).statistic)
    assert across["nemenyi_cd"] == pytest.approx(2.569 * np.sqrt(5 * 6 / (6 * 6)) * 2.728 / 2.569, rel=1e-3)
    assert {c["trial"] for c in across["indistinguishable_from_best"]} >= {3}
    assert "Across 6 data sets" in report["summary"]
    json.dumps(report, allow_nan=False)


def test_combined_placements_are_a_list_of_sites(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(6), n_configs=2)
    sites = [
        {"placement": "input", "kind": "gaussian", "std": 0.1, "schedule": "constant"},
        {"placement": "weights", "kind": "gaussian", "std": 0.05, "schedule": "annealed", "gamma": 0.55},
    ]
    trials.append(sim.noise_trial(2, sites))
    runs += [{**r, "trial": 2} for r in runs if r["trial"] == 1]
    config = by_trial(build_report(sweep, trials, runs, n_boot=200), 2)
    assert config["params"] == sites


def test_trials_without_runs_are_listed_as_pending(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(7), n_configs=3)
    trials.append(sim.noise_trial(3, [{"placement": "input", "kind": "gaussian", "std": 0.3, "schedule": "constant"}]))
    report = build_report(sweep, trials, runs, n_boot=200)
    assert report["pending"] == [3] and 3 not in [c["trial"] for c in report["configs"]]


def test_a_sweep_without_baseline_runs_is_refused(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(8), n_configs=3)
    with pytest.raises(SweeperError, match="no baseline"):
        build_report(sweep, trials, [r for r in runs if r["trial"] != 0])


def test_a_direction_that_contradicts_the_metric_is_refused(sim):
    sweep, trials, runs = sim.sweep(np.random.default_rng(9), n_configs=2)
    with pytest.raises(SweeperError, match="contradicts"):
        build_report({**sweep, "higher_is_better": False}, trials, runs)


def test_the_report_is_reproducible_from_its_seed(sim):
    rows = sim.sweep(np.random.default_rng(14))
    assert build_report(*rows, n_boot=500, seed=3) == build_report(*rows, n_boot=500, seed=3)
