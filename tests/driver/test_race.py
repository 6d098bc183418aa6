"""A raced sweep (repeats: {min, max, step}): its runs are those of a fixed sweep bit for bit, a kill
mid-race resumes to the same race, a raised maximum continues it, and `sweeper run` shows its rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import circles_space, execute, interrupt_on_call

from sweeper.stats import racing
from sweeper.store import Store

NAME = "race-me"
RACED = "{min: 3, max: 9, step: 3}"
#: Columns of a run that say where and when it trained, not what it holds.
WHERE_AND_WHEN = {"id", "trial_id", "created_at", "seconds", "engine", "device", "host", "cpu", "gpu"}
WHERE_AND_WHEN |= {"sweeper_version", "torch_version", "wall_time"}


def space(repeats, stds: str = "[0.1, 0.5, 3.0]") -> str:
    return circles_space(
        NAME, seed=3, repeats=repeats, search=f"sampler: grid\ngrid: {{placement: [input, weights], std: {stds}}}"
    ).replace("\n", "\n", 1)


def run(sweeper_cli, folder: Path, db: Path, text: str, *flags):
    file = folder / "space.yaml"
    file.write_text(text)
    return sweeper_cli("run", file, "--db", f"sqlite:///{db}", *flags)


def runs_of(db: Path) -> dict:
    """Every stored run's numbers by (configuration, task, repeat)."""
    url = f"sqlite:///{db}"
    columns = [row[1] for row in execute(url, "PRAGMA table_info(sweeper_runs)")]
    rows = execute(url, "SELECT t.config_json, r.* FROM sweeper_runs r JOIN sweeper_trials t ON t.id = r.trial_id")
    held = {}
    for config, *values in rows:
        row = {c: v for c, v in zip(columns, values) if c not in WHERE_AND_WHEN and not c.endswith("_at")}
        held[config, row["task"], row["repeat"]] = row
    return held


def repeats_by_config(db: Path) -> dict[str, int]:
    return {
        c: n
        for c, n in execute(
            f"sqlite:///{db}",
            "SELECT t.config_json, COUNT(*) FROM sweeper_runs r "
            "JOIN sweeper_trials t ON t.id = r.trial_id GROUP BY t.config_json",
        )
    }


def race_on_stored(db: Path) -> tuple[racing.Race, dict]:
    """The race replayed from the database's runs and the plan its context keeps."""
    url = f"sqlite:///{db}"
    (context,) = execute(url, "SELECT context FROM sweeper_sweeps")[0]
    context = json.loads(context)
    numbers = dict(execute(url, "SELECT id, number FROM sweeper_trials"))
    k, n = len(numbers), context["racing"]["max"]
    values, present = [[[float("nan")] * k for _ in range(n)]], [[[False] * k for _ in range(n)]]
    for trial, repeat, value, diverged in execute(
        url, 'SELECT trial_id, "repeat", val_accuracy, diverged FROM sweeper_runs'
    ):
        values[0][repeat][numbers[trial]] = float("nan") if diverged else value
        present[0][repeat][numbers[trial]] = True
    import numpy as np

    d = racing.differences(np.array(values), np.array(present), 0, higher_is_better=True)
    return racing.race(d, 0, racing.plan_of(context), k - 1, racing.ALPHA), context


@pytest.fixture(scope="module")
def fixed(tmp_path_factory, sweeper_cli):
    """The runs of the same grid with 9 fixed repeats."""
    folder = tmp_path_factory.mktemp("fixed")
    result = run(sweeper_cli, folder, folder / "f.db", space(9))
    assert result.exit_code == 0, result.stderr
    return runs_of(folder / "f.db")


@pytest.fixture(scope="module")
def raced(tmp_path_factory, sweeper_cli):
    """A raced sweep run once, uninterrupted: its database and what `sweeper run` said."""
    folder = tmp_path_factory.mktemp("raced")
    result = run(sweeper_cli, folder, folder / "r.db", space(RACED))
    assert result.exit_code == 0, result.stderr
    return folder / "r.db", result.stderr


def test_a_raced_sweep_trains_fewer_runs_each_bit_identical_to_the_same_repeat_of_a_fixed_sweep(raced, fixed):
    db, said = raced
    held = runs_of(db)

    assert 7 * 3 <= len(held) < len(fixed)
    assert held == {key: fixed[key] for key in held}
    race, _ = race_on_stored(db)
    assert race.finished and race.rounds >= 2
    # every configuration holds exactly the repeats the race gave it, the baseline as many as the most-run
    counts = repeats_by_config(db)
    assert sorted(counts.values()) == sorted(race.targets.tolist())
    assert counts["[]"] == max(counts.values())
    assert "round 1: 6 configurations open, 0 of 63 runs" in said
    assert f"race over after {race.rounds} rounds: {len(held)} of 63 runs" in said


