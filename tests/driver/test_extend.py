"""A stored sweep grown (more repeats, more grid values) holds exactly what a sweep of its final size holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import circles_space, execute, interrupt_on_call

from sweeper.store import Store

NAME = "grow-me"
#: Columns of a run that say where and when it trained, not what it holds.
WHERE_AND_WHEN = {"id", "trial_id", "created_at", "seconds", "engine", "device", "host", "cpu", "gpu"}
WHERE_AND_WHEN |= {"sweeper_version", "torch_version", "wall_time"}


def space(repeats: int, stds: str, epochs: int = 20, n_train: int = 20) -> str:
    return circles_space(
        NAME,
        seed=3,
        repeats=repeats,
        search=f"sampler: grid\ngrid: {{placement: [input, weights], std: {stds}}}",
        epochs=epochs,
        n_train=n_train,
    )


def sweep(sweeper_cli, folder: Path, db: Path, text: str, *flags) -> object:
    file = folder / "space.yaml"
    file.write_text(text)
    return sweeper_cli("run", file, "--db", f"sqlite:///{db}", *flags)


def held(db: Path | str) -> dict:
    """What the database (a SQLite file, or a URL) holds of the sweep, keyed by configuration (not trial
    number): every run's numbers, every curve point, every Optuna trial (state, parameters with their
    distributions, value, attributes, curve)."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    rows = execute(
        url,
        "SELECT t.config_json, r.* FROM sweeper_runs r JOIN sweeper_trials t ON t.id = r.trial_id "
        "JOIN sweeper_sweeps s ON s.id = t.sweep_id WHERE s.name = 'grow-me'",
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    columns = [c["name"] for c in sa.inspect(engine).get_columns("sweeper_runs")]
    engine.dispose()
    runs = {}
    for config, *values in rows:
        row = {c: v for c, v in zip(columns, values) if c not in WHERE_AND_WHEN and not c.endswith("_at")}
        runs[config, row["task"], row["repeat"]] = row
    assert len(runs) == len(rows)
    curves = {
        (config, task, repeat, epoch): tuple(values)
        for config, task, repeat, epoch, *values in execute(
            url,
            'SELECT t.config_json, r.task, r."repeat", c.epoch, c.train_loss, c.test_loss, c.train_accuracy, '
            "c.val_accuracy, c.test_accuracy FROM sweeper_curves c JOIN sweeper_runs r ON r.id = c.run_id "
            "JOIN sweeper_trials t ON t.id = r.trial_id",
        )
    }
    trials = {}
    for trial_id, state, value in execute(
        url,
        "SELECT t.trial_id, t.state, v.value FROM trials t JOIN studies s USING (study_id) "
        "LEFT JOIN trial_values v USING (trial_id) WHERE s.study_name = 'grow-me'",
    ):
        params = execute(
            url,
            f"SELECT param_name, param_value, distribution_json FROM trial_params WHERE trial_id = {trial_id}",
        )
        # The verdicts are left out: an extended sweep's come from the always-valid test, a from-scratch
        # sweep's from the exact one (test_an_extended_sweeps_verdicts_come_from_the_always_valid_test).
        attrs = execute(
            url,
            f"SELECT key, value_json FROM trial_user_attributes WHERE trial_id = {trial_id} AND key != 'verdict'",
        )
        steps = execute(
            url, f"SELECT step, intermediate_value FROM trial_intermediate_values WHERE trial_id = {trial_id}"
        )
        trials[tuple(sorted(params))] = (state, value, sorted(attrs), sorted(steps))
    objectives = dict(execute(url, "SELECT config_json, objective FROM sweeper_trials WHERE status = 'complete'"))
    return {"runs": runs, "curves": curves, "trials": trials, "objectives": objectives}


def history(sweeper_cli, db: Path) -> list[dict]:
    result = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["setting"]["history"]


@pytest.fixture(scope="module")
def from_scratch(tmp_path_factory, sweeper_cli):
    """``from_scratch(repeats, stds)``: what a sweep of that size holds, run once into a fresh database."""
    made = {}

    def run(repeats: int, stds: str) -> dict:
        if (repeats, stds) not in made:
            folder = tmp_path_factory.mktemp("scratch")
            result = sweep(sweeper_cli, folder, folder / "s.db", space(repeats, stds))
            assert result.exit_code == 0, result.stderr
            made[repeats, stds] = held(folder / "s.db")
        return made[repeats, stds]

    return run


