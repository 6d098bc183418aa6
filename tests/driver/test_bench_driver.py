"""``sweeper bench --driver``: a tiny grid swept into a database, its time split per configuration."""

from __future__ import annotations

import json

from sweeper.store import open_store


def test_bench_driver_sweeps_the_grid_and_splits_its_time(sweeper_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'bench.db'}"

    result = sweeper_cli("bench", "--driver", "--grid", "16x2", "--db", url, "--epochs", "2", "--format", "json")

    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["database"], row["configs"], row["repeats"], row["runs"]) == ("sqlite", 16, 2, 32)
    parts = ("train_ms_per_config", "store_ms_per_config", "driver_ms_per_config")
    assert all(row[p] > 0 for p in parts)
    assert 0 <= row["store_hidden_ms_per_config"] <= row["store_ms_per_config"]
    # Training, the store's time not hidden behind training, and the driver are disjoint spans of the whole;
    # every figure is rounded to 3 decimals (seconds and setup_s by up to 0.5 ms each, the four parts by up
    # to 0.5 us per configuration each).
    shown = sum(row[p] for p in parts) - row["store_hidden_ms_per_config"]
    assert shown * 16 / 1000 + row["setup_s"] <= row["seconds"] + 0.001 + 4 * 16 * 0.5e-6
    with open_store(url, create=False) as store:
        (sweep,) = store.sweeps()
    assert (sweep["name"], sweep["status"], sweep["n_runs"]) == ("bench-driver-16x2", "completed", 32)


def test_bench_driver_refuses_a_grid_that_is_not_configs_x_repeats(sweeper_cli):
    result = sweeper_cli("bench", "--driver", "--grid", "16by2")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --grid: '16by2' is not CONFIGSxREPEATS")
