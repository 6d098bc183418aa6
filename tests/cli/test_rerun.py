"""`sweeper rerun` trains a stored trial again from its stored seeds and gets the stored numbers back."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlalchemy as sa
import torch

from sweeper.store import open_store

METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def stored_runs(db, trial):
    with open_store(f"sqlite:///{db}", create=False) as store:
        return [r for r in store.runs("tiny") if r["trial"] == trial]


@pytest.mark.parametrize("trial", [0, 1, 2])
def test_rerun_reproduces_every_repeat_of_a_trial(sweeper_cli, tiny_sqlite, trial):
    result = sweeper_cli("rerun", "tiny", trial, "--db", f"sqlite:///{tiny_sqlite}", "--format", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    stored = stored_runs(tiny_sqlite, trial)
    assert (
        [(r["task"], r["repeat"]) for r in rows]
        == [(s["task"], s["repeat"]) for s in stored]
        == [("circles", 0), ("circles", 1)]
    )
    assert all(r["same"] is True for r in rows)
    for row, run in zip(rows, stored):
        for m in METRICS:
            assert row[f"stored_{m}"] == run[m]
            assert row[f"new_{m}"] == pytest.approx(run[m], rel=1e-6, abs=1e-6)


def test_rerun_of_one_repeat_trains_only_that_repeat(sweeper_cli, tiny_sqlite):
    result = sweeper_cli("rerun", "tiny", 2, "--repeat", 1, "--db", f"sqlite:///{tiny_sqlite}", "--format", "json")

    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    (run,) = [r for r in stored_runs(tiny_sqlite, 2) if r["repeat"] == 1]
    assert (row["repeat"], row["same"]) == (1, True)
    assert row["stored_test_accuracy"] == run["test_accuracy"]


def test_rerun_writes_nothing(sweeper_cli, tiny_sqlite_copy, db_snapshot):
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = sweeper_cli("rerun", "tiny", 1, "--db", url)

    assert result.exit_code == 0, result.stderr
    assert "same" in result.stdout
    assert db_snapshot(url) == before


def test_rerun_warns_in_one_line_when_it_runs_with_other_software_or_engine(sweeper_cli, tiny_sqlite_copy):
    url = f"sqlite:///{tiny_sqlite_copy}"
    (engine_now,) = {r["engine"] for r in stored_runs(tiny_sqlite_copy, 0)}
    connection = sqlite3.connect(tiny_sqlite_copy)
    with connection:  # as if trained by another torch and engine
        connection.execute(
            "UPDATE sweeper_runs SET torch_version = '2.0.0', engine = 'reference' WHERE trial_id = "
            "(SELECT id FROM sweeper_trials WHERE number = 1)"
        )
    connection.close()

    changed = sweeper_cli("rerun", "tiny", 1, "--db", url, "--format", "json")
    same = sweeper_cli("rerun", "tiny", 2, "--db", url, "--format", "json")

    assert changed.exit_code == 0, changed.stderr
    assert changed.stderr == (
        "warning: this rerun differs from what trained the stored runs, so its numbers need "
        f"not agree: torch {torch.__version__} (stored: 2.0.0); engine {engine_now} (stored: "
        "reference)\n"
    )
    assert [r["same"] for r in json.loads(changed.stdout)] == [True, True]
    assert (same.exit_code, same.stderr) == (0, "")


ANNEALED_YAML = """\
name: annealed
seed: 3
repeats: 2
task: {dataset: circles, n_train: 30, model: mlp, hidden: [8], epochs: 10}
search:
  configs:
    - {placement: pre_activation, std: 0.1, schedule: annealed}
"""


@pytest.mark.parametrize("command", ["run", "rerun"])
def test_a_sweep_annealed_by_sweeper_0_1_0_is_neither_resumed_nor_rerun(sweeper_cli, tmp_path, db_snapshot, command):
    space, url = tmp_path / "annealed.yaml", f"sqlite:///{tmp_path / 'a.db'}"
    space.write_text(ANNEALED_YAML)
    assert sweeper_cli("run", space, "--db", url).exit_code == 0
    # Runs stored by 0.1.0 recorded no version: their annealing was std / (1 + t)^gamma.
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE sweeper_runs SET sweeper_version = NULL")
    engine.dispose()
    before = db_snapshot(url)
    args = ("run", space, "--db", url) if command == "run" else ("rerun", "annealed", 1, "--db", url)
    result = sweeper_cli(*args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "was stored before versions were recorded" in line and "std / (1 + t)^gamma" in line
    assert db_snapshot(url) == before
