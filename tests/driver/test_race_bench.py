"""`sweeper bench --racing`: a fixed and a raced sweep of each grid, compared in one table."""

from __future__ import annotations

import pytest

from sweeper.driver import race_bench
from sweeper.space import load_space, parse_space


def test_the_raced_grid_is_the_fixed_one_with_its_repeats_raced_to_the_same_maximum():
    fixed = load_space(race_bench.FOLDER / "circles_fresh.yaml")
    raced = parse_space(race_bench.raced_text(fixed.source_text, fixed.repeats))
    assert raced.repeats == fixed.repeats == 20 and raced.racing.min == 5 and raced.racing.step == 5
    assert raced.search.configs == fixed.search.configs and raced.tasks == fixed.tasks
    assert raced.name == "racing-circles-fresh-raced"


def test_the_shipped_grids_are_the_issues():
    sizes = {name: load_space(race_bench.FOLDER / file) for name, file in race_bench.GRIDS.items()}
    assert [(len(s.search.configs), s.repeats) for s in sizes.values()] == [(51, 20), (21, 20), (4, 30)]
    assert sizes["circles-fresh"].tasks["circles"].dataset_seed is None  # a fresh sample per repeat
    assert sizes["circles-fresh"].tasks["circles"].hidden == (500,)


def test_the_quick_bench_compares_a_fixed_and_a_raced_sweep_end_to_end(tmp_path):
    (row,) = race_bench.bench_racing(
        quick=True, url=f"sqlite:///{tmp_path / 'b.db'}", log=lambda _: None, grids={"seed": "seed.yaml"}
    )

    assert row["bit_identical"] is True
    assert row["runs_fixed"] == 4 * race_bench.QUICK_REPEATS and 4 * 5 <= row["runs_raced"] < row["runs_fixed"]
    assert row["runs_share"] == pytest.approx(row["runs_raced"] / row["runs_fixed"], abs=1e-3)
    assert (
        row["choice"] == "same"
        or row["choice"] == "cannot be told apart by the fixed sweep"
        or row["choice"].startswith("differs")
    )
    assert (row["raced_better"] == 0) == ("said" in row)
    if "said" in row:
        assert (
            row["said"].startswith("Nothing in this grid beats no noise")
            and f"of the {row['runs_fixed']} runs" in row["said"]
        )


@pytest.mark.slow
def test_sweeper_bench_racing_quick_prints_the_table_for_the_three_grids(sweeper_cli):
    result = sweeper_cli("bench", "--racing", "--quick")
    assert result.exit_code == 0, result.stderr
    for grid in race_bench.GRIDS:
        assert grid in result.stdout
