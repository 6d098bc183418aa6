"""Regression sweeps and sweeps over several tasks store every run with the metrics named for its problem."""

from __future__ import annotations

import json
import math

import pytest

from sweeper.store import open_store

CLASSIFICATION = (
    "train_loss",
    "val_loss",
    "test_loss",
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "test_ece",
    "early_val_accuracy",
    "early_test_accuracy",
    "early_test_ece",
)
REGRESSION = (
    "train_loss",
    "val_loss",
    "test_loss",
    "train_mse",
    "val_mse",
    "test_mse",
    "train_r2",
    "val_r2",
    "test_r2",
    "early_val_mse",
    "early_test_mse",
    "early_test_r2",
)
ACCURACY = ("train_accuracy", "val_accuracy", "test_accuracy", "test_ece", "early_test_accuracy")
SQUARED = ("train_mse", "val_mse", "test_mse", "train_r2", "val_r2", "test_r2", "early_test_mse")

CIRCLES = "{dataset: circles, n_train: 30, hidden: [8], epochs: 20}"
MOONS = "{dataset: moons, n_train: 30, hidden: [8], epochs: 20}"
IRIS = "{dataset: iris, n_train: 30, hidden: [8], epochs: 20}"
FRIEDMAN = "{name: fried, dataset: friedman1, n_samples: 60, n_train: 20, hidden: [8], epochs: 20, batch_size: 8}"


def space(name: str, tasks: list[str], metric: str, configs: list[str]) -> str:
    lines = [f"name: {name}", "seed: 4", "repeats: 2", f"metric: {metric}", "tasks:"]
    lines += [f"  - {t}" for t in tasks]
    lines += ["search:", "  sampler: grid", "  configs:"] + [f"    - {c}" for c in configs]
    return "\n".join(lines) + "\n"


SWEEPS = {
    "regression": (
        space(
            "regression",
            [FRIEDMAN],
            "mse",
            [
                "{placement: targets, std: 0.1}",  # regression targets take additive noise
                "{placement: weights, kind: multiplicative, std: 0.1, schedule: annealed, gamma: 0.6}",
            ],
        ),
        {"fried": REGRESSION},
        "regression",
    ),
    "two-binary": (
        space(
            "two-binary",
            [CIRCLES, MOONS],
            "accuracy",
            ["{placement: targets, std: 0.1}", "{placement: pre_activation, std: 0.1}"],
        ),
        {"circles": CLASSIFICATION, "moons": CLASSIFICATION},
        "binary",
    ),
    "binary-multiclass": (
        space(
            "binary-multiclass",
            [CIRCLES, IRIS],
            "accuracy",
            ["{placement: targets, std: 0.1}", "{placement: input, std: 0.1}"],
        ),
        {"circles": CLASSIFICATION, "iris": CLASSIFICATION},
        None,
    ),
    "classification-regression": (
        space(
            "classification-regression",
            [CIRCLES, FRIEDMAN],
            "loss",
            ["{placement: input, std: 0.1}", "{placement: weights, std: 0.05}"],
        ),
        {"circles": CLASSIFICATION, "fried": REGRESSION},
        "mixed",
    ),
}
N_CONFIGS, REPEATS = 3, 2


@pytest.fixture(scope="module")
def swept(tmp_path_factory, sweeper_cli):
    """``swept(name)``: the SQLite URL holding the completed sweep ``name`` of SWEEPS, run once."""
    folder = tmp_path_factory.mktemp("problems")
    url = f"sqlite:///{folder / 'sweeps.db'}"
    done = set()

    def run(name: str) -> str:
        if name not in done:
            path = folder / f"{name}.yaml"
            path.write_text(SWEEPS[name][0])
            result = sweeper_cli("run", path, "--db", url)
            assert result.exit_code == 0, result.stderr
            done.add(name)
        return url

    return run


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_run_is_stored_with_the_metrics_of_its_task(swept, sweeper_cli, name):
    _, metrics_of, problem = SWEEPS[name]
    url = swept(name)

    result = sweeper_cli("runs", name, "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted((r["trial"], r["task"], r["repeat"]) for r in rows) == [
        (t, task, r) for t in range(N_CONFIGS) for task in sorted(metrics_of) for r in range(REPEATS)
    ]
    for row in rows:
        mine = metrics_of[row["task"]]
        assert all(isinstance(row[m], float) and math.isfinite(row[m]) for m in mine), row
        others = set(ACCURACY + SQUARED) - set(mine)
        assert all(row.get(m) is None for m in others), row  # absent, or null for the other problem
    with open_store(url, create=False) as store:
        sweep = next(s for s in store.sweeps() if s["name"] == name)
    assert sweep["status"] == "completed" and sweep["n_runs"] == len(rows)
    if problem is not None:
        assert sweep["problem"] == problem


def test_a_regression_sweep_lists_only_regression_metrics(swept, sweeper_cli):
    url = swept("regression")
    rows = json.loads(sweeper_cli("runs", "regression", "--db", url, "--format", "json").stdout)
    trials = json.loads(sweeper_cli("trials", "regression", "--db", url, "--format", "json").stdout)

    assert set(REGRESSION) <= set(rows[0]) and not set(ACCURACY) & set(rows[0])
    assert all(-10 < r["test_r2"] <= 1 and r["test_mse"] > 0 for r in rows)
    for trial in trials:  # the objective is the mean validation mse over the repeats
        mse = [r["val_mse"] for r in rows if r["trial"] == trial["trial"]]
        assert trial["objective"] == pytest.approx(sum(mse) / len(mse), rel=1e-9)


def test_a_multi_task_objective_is_the_mean_over_tasks_of_the_mean_over_repeats(swept, sweeper_cli):
    url = swept("two-binary")
    rows = json.loads(sweeper_cli("runs", "two-binary", "--db", url, "--format", "json").stdout)
    trials = json.loads(sweeper_cli("trials", "two-binary", "--db", url, "--format", "json").stdout)

    for trial in trials:
        per_task = [
            sum(v) / len(v)
            for v in (
                [r["val_accuracy"] for r in rows if r["trial"] == trial["trial"] and r["task"] == task]
                for task in ("circles", "moons")
            )
        ]
        assert trial["n_runs"] == 2 * REPEATS
        assert trial["objective"] == pytest.approx(sum(per_task) / 2, rel=1e-9)


@pytest.mark.parametrize("name", ["regression", "classification-regression"])
def test_rerun_reproduces_regression_and_mixed_trials(swept, sweeper_cli, name):
    url = swept(name)

    result = sweeper_cli("rerun", name, 1, "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(SWEEPS[name][1]) * REPEATS
    assert all(r["same"] is True for r in rows)


def test_rerun_compares_every_stored_metric_of_a_regression_trial(swept, sweeper_cli):
    result = sweeper_cli("rerun", "regression", 1, "--db", swept("regression"), "--format", "json")

    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)[0]
    assert {f"{side}_{m}" for side in ("stored", "new") for m in REGRESSION if not m.startswith("early_")} <= set(row)
