"""What a sweep stores per trial does not grow with its grid, and a task too large for memory writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sweeper.driver.executors import LocalExecutor
from sweeper.driver.sweep import run_sweep
from sweeper.engine import sizing
from sweeper.errors import SpaceError
from sweeper.space import parse_space
from sweeper.store import Store, open_store

GRID_YAML = """\
name: grid-{n}
seed: 2
repeats: 1
task: {{dataset: circles, n_train: 30, hidden: [2], epochs: 1}}
search:
  grid: {{placement: [input, pre_activation], std: [{stds}]}}
"""


def grid_yaml(n_stds: int) -> str:
    return GRID_YAML.format(n=n_stds, stds=", ".join(f"{(i + 1) * 1e-4:.4f}" for i in range(n_stds)))


def optuna_rows(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_what_a_grid_trial_stores_does_not_grow_with_the_grid(sweeper_cli, tmp_path, monkeypatch):
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    (tmp_path / "small.yaml").write_text(grid_yaml(1))  # 3 configurations: the baseline and 2
    assert sweeper_cli("run", tmp_path / "small.yaml", "--db", f"sqlite:///{small}").exit_code == 0
    (tmp_path / "large.yaml").write_text(grid_yaml(25_000))  # 50,001 configurations
    save_runs = Store.save_runs

    def interrupted_after_the_first_pack(self, *args, **kwargs):
        save_runs(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "save_runs", interrupted_after_the_first_pack)
    assert sweeper_cli("run", tmp_path / "large.yaml", "--db", f"sqlite:///{large}").exit_code == 130

    params_sql = "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params ORDER BY param_id"
    attrs_sql = "SELECT count(*) FROM trial_system_attributes"
    small_params, large_params = optuna_rows(small, params_sql), optuna_rows(large, params_sql)
    # Every trial carries its real noise: its placement, and in the large grid, whose stds differ, its std
    # (the baseline: none, 0).
    assert [(name, value) for _, name, value, _ in small_params] == [
        ("placement", 0.0),
        ("placement", 1.0),
        ("placement", 2.0),
    ]
    assert [(name, value) for _, name, value, _ in large_params[:2]] == [("placement", 0.0), ("std", 0.0)]
    assert len(large_params) == 2 * len({trial for trial, *_ in large_params}) > 6
    # The distributions: the same placements, and a std range: the same few bytes however large the grid.
    small_json = {name: d for _, name, _, d in small_params}
    large_json = {name: d for _, name, _, d in large_params}
    assert large_json["placement"] == small_json["placement"]
    assert (
        large_json["std"]
        == '{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0, "high": 2.5, "log": false}}'
    )
    # Nothing else is recorded per grid trial by the sampler (no enqueued fixed_params, no grid search space).
    assert optuna_rows(large, attrs_sql) == optuna_rows(small, attrs_sql) == [(0,)]


def interrupted_on_pack(k: int):
    """A Store.save_runs that stores packs until the ``k``-th, which it interrupts (Ctrl-C) unstored."""
    save_runs, calls = Store.save_runs, []

    def save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise KeyboardInterrupt
        return save_runs(self, *args, **kwargs)

    return save


def test_a_resumed_large_grid_goes_on_in_file_order(sweeper_cli, tmp_path, monkeypatch):
    space, db = tmp_path / "large.yaml", tmp_path / "large.db"
    space.write_text(grid_yaml(25_000).replace("repeats: 1", "repeats: 1\npack_size: 4"))

    for _ in range(2):  # each run stores two packs of four configurations, then is interrupted
        monkeypatch.setattr(Store, "save_runs", interrupted_on_pack(3))
        assert sweeper_cli("run", space, "--db", f"sqlite:///{db}").exit_code == 130

    runs = [
        n
        for (n,) in optuna_rows(
            db, "SELECT t.number FROM sweeper_runs r JOIN sweeper_trials t ON t.id = r.trial_id ORDER BY r.id"
        )
    ]
    assert runs == list(range(16))
    numbers = [n for (n,) in optuna_rows(db, "SELECT number FROM sweeper_trials ORDER BY id")]
    # The configurations of the interrupted pack, and of the round asked while it was stored, wait for the next run.
    assert numbers == list(range(24))


def test_run_sweep_refuses_a_member_too_large_before_writing_a_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(sizing, "free_memory", lambda device: 23_900_000_000)
    spec = parse_space(grid_yaml(1).replace("hidden: [2]", "hidden: [100000000]"), "wide.yaml")

    with open_store(f"sqlite:///{tmp_path / 'sweeps.db'}") as store:
        with pytest.raises(SpaceError, match=r"^wide.yaml: task: one member needs about 241.6 GB .* 23.9 GB are free"):
            run_sweep(spec, store, LocalExecutor("cpu"))
        assert store.sweeps() == []
