"""SQLite and PostgreSQL keep the same sweep with the same seeds and the same numbers."""

from __future__ import annotations

import pytest

from sweeper.store import open_store

SPACE_YAML = """\
name: both-backends
seed: 11
repeats: 2
metric: accuracy
task:
  dataset: moons
  n_train: 30
  model: mlp
  hidden: [8, 8]
  activation: tanh
  epochs: 20
  batch_size: 10
  log_every: 5
search:
  sampler: grid
  configs:
    - {placement: [input, pre_activation], std: [0.05, 0.1]}
    - {placement: weights, kind: multiplicative, std: 0.1, schedule: annealed, gamma: 0.6}
    - {placement: gradients, std: 0.01}
    - {placement: targets, std: 0.1}
"""
N_CONFIGS, REPEATS = 5, 2
#: Columns that hold the time a run took or was stored: the only ones allowed to differ.
TIMING = ("wall_time",)


def stored(url: str) -> dict:
    with open_store(url, create=False) as store:
        runs = [{k: v for k, v in row.items() if k not in TIMING} for row in store.runs("both-backends")]
        trials = [
            {k: row[k] for k in ("trial", "label", "params", "n_runs", "objective")}
            for row in store.trials("both-backends")
        ]
        return {"runs": runs, "trials": trials, "curves": store.curves("both-backends")}


@pytest.mark.postgres
def test_sqlite_and_postgresql_store_the_same_numbers(tmp_path, pg_database, sweeper_cli):
    space = tmp_path / "both.yaml"
    space.write_text(SPACE_YAML)
    urls = {"sqlite": f"sqlite:///{tmp_path / 'sweeps.db'}", "postgresql": pg_database()}

    for backend, url in urls.items():
        result = sweeper_cli("run", space, "--db", url)
        assert result.exit_code == 0, (backend, result.stderr)

    sqlite, postgresql = stored(urls["sqlite"]), stored(urls["postgresql"])
    assert len(sqlite["runs"]) == N_CONFIGS * REPEATS
    assert len(sqlite["curves"]) == N_CONFIGS * REPEATS * 4  # epochs 5, 10, 15, 20
    assert max(r["noise_seed"] for r in sqlite["runs"]) > 2**32  # 63-bit seeds survive both backends
    for name in ("runs", "trials", "curves"):
        assert postgresql[name] == sqlite[name], name  # seeds and metrics bit for bit
