"""The store keeps every run exactly once, with its seeds, metrics and curves, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import numpy as np
import pytest
from helpers import member as seeded_member

from sweeper import seeding
from sweeper.engine.machine import Machine
from sweeper.errors import StoreError
from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import Member, RunResult, TrialRef

SWEEP_SEED = 7
SPEC_YAML = "name: demo\nseed: 7\nnoise:\n  placement: [pre_activation]\n  std: [0.1]\n"
BASELINE = ()
PRE = make_config([NoiseSpec("pre_activation", "gaussian", 0.1)])
COMBINED = make_config(
    [
        NoiseSpec("input", "gaussian", 0.05),
        NoiseSpec("pre_activation", "multiplicative", 0.2, schedule="annealed", gamma=0.55),
    ]
)
EPOCHS = np.array([10, 20, 30, 40])
CLASSIFICATION_METRICS = (
    "train_loss",
    "val_loss",
    "test_loss",
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "test_ece",
)


def member(config, repeat: int) -> Member:
    return seeded_member(config, repeat, sweep_seed=SWEEP_SEED)


def classification_result(repeat: int) -> RunResult:
    curves = {
        "train_loss": np.array([0.69, 0.41, 0.22, 0.13]) + 0.01 * repeat,
        "test_loss": np.array([0.70, 0.52, 0.40, 0.38]) + 0.01 * repeat,
        "train_accuracy": np.array([0.5, 0.8, 0.9, 1.0], dtype=np.float32),
        "test_accuracy": np.array([0.5, 0.7, 0.8, 0.8142857], dtype=np.float32),
    }
    return RunResult(
        final={name: values[-1] for name, values in curves.items()},
        curve_epochs=EPOCHS,
        curves=curves,
        best_epoch=np.int64(40),
        wall_time=0.125,
        device="cuda:0",
    )


def diverged_result() -> RunResult:
    nan, inf = float("nan"), float("inf")
    curves = {
        "train_loss": np.array([0.69, 3.5, inf, nan]),
        "test_loss": np.array([0.70, 4.1, nan, nan]),
        "train_accuracy": np.array([0.5, 0.6, nan, nan]),
        "test_accuracy": np.array([0.5, 0.55, nan, nan]),
    }
    return RunResult(
        final={"train_loss": nan, "test_loss": nan, "train_accuracy": nan, "test_accuracy": -inf},
        curve_epochs=EPOCHS,
        curves=curves,
        best_epoch=20,
        diverged=True,
        diverged_epoch=23,
    )


def start(store, name: str = "demo", *, spec_yaml: str = SPEC_YAML, **changes) -> int:
    settings = dict(seed=SWEEP_SEED, metric="test_accuracy", higher_is_better=True, repeats=3, problem="binary")
    return store.start_sweep(name, spec_yaml, **{**settings, **changes})


def save_classification(store, sweep_id: int, configs, repeats=range(3), task="circles") -> list[TrialRef]:
    trials = [store.ensure_trial(sweep_id, config) for config in configs]
    items = [(t.id, task, member(t.config, r), classification_result(r)) for t in trials for r in repeats]
    store.save_runs(sweep_id, items)
    return trials


def pick(row: dict, *keys: str) -> tuple:
    return tuple(row[key] for key in keys)


def count(store, table: str) -> int:
    return store.query(f"select count(*) from {table}").rows[0][0]


# -- runs -----------------------------------------------------------------------------------------


def test_runs_round_trip_with_seeds_and_metrics_intact(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, PRE])

    rows = store.runs("demo")

    assert [(r["trial"], r["task"], r["repeat"]) for r in rows] == [
        (0, "circles", 0), (0, "circles", 1), (0, "circles", 2),
        (1, "circles", 0), (1, "circles", 1), (1, "circles", 2),
    ]  # fmt: skip
    row = rows[4]
    assert row["sweep"] == "demo"
    assert row["label"] == "pre_activation gaussian σ=0.1"
    assert pick(row, "placement", "kind", "std", "schedule") == ("pre_activation", "gaussian", 0.1, "constant")
    assert row["data_seed"] == seeding.data_seed(SWEEP_SEED, 1)
    assert row["init_seed"] == seeding.init_seed(SWEEP_SEED, 1)
    assert row["noise_seed"] == seeding.noise_seed(SWEEP_SEED, 1, PRE)
    assert row["train_loss"] == pytest.approx(0.14) and row["test_loss"] == pytest.approx(0.39)
    assert row["train_accuracy"] == 1.0
    assert row["test_accuracy"] == pytest.approx(0.8142857, rel=1e-7)
    assert pick(row, "best_epoch", "diverged", "diverged_epoch") == (40, False, None)
    assert pick(row, "wall_time", "device") == (0.125, "cuda:0")
    assert "test_mse" not in row
    baseline = rows[0]
    assert pick(baseline, "placement", "kind", "std", "schedule") == ("none", None, None, None)


WORKER_A = Machine("0.2.0", "2.13.0+cpu", "cpu", "AMD EPYC 7763 64-Core Processor", None, "worker-a")
WORKER_B = Machine("0.2.0", "2.13.0+cu128", "cuda", "Intel Xeon", "NVIDIA H100 80GB HBM3", "worker-b")


def trained_on(machine: Machine, engine: str, repeat: int) -> RunResult:
    result = classification_result(repeat)
    result.engine, result.machine, result.device = engine, machine, machine.device
    return result


def test_each_run_records_the_engine_and_machine_that_trained_it(store):
    sweep_id = start(store)
    trial = store.ensure_trial(sweep_id, PRE)
    store.save_runs(
        sweep_id,
        [
            (trial.id, "circles", member(PRE, 0), trained_on(WORKER_A, "fused", 0)),
            (trial.id, "circles", member(PRE, 1), trained_on(WORKER_B, "stacked", 1)),
        ],
    )

    a, b = store.runs("demo")

    ran = ("engine", "device", "sweeper_version", "torch_version", "cpu", "gpu", "host")
    assert pick(a, *ran) == ("fused", "cpu", "0.2.0", "2.13.0+cpu", "AMD EPYC 7763 64-Core Processor", None, "worker-a")
    assert pick(b, *ran) == (
        "stacked",
        "cuda",
        "0.2.0",
        "2.13.0+cu128",
        "Intel Xeon",
        "NVIDIA H100 80GB HBM3",
        "worker-b",
    )
    (sweep,) = store.sweeps()
    assert pick(sweep, *ran) == (
        "fused, stacked",
        "cpu, cuda",
        "0.2.0",
        "2.13.0+cpu, 2.13.0+cu128",
        "AMD EPYC 7763 64-Core Processor, Intel Xeon",
        "NVIDIA H100 80GB HBM3",
        "worker-a, worker-b",
    )


def test_a_sweep_records_its_overrides_and_what_last_drove_it(store):
    sweep_id = start(store, overrides={"repeats": 3, "epochs": 50}, machine=WORKER_A)
    assert pick(store.sweep("demo"), "overrides", "host", "cpu", "device") == (
        {"epochs": 50, "repeats": 3},
        "worker-a",
        WORKER_A.cpu,
        "cpu",
    )
    assert store.sweeps()[0]["overrides"] == "--epochs 50 --repeats 3"

    assert start(store, overrides={"epochs": 50, "repeats": 3}, machine=WORKER_B) == sweep_id

    assert pick(store.sweep("demo"), "host", "gpu", "torch_version") == ("worker-b", WORKER_B.gpu, "2.13.0+cu128")


def test_start_sweep_refuses_other_overrides(store):
    start(store, overrides={"epochs": 50})

    for other in ({"epochs": 60}, {}, {"epochs": 50, "repeats": 2}):
        with pytest.raises(StoreError, match="already exists .* with a different search space"):
            start(store, overrides=other)


def test_start_sweep_resumes_whatever_newlines_end_the_yaml(store):
    sweep_id = start(store, spec_yaml=SPEC_YAML)

    assert start(store, spec_yaml=SPEC_YAML.rstrip("\n")) == start(store, spec_yaml=SPEC_YAML + "\n\n") == sweep_id


def test_63_bit_seeds_round_trip_exactly(store):
    sweep_id = start(store)
    trial = store.ensure_trial(sweep_id, BASELINE)
    big = Member(BASELINE, 0, data_seed=2**63 - 1, init_seed=2**62 + 12345, noise_seed=2**63 - 2)
    store.save_runs(sweep_id, [(trial.id, "circles", big, classification_result(0))])

    (row,) = store.runs("demo")

    assert pick(row, "data_seed", "init_seed", "noise_seed") == (2**63 - 1, 2**62 + 12345, 2**63 - 2)


def test_saving_the_same_runs_twice_stores_them_once(store):
    sweep_id = start(store)
    trial = store.ensure_trial(sweep_id, PRE)
    items = [(trial.id, "circles", member(PRE, r), classification_result(r)) for r in range(3)]

    assert store.save_runs(sweep_id, items) == 3
    assert store.save_runs(sweep_id, items) == 0
    retried_pack = items[1:] + [(trial.id, "circles", member(PRE, 3), classification_result(3))] + items[:1]
    assert store.save_runs(sweep_id, retried_pack) == 1

    assert sorted(r["repeat"] for r in store.runs("demo")) == [0, 1, 2, 3]
    assert count(store, "sweeper_curves") == 4 * len(EPOCHS)
    assert store.done_runs(sweep_id) == {(0, "circles", r) for r in range(4)}


def test_the_same_repeat_on_two_tasks_is_two_runs(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE], repeats=[0], task="circles")
    save_classification(store, sweep_id, [BASELINE], repeats=[0], task="moons")

    assert store.done_runs(sweep_id) == {(0, "circles", 0), (0, "moons", 0)}


def test_nan_metrics_and_divergence_round_trip_as_null(store):
    sweep_id = start(store)
    trial = store.ensure_trial(sweep_id, PRE)
    store.save_runs(sweep_id, [(trial.id, "circles", member(PRE, 0), diverged_result())])

    (row,) = store.runs("demo")
    curves = store.curves("demo")

    assert row["diverged"] is True and row["diverged_epoch"] == 23
    assert pick(row, *CLASSIFICATION_METRICS) == (None,) * len(CLASSIFICATION_METRICS)
    assert [c["train_loss"] for c in curves] == [0.69, 3.5, None, None]
    assert [c["test_accuracy"] for c in curves] == [0.5, 0.55, None, None]
    assert store.trials("demo")[0]["n_diverged"] == 1


def test_outcomes_are_the_runs_columns_a_verdict_reads(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, PRE], repeats=[0, 1], task="moons")
    save_classification(store, sweep_id, [BASELINE], repeats=[0], task="circles")
    trial = store.ensure_trial(sweep_id, PRE)
    store.save_runs(sweep_id, [(trial.id, "circles", member(PRE, 0), diverged_result())])
    keys = ("trial", "task", "repeat", "test_accuracy", "train_accuracy", "diverged", "failed_to_learn")

    outcomes = store.outcomes("demo", "accuracy")

    assert outcomes == [{k: run[k] for k in keys} for run in store.runs("demo")]
    assert [(o["trial"], o["task"], o["diverged"]) for o in outcomes] == [
        (0, "circles", False), (0, "moons", False), (0, "moons", False),
        (1, "circles", True), (1, "moons", False), (1, "moons", False),
    ]  # fmt: skip
    loss = ["trial", "task", "repeat", "test_loss", "train_loss", "diverged", "failed_to_learn"]
    assert list(store.outcomes("demo", "loss")[0]) == loss


def test_curves_are_stored_and_returned_per_run(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, PRE], repeats=[0, 1])

    curves = store.curves("demo")

    assert len(curves) == 2 * 2 * len(EPOCHS)
    first = [c for c in curves if (c["trial"], c["repeat"]) == (1, 1)]
    assert [c["epoch"] for c in first] == [10, 20, 30, 40]
    assert [c["train_loss"] for c in first] == pytest.approx([0.70, 0.42, 0.23, 0.14])
    assert [c["test_accuracy"] for c in first] == pytest.approx([0.5, 0.7, 0.8, 0.8142857])
    assert list(first[0]) == ["sweep", "trial", "task", "repeat", "epoch", *CLASSIFICATION_METRICS]


def test_regression_rows_carry_mse_and_r2_instead_of_accuracy(store):
    sweep_id = start(store, "reg", problem="regression", metric="test_r2")
    trial = store.ensure_trial(sweep_id, PRE)
    curves = {
        "train_loss": np.array([1.0, 0.5]),
        "test_loss": np.array([1.2, 0.9]),
        "train_mse": np.array([1.0, 0.5]),
        "test_mse": np.array([1.2, 0.9]),
        "train_r2": np.array([0.1, 0.6]),
        "test_r2": np.array([0.0, 0.3]),
    }
    result = RunResult(
        final={k: v[-1] for k, v in curves.items()}, curve_epochs=np.array([1, 2]), curves=curves, best_epoch=2
    )
    store.save_runs(sweep_id, [(trial.id, "friedman1", member(PRE, 0), result)])

    (row,) = store.runs("reg")

    assert pick(row, "test_mse", "test_r2", "train_r2") == (0.9, 0.3, 0.6)
    assert "test_accuracy" not in row
    assert [c["test_r2"] for c in store.curves("reg")] == [0.0, 0.3]


def test_sweeps_mixing_problems_keep_every_metric_column(store):
    sweep_id = start(store, "mixed", problem="mixed", metric="test_loss")
    save_classification(store, sweep_id, [BASELINE], repeats=[0])

    (row,) = store.runs("mixed")

    assert pick(row, "test_accuracy", "test_mse", "test_r2") == (pytest.approx(0.8142857), None, None)


def test_save_runs_refuses_a_member_filed_under_another_configuration(store):
    sweep_id = start(store)
    baseline = store.ensure_trial(sweep_id, BASELINE)

    with pytest.raises(StoreError, match="differs from that of trial"):
        store.save_runs(sweep_id, [(baseline.id, "circles", member(PRE, 0), classification_result(0))])
    assert store.runs("demo") == []


def test_listings_are_json_friendly(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, COMBINED], repeats=[0])

    listings = [store.sweeps(), store.trials("demo"), store.runs("demo"), store.curves("demo")]
    listings.append([store.sweep("demo")])
    rows = [[record.row() for record in listing] for listing in listings]

    assert json.loads(json.dumps(rows)) == rows == listings  # a record equals its row
    assert datetime.fromisoformat(store.sweeps()[0]["created_at"]).utcoffset().total_seconds() == 0


def test_reads_are_frozen_records_of_the_rows_the_listings_print(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, PRE], repeats=[0])

    sweep, (summary,), trials, runs = store.sweep("demo"), store.sweeps(), store.trials("demo"), store.runs("demo")

    assert (sweep.id, sweep.name, sweep.metric, sweep.overrides) == (sweep_id, "demo", sweep["metric"], {})
    assert (summary.name, summary.n_trials, summary.n_runs) == ("demo", 2, 2)
    assert [(t.trial, t.label, t.params) for t in trials] == [
        (0, "none", []),
        (1, trials[1]["label"], [PRE[0].as_dict()]),
    ]
    run = runs[1]
    assert (run.trial, run.task, run.repeat, run.diverged) == (1, run["task"], 0, False)
    assert run.metrics["test_accuracy"] == run["test_accuracy"] and "trial" not in run.metrics
    assert list(run.row()) == list(run) and list(run.row())[:3] == ["sweep", "trial", "task"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.trial = 2
    with pytest.raises(TypeError):
        run["trial"] = 2  # read-only


# -- trials ---------------------------------------------------------------------------------------


def test_ensure_trial_numbers_configurations_and_returns_existing_ones(store):
    sweep_id = start(store)

    baseline = store.ensure_trial(sweep_id, BASELINE, optuna_trial_id=11)
    pre = store.ensure_trial(sweep_id, PRE)
    again = store.ensure_trial(sweep_id, PRE, optuna_trial_id=12)
    shuffled = store.ensure_trial(sweep_id, tuple(reversed(COMBINED)), number=5)

    assert (baseline.number, baseline.optuna_trial_id) == (0, 11)
    assert (again.id, again.number, again.optuna_trial_id) == (pre.id, 1, 12)
    assert (shuffled.number, shuffled.config) == (5, COMBINED)
    assert store.ensure_trial(sweep_id, PRE, optuna_trial_id=13).optuna_trial_id == 12
    assert store.ensure_trial(sweep_id, make_config([NoiseSpec("weights", std=0.01)])).number == 6


def test_trial_refs_read_back_every_trial_with_the_configuration_it_was_stored_with(store):
    sweep_id = start(store)
    stored = [
        store.ensure_trial(sweep_id, BASELINE, optuna_trial_id=3),
        store.ensure_trial(sweep_id, COMBINED),
        store.ensure_trial(sweep_id, PRE, number=7, optuna_trial_id=4),
    ]

    refs = store.trial_refs("demo")

    assert refs == stored
    assert [(r.number, r.optuna_trial_id, r.config) for r in refs] == [(0, 3, ()), (1, None, COMBINED), (7, 4, PRE)]


def test_combined_configurations_are_summarized_and_kept_site_by_site(store):
    sweep_id = start(store)
    store.ensure_trial(sweep_id, BASELINE)
    combined_ref = store.ensure_trial(sweep_id, COMBINED)
    store.ensure_trial(
        sweep_id, make_config([NoiseSpec("input", "gaussian", 0.1), NoiseSpec("weights", "gaussian", 0.1)])
    )

    baseline, combined, shared = store.trials("demo")

    assert pick(baseline, "placement", "kind", "std", "params") == ("none", None, None, [])
    assert combined["placement"] == "input+pre_activation"
    assert pick(combined, "kind", "std", "schedule", "gamma") == ("gaussian+multiplicative", None, None, 0.55)
    assert combined["params"] == [s.as_dict() for s in COMBINED]
    assert pick(shared, "kind", "std", "schedule", "gamma") == ("gaussian", 0.1, "constant", None)
    sites = store.query(
        f"select placement, kind, std, schedule, gamma from sweeper_trial_sites "
        f"where trial_id = {combined_ref.id} order by placement"
    )
    assert sites.columns == ["placement", "kind", "std", "schedule", "gamma"]
    assert sites.rows == [
        ("input", "gaussian", 0.05, "constant", None),
        ("pre_activation", "multiplicative", 0.2, "annealed", 0.55),
    ]


def test_completed_trials_report_objective_and_run_counts(store):
    sweep_id = start(store)
    baseline, pre = save_classification(store, sweep_id, [BASELINE, PRE])
    with store.transaction() as connection:  # as the driver tells a round
        store.complete_trials(connection, [(pre.id, 0.8142857), (baseline.id, float("nan"))])
    store.ensure_trial(sweep_id, BASELINE, optuna_trial_id=99)  # an existing trial gets the id it lacked
    store.ensure_trial(sweep_id, BASELINE, optuna_trial_id=100)  # and keeps it

    rows = store.trials("demo")

    assert [(r["trial"], r["status"], r["n_runs"], r["n_diverged"]) for r in rows] == [
        (0, "complete", 3, 0), (1, "complete", 3, 0),
    ]  # fmt: skip
    assert rows[1]["objective"] == pytest.approx(0.8142857)
    assert (rows[0]["objective"], rows[0]["optuna_trial_id"]) == (None, 99)


def test_trial_sites_hold_every_field_of_a_placement(store):
    sweep_id = start(store)
    decaying = NoiseSpec("input", "gaussian", 0.1, "linear", std_min=0.01, relative=True)
    ref = store.ensure_trial(sweep_id, make_config([decaying, NoiseSpec("weights", "gaussian", 0.2)]))

    sites = store.query(
        "select placement, kind, std, schedule, gamma, std_min, relative from sweeper_trial_sites "
        f"where trial_id = {ref.id} order by placement"
    )

    assert sites.rows == [
        ("input", "gaussian", 0.1, "linear", None, 0.01, True),
        ("weights", "gaussian", 0.2, "constant", None, None, False),
    ]


# -- sweeps ---------------------------------------------------------------------------------------


def test_start_sweep_resumes_with_the_same_yaml(store):
    sweep_id = start(store)
    store.finish_sweep(sweep_id, "interrupted")
    assert store.sweep("demo")["status"] == "interrupted"

    assert start(store) == sweep_id

    row = store.sweep("demo")
    assert pick(row, "status", "finished_at", "spec_yaml", "study_name") == ("running", None, SPEC_YAML, "demo")


def test_start_sweep_refuses_a_different_search_space(store):
    start(store)

    changed = SPEC_YAML.replace("std: [0.1]", "std: [0.1, 0.2]")

    with pytest.raises(StoreError, match=r"'demo' already exists in .* different search space; pick another"):
        start(store, spec_yaml=changed)


def test_start_sweep_refuses_the_same_yaml_under_another_seed(store):
    start(store)

    with pytest.raises(StoreError, match=r"already exists .* with seed 7 \(not 8\)"):
        start(store, seed=8)


def test_start_sweep_refuses_a_metric_its_problem_does_not_keep(store):
    with pytest.raises(StoreError, match="metric 'test_r2' is not kept for binary problems; choose one of train_loss"):
        start(store, metric="test_r2")

    assert store.sweeps() == []


def test_finished_sweeps_are_listed_with_their_counts(store):
    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, PRE], repeats=[0, 1])
    store.finish_sweep(sweep_id, "completed")
    start(store, "empty")

    demo, empty = store.sweeps()

    assert (demo["name"], demo["status"], demo["n_trials"], demo["n_runs"]) == ("demo", "completed", 2, 4)
    assert (demo["metric"], demo["seed"], demo["repeats"]) == ("test_accuracy", SWEEP_SEED, 3)
    assert demo["finished_at"] is not None and empty["finished_at"] is None
    assert (empty["n_trials"], empty["n_runs"]) == (0, 0)


def test_unknown_sweep_names_it_and_lists_the_existing_ones(store):
    start(store, "alpha")
    start(store, "beta")

    with pytest.raises(StoreError, match=r"no sweep 'gamma' in .*; sweeps there: alpha, beta"):
        store.runs("gamma")


def test_delete_sweep_removes_its_trials_runs_curves_and_optuna_study(store):
    from optuna.storages import RDBStorage

    sweep_id = start(store)
    save_classification(store, sweep_id, [BASELINE, COMBINED], repeats=[0, 1])
    other = start(store, "other")
    save_classification(store, other, [PRE], repeats=[0])
    optuna_storage = RDBStorage(store.url)
    optuna_storage.create_new_study([], "demo")
    optuna_storage.create_new_study([], "other")

    store.delete_sweep("demo")

    assert [s["name"] for s in store.sweeps()] == ["other"]
    tables = ("sweeper_trials", "sweeper_trial_sites", "sweeper_runs", "sweeper_curves")
    assert [count(store, table) for table in tables] == [1, 1, 1, len(EPOCHS)]
    assert [study.study_name for study in optuna_storage.get_all_studies()] == ["other"]
    optuna_storage.engine.dispose()
