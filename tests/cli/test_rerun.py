"""`sweeper rerun` trains a stored trial again from its stored seeds and gets the stored numbers back."""

from __future__ import annotations

import json

import pytest

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
    assert [(r["task"], r["repeat"]) for r in rows] == [(s["task"], s["repeat"]) for s in stored] == [
        ("circles", 0), ("circles", 1)]
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
