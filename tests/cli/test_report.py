"""`sweeper report` on a stored sweep says what trained its runs."""

from __future__ import annotations

import contextlib
import json
import sqlite3

from sweeper.engine.machine import this_machine
from sweeper.records import describe


def test_the_report_says_what_trained_the_runs_and_what_drove_the_sweep(sweeper_cli, tiny_sqlite):
    url = f"sqlite:///{tiny_sqlite}"
    (engine,) = {r["engine"] for r in json.loads(sweeper_cli("runs", "tiny", "--db", url, "--format", "json").stdout)}
    here = this_machine("cpu").as_dict()

    table = sweeper_cli("report", "tiny", "--db", url)
    as_json = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)

    assert table.exit_code == 0, table.stderr
    assert f"; 6 runs: {describe({**here, 'engine': engine})}; driven by `sweeper run`: {describe(here)}." in " ".join(
        table.stdout.split()
    )
    assert as_json["ran"] == {
        "runs": [
            {
                "engine": engine,
                **{k: here[k] for k in ("device", "cpu", "gpu", "sweeper_version", "torch_version", "host")},
                "n_runs": 6,
            }
        ],
        "sweep": here,
    }


def test_the_report_says_what_ran_chooses_on_validation_and_filters_its_table(sweeper_cli, tiny_sqlite):
    url = f"sqlite:///{tiny_sqlite}"

    report = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)
    early = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json", "--at", "best_val").stdout)
    top = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json", "--top", "1").stdout)

    (task,) = report["setting"]["tasks"]
    assert (task["n_train"], task["n_val"], task["n_test"]) == (30, 70, 70)
    assert report["setting"]["repeats"] == 2 and report["setting"]["space"] == "grid of 3 configurations"
    assert (report["selected_on"], report["metric"]) == ("val_accuracy", "test_accuracy")
    assert (early["selected_on"], early["metric"]) == ("early_val_accuracy", "early_test_accuracy")
    assert report["chosen"]["trials"] == [report["configs"][0]["trial"]] or report["chosen"]["tied"]
    assert len(top["configs"]) == 2 and top["shown"]["of"] == 3  # the best and the baseline


def test_bad_report_options_fail_in_one_line(sweeper_cli, tiny_sqlite):
    url = f"sqlite:///{tiny_sqlite}"
    for args, fragment in (
        (
            ["--verdict", "better,great"],
            "--verdict: 'better,great' is not allowed; allowed: a comma-separated list of better, worse",
        ),
        (["--at", "first"], "--at: 'first' is not allowed; allowed: last, best_val"),
    ):
        result = sweeper_cli("report", "tiny", "--db", url, *args)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.startswith("error: ") and fragment in result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_the_report_writes_nothing_to_the_database(sweeper_cli, tiny_sqlite_copy):
    url = f"sqlite:///{tiny_sqlite_copy}"

    def everything() -> list[str]:  # every table, Optuna's included, as SQL text
        with contextlib.closing(sqlite3.connect(tiny_sqlite_copy)) as connection:
            return list(connection.iterdump())

    before = everything()
    assert any("trial_user_attributes" in line and "verdict" in line for line in before)  # the sweep recorded them
    for fmt in ("table", "json", "csv"):
        assert sweeper_cli("report", "tiny", "--db", url, "--format", fmt).exit_code == 0
    assert everything() == before


def test_a_sweep_stored_before_its_context_is_reported_from_its_runs(sweeper_cli, tiny_sqlite_copy, tiny_space):
    url = f"sqlite:///{tiny_sqlite_copy}"
    full = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)
    with contextlib.closing(sqlite3.connect(tiny_sqlite_copy)) as connection, connection:
        connection.execute("UPDATE sweeper_sweeps SET context = NULL")  # as schema 0005 left it

    result = sweeper_cli("report", "tiny", "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["setting"] is None and report["progress"]["runs_planned"] is None
    table = sweeper_cli("report", "tiny", "--db", url).stdout
    assert "What ran: tasks, split sizes and the planned configurations: unknown" in " ".join(table.split())
    assert full["setting"]["tasks"][0]["n_train"] == 30 and full["progress"]["runs_planned"] == 6
    assert [(c["trial"], c["verdict"]) for c in report["configs"]] == [
        (c["trial"], c["verdict"]) for c in full["configs"]
    ]
    # Running the completed sweep's file again trains nothing and stores what the report lacked.
    assert sweeper_cli("run", tiny_space, "--db", url).exit_code == 0
    assert json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout) == full


def test_on_a_terminal_the_report_opens_with_its_answer_and_fits_80_and_120_columns(terminal, sweeper_cli, tiny_sqlite):
    url = f"sqlite:///{tiny_sqlite}"
    answer = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)["answer"]

    for columns in (80, 120):
        for wide in ([], ["--wide"]):
            lines = terminal.output(["report", "tiny", "--db", url, *wide], columns=columns).splitlines()

            assert answer.startswith(lines[0].rstrip()) and len(lines[0].rstrip()) > columns // 2
            assert max(map(len, lines)) <= columns
            assert any(line.startswith("verdict: better or worse where the Holm-adjusted p < 0.05") for line in lines)
