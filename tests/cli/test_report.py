"""`sweeper report` on a stored sweep says what trained its runs."""

from __future__ import annotations

import json

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