def test_more_repeats_then_more_grid_values_train_only_the_new_runs_and_match_a_sweep_of_the_final_size(
    tmp_path, sweeper_cli, from_scratch
):
    db = tmp_path / "grown.db"
    assert sweep(sweeper_cli, tmp_path, db, space(3, "[0.1, 0.3]")).exit_code == 0  # 5 configurations x 3
    first = held(db)

    grown = sweep(sweeper_cli, tmp_path, db, space(5, "[0.1, 0.3]"))

    assert grown.exit_code == 0, grown.stderr
    assert "10 runs trained" in grown.stderr and "25 runs stored in all" in grown.stderr
    after = held(db)
    assert {key: after["runs"][key] for key in first["runs"]} == first["runs"]  # the stored runs untouched
    assert after == from_scratch(5, "[0.1, 0.3]")

    # std 0.05 comes first in the file and widens the std distribution: the stored trials keep their
    # numbers, the new ones take the next, and the study's parameters are those of the grown grid.
    wider = sweep(sweeper_cli, tmp_path, db, space(5, "[0.05, 0.1, 0.3]"))

    assert wider.exit_code == 0, wider.stderr
    assert "10 runs trained" in wider.stderr and "35 runs stored in all" in wider.stderr
    final = held(db)
    assert final == from_scratch(5, "[0.05, 0.1, 0.3]")
    assert len(final["trials"]) == 7 and {s for s, *_ in final["trials"].values()} == {"COMPLETE"}
    numbers = execute(f"sqlite:///{db}", "SELECT number, config_json FROM sweeper_trials ORDER BY number")
    assert [json.loads(c)[0]["std"] if c != "[]" else 0 for _, c in numbers] == [0, 0.1, 0.3, 0.1, 0.3, 0.05, 0.05]

    said = history(sweeper_cli, db)
    assert [(h["event"], h["repeats"], h["planned"]) for h in said] == [
        ("planned", 3, 5),
        ("extended", 5, 5),
        ("extended", 5, 7),
    ]
    assert said[1]["changes"] == "repeats 3 -> 5"
    assert said[2]["changes"] == "search.grid.std [0.1, 0.3] -> [0.05, 0.1, 0.3]"
    table = sweeper_cli("report", NAME, "--db", f"sqlite:///{db}")
    assert re.search(
        r"history: planned 5 configurations x 3 repeats at \S+; extended at \S+ \(repeats 3 -> 5\) to 5 "
        r"configurations x 5 repeats; extended at \S+ \(search\.grid\.std \[0\.1, 0\.3\] -> \[0\.05, 0\.1, 0\.3\]\) "
        r"to 7 configurations x 5 repeats",
        " ".join(table.stdout.split()),
    )


def test_repeats_raised_on_the_command_line_extend_the_sweep(tmp_path, sweeper_cli, from_scratch):
    db = tmp_path / "flag.db"
    text = space(5, "[0.1, 0.3]")
    assert sweep(sweeper_cli, tmp_path, db, text, "--repeats", "3").exit_code == 0

    grown = sweep(sweeper_cli, tmp_path, db, text, "--repeats", "5")

    assert grown.exit_code == 0, grown.stderr
    assert "10 runs trained" in grown.stderr
    assert held(db) == from_scratch(5, "[0.1, 0.3]")
    assert history(sweeper_cli, db)[-1]["changes"] == "repeats 3 -> 5"


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        (space(5, "[0.1, 0.3]", epochs=30), "task.epochs 20 -> 30"),
        (space(5, "[0.1, 0.3]", n_train=25), "task.n_train 20 -> 25"),
        (space(2, "[0.1, 0.3]"), "it differs in repeats 3 -> 2"),
        (space(3, "[0.1]"), "it differs in search.grid.std [0.1, 0.3] -> [0.1]"),
    ],
    ids=["epochs", "task", "fewer-repeats", "fewer-values"],
)
def test_a_change_other_than_growth_is_still_refused_in_one_line(tmp_path, sweeper_cli, changed, said):
    db = tmp_path / "refused.db"
    assert sweep(sweeper_cli, tmp_path, db, space(3, "[0.1, 0.3]")).exit_code == 0
    before = held(db)

    result = sweep(sweeper_cli, tmp_path, db, changed)

    assert result.exit_code == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "with a different search space" in result.stderr
    assert held(db) == before


def test_an_interrupted_extension_resumes_to_the_numbers_of_a_sweep_of_the_final_size(
    tmp_path, sweeper_cli, from_scratch, monkeypatch
):
    db = tmp_path / "interrupted.db"
    assert sweep(sweeper_cli, tmp_path, db, space(3, "[0.1, 0.3]")).exit_code == 0
    with monkeypatch.context() as patched:
        interrupt_on_call(patched, Store, "save_runs", 2)
        stopped = sweep(sweeper_cli, tmp_path, db, space(5, "[0.05, 0.1, 0.3]"))
    assert stopped.exit_code == 130, stopped.stderr
    partly = held(db)
    assert 15 < len(partly["runs"]) < 35

    resumed = sweep(sweeper_cli, tmp_path, db, space(5, "[0.05, 0.1, 0.3]"))

    assert resumed.exit_code == 0, resumed.stderr
    final = held(db)
    assert {key: final["runs"][key] for key in partly["runs"]} == partly["runs"]
    assert final == from_scratch(5, "[0.05, 0.1, 0.3]")
    assert [h["event"] for h in history(sweeper_cli, db)] == ["planned", "extended"]


def sampled(sampler: str, repeats: int, n_trials: int) -> str:
    return circles_space(
        NAME,
        seed=3,
        repeats=repeats,
        search=f"sampler: {sampler}\nn_trials: {n_trials}\nspace: {{placement: [input, weights], "
        "std: {log_uniform: [0.01, 0.3]}}",
        epochs=20,
    )