def test_each_trial_keeps_its_repeats_and_why_it_stopped_in_optunas_user_attributes(raced):
    db, _ = raced
    race, _ = race_on_stored(db)
    attrs = execute(
        f"sqlite:///{db}",
        "SELECT t.number, a.key, a.value_json FROM trial_user_attributes a JOIN trials t USING (trial_id) "
        "WHERE a.key IN ('repeats', 'stopped')",
    )
    said = {(number, key): json.loads(value) for number, key, value in attrs}
    for number in range(7):
        assert said[number, "repeats"] == race.targets[number]
        assert said[number, "stopped"] == race.stopped[number]


def test_a_race_killed_mid_round_resumes_to_the_runs_of_the_race_never_killed(
    tmp_path, sweeper_cli, monkeypatch, raced
):
    db = tmp_path / "killed.db"
    with monkeypatch.context() as patched:
        interrupt_on_call(patched, Store, "save_runs", 13)  # 11 packs in round 1: one pack into round 2
        stopped = run(sweeper_cli, tmp_path, db, space(RACED))
    assert stopped.exit_code == 130, stopped.stderr
    assert 21 < len(runs_of(db)) < len(runs_of(raced[0]))

    resumed = run(sweeper_cli, tmp_path, db, space(RACED))

    assert resumed.exit_code == 0, resumed.stderr
    assert runs_of(db) == runs_of(raced[0])


def test_raising_the_maximum_continues_the_race_from_the_stored_runs(tmp_path, sweeper_cli, raced):
    db = tmp_path / "grown.db"
    assert run(sweeper_cli, tmp_path, db, space("{min: 3, max: 6, step: 3}")).exit_code == 0
    before = runs_of(db)

    grown = run(sweeper_cli, tmp_path, db, space(RACED))

    assert grown.exit_code == 0, grown.stderr
    after = runs_of(db)
    assert {key: after[key] for key in before} == before and len(after) > len(before)
    race, context = race_on_stored(db)
    assert race.finished and racing.plan_of(context) == racing.Plan(3, 6, 9, 3)  # rho stays tuned to 6
    assert sorted(repeats_by_config(db).values()) == sorted(race.targets.tolist())
    assert max(race.targets) == 9


def test_a_raced_sweeps_report_names_the_test_each_row_used_and_why_it_stopped(raced, sweeper_cli):
    db, _ = raced
    result = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    race, _ = race_on_stored(db)
    rows = {c["trial"]: c for c in report["configs"]}
    for number in range(1, 7):
        assert rows[number]["test"] == "group-sequential signed-rank"
        assert rows[number]["repeats"] == race.targets[number]
        assert rows[number]["stopped"] == racing.STOPS[race.stopped[number]]
    assert "group-sequential" in report["methods"]["test"] and not report["progress"]["partial"]
    if not any(c["verdict"] == "better" for c in report["configs"]):
        assert "Nothing in this grid beats no noise" in report["summary"]


def test_a_raced_sweeps_first_screen_says_each_configurations_repeats_and_why_it_stopped(raced, sweeper_cli, tmp_path):
    db, _ = raced
    race, _ = race_on_stored(db)
    shown = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}")
    assert shown.exit_code == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # the terminal wraps at its width
    assert "Raced: verdicts from the group-sequential signed-rank test, valid however the race stopped." in text
    assert "raced: 3 repeats, then 3 more a round to the open ones, at most 9;" in text  # What ran: the plan
    report = json.loads(sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json").stdout)
    for row in report["configs"]:
        if row["verdict"] != "baseline":
            why = racing.STOPS[race.stopped[row["trial"]]]
            assert f"{row['label']}: {race.targets[row['trial']]} repeats, stopped: {why}" in text
    written = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "-f", "markdown", "--out", tmp_path / "r.md")
    assert written.exit_code == 0, written.stderr
    page = (tmp_path / "r.md").read_text()
    assert "**Raced: verdicts from the group-sequential signed-rank test" in page
    assert page.index("**Raced:") < page.index("## In detail")  # on the first screen


def test_a_raced_sweeps_report_at_the_best_validation_epoch_gives_the_stops_the_race_made(raced, sweeper_cli):
    db, _ = raced
    race, _ = race_on_stored(db)
    shown = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json", "--at", "best_val")
    assert shown.exit_code == 0, shown.stderr
    rows = {c["trial"]: c for c in json.loads(shown.stdout)["configs"]}
    # The race read each run's last epoch; the report compares at the best validation epoch, and its stop
    # reasons are still the race's (replayed on what the race read, not on the early_ metrics).
    assert [rows[n]["stopped"] for n in range(1, 7)] == [racing.STOPS[race.stopped[n]] for n in range(1, 7)]
