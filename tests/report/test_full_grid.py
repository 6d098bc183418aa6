"""The shipped full grid at 2 repeats and 100 epochs without a validation part, as a new user first tried it:
its summary named "targets flip p=1" (ranked 225 of 225, P(best) = 0.25) the most likely best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FULL_GRID = Path(__file__).resolve().parents[2] / "search_spaces" / "full_grid.yaml"


@pytest.mark.slow
def test_the_full_grid_summary_names_the_tied_best_configurations_not_one_of_them(tmp_path, sweeper_cli):
    text = FULL_GRID.read_text()
    space = tmp_path / "full_grid.yaml"
    space.write_text(text.replace("  n_train: 30", "  n_val: 0\n  n_train: 30", 1))  # the seed's two parts
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    assert sweeper_cli("run", space, "--db", url, "--repeats", 2, "--epochs", 100).exit_code == 0

    result = sweeper_cli("report", "full-grid", "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    chosen, configs = report["chosen"], report["configs"]
    tied = [c for c in configs if c["trial"] in chosen["trials"]]
    assert chosen["tied"] and len(tied) > 1
    assert len({c["selection_mean"] for c in tied}) == 1 and len({c["p_best"] for c in tied}) == 1
    assert all(c["selection_mean"] < chosen["selection_mean"] for c in configs if c["trial"] not in chosen["trials"])
    assert f"{len(tied)} configurations tie for the best" in report["summary"]
    assert "the repeats cannot separate them" in report["summary"] and "Chosen:" not in report["summary"]
    assert "election and estimate share the test part (n_val: 0)" in report["summary"]
    assert report["progress"] == {
        "configs_planned": 225,
        "configs_with_runs": 225,
        "runs": 450,
        "runs_planned": 450,
        "partial": False,
    }