def test_a_random_search_grows_by_trials_and_repeats_to_what_a_search_of_the_final_size_holds(tmp_path, sweeper_cli):
    db, scratch = tmp_path / "grown.db", tmp_path / "scratch.db"
    assert sweep(sweeper_cli, tmp_path, db, sampled("random", 2, 3)).exit_code == 0

    grown = sweep(sweeper_cli, tmp_path, db, sampled("random", 3, 5))

    assert grown.exit_code == 0, grown.stderr
    assert "10 runs trained" in grown.stderr and "18 runs stored in all" in grown.stderr  # 4 x 2 stored, 6 x 3
    assert sweep(sweeper_cli, tmp_path, scratch, sampled("random", 3, 5)).exit_code == 0
    assert held(db) == held(scratch)


def test_a_tpe_search_grows_by_repeats_only(tmp_path, sweeper_cli):
    db = tmp_path / "tpe.db"
    assert sweep(sweeper_cli, tmp_path, db, sampled("tpe", 2, 3)).exit_code == 0
    before = held(db)

    more_trials = sweep(sweeper_cli, tmp_path, db, sampled("tpe", 2, 5))

    assert more_trials.exit_code == 2
    assert more_trials.stderr == (
        "error: sweep 'grow-me': a tpe search grows by repeats only (its proposals depend on the objectives it "
        "was told, so n_trials 3 -> 5 would not give what a sweep of that size gives); keep n_trials, or run it "
        "under another --name\n"
    )
    assert held(db) == before

    more_repeats = sweep(sweeper_cli, tmp_path, db, sampled("tpe", 3, 3))

    assert more_repeats.exit_code == 0, more_repeats.stderr
    assert "4 runs trained" in more_repeats.stderr  # the 4 trials' third repeat, nothing else
    grown = held(db)
    assert set(grown["trials"]) == set(before["trials"])  # the same configurations, now over 3 repeats
    assert {key[:3] for key in grown["runs"]} >= set(before["runs"])


@pytest.mark.postgres
def test_a_sweep_grows_on_postgresql_to_what_sqlite_holds_from_scratch(
    tmp_path, sweeper_cli, from_scratch, pg_database
):
    url = pg_database()
    file = tmp_path / "space.yaml"
    file.write_text(space(3, "[0.1, 0.3]"))
    assert sweeper_cli("run", file, "--db", url).exit_code == 0
    file.write_text(space(5, "[0.05, 0.1, 0.3]"))

    grown = sweeper_cli("run", file, "--db", url)

    assert grown.exit_code == 0, grown.stderr
    assert "20 runs trained" in grown.stderr and "35 runs stored in all" in grown.stderr
    assert held(url) == from_scratch(5, "[0.05, 0.1, 0.3]")


def test_a_sweep_stored_before_histories_were_kept_starts_its_history_from_its_row(tmp_path, sweeper_cli):
    db = tmp_path / "old.db"
    assert sweep(sweeper_cli, tmp_path, db, space(3, "[0.1, 0.3]")).exit_code == 0
    execute(f"sqlite:///{db}", "UPDATE sweeper_sweeps SET context = NULL")  # as schema 0005 left it

    assert sweep(sweeper_cli, tmp_path, db, space(5, "[0.1, 0.3]")).exit_code == 0

    said = history(sweeper_cli, db)
    assert [(h["event"], h["repeats"], h["planned"]) for h in said] == [("planned", 3, None), ("extended", 5, 5)]
    table = " ".join(sweeper_cli("report", NAME, "--db", f"sqlite:///{db}").stdout.split())
    assert re.search(
        r"history: planned 3 repeats at \S+; extended at \S+ \(repeats 3 -> 5\) to 5 configurations", table
    )


def test_an_extended_sweeps_verdicts_come_from_the_always_valid_test(tmp_path, sweeper_cli):
    db = tmp_path / "grown.db"
    assert sweep(sweeper_cli, tmp_path, db, space(3, "[0.1, 0.3]")).exit_code == 0
    fixed = json.loads(sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json").stdout)
    assert sweep(sweeper_cli, tmp_path, db, space(5, "[0.1, 0.3]")).exit_code == 0
    grown = json.loads(sweeper_cli("report", NAME, "--db", f"sqlite:///{db}", "--format", "json").stdout)

    def tests(report):
        return {row.get("test") for row in report["configs"] if row["verdict"] != "baseline"}

    # Read after the fact, a sweep extended after its report must not be judged by a one-look test.
    assert tests(fixed) <= {None, "signed-rank, exact"}
    assert tests(grown) == {"always-valid normal mixture"}
    stored = dict(
        execute(
            f"sqlite:///{db}",
            "SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
            "USING (trial_id) WHERE a.key = 'verdict'",
        )
    )
    assert {n: json.loads(v) for n, v in stored.items()} == {row["trial"]: row["verdict"] for row in grown["configs"]}
