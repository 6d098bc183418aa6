"""`sweeps`, `trials` and `runs` print the store as a table, CSV or one JSON array, and nothing else on stdout."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sweeper.engine.machine import this_machine
from sweeper.listing import RAN_COLUMNS, ran_in_one_column
from sweeper.store import open_store

SEEDS = ("data_seed", "init_seed", "noise_seed")
METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
TINY_CONFIGS, TINY_REPEATS = 3, 2


def listing(sweeper_cli, db, command, fmt):
    args = [command] + ([] if command == "sweeps" else ["tiny"]) + ["--db", f"sqlite:///{db}", "--format", fmt]
    result = sweeper_cli(*args)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.mark.parametrize(
    "command, n_rows", [("sweeps", 1), ("trials", TINY_CONFIGS), ("runs", TINY_CONFIGS * TINY_REPEATS)]
)
def test_json_listing_is_one_array_of_flat_objects_and_nothing_else(sweeper_cli, tiny_sqlite, command, n_rows):
    result = listing(sweeper_cli, tiny_sqlite, command, "json")

    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == n_rows
    assert all(isinstance(row, dict) for row in rows)
    assert all(not isinstance(v, dict) for row in rows for v in row.values())
    assert result.stderr == ""


def test_json_runs_carry_sweep_trial_repeat_seeds_and_named_metrics(sweeper_cli, tiny_sqlite):
    rows = json.loads(listing(sweeper_cli, tiny_sqlite, "runs", "json").stdout)

    keys = ("sweep", "trial", "task", "repeat", *SEEDS, *METRICS)
    assert all(set(keys) <= set(row) for row in rows)
    assert sorted((r["trial"], r["repeat"]) for r in rows) == [
        (t, r) for t in range(TINY_CONFIGS) for r in range(TINY_REPEATS)
    ]
    assert {r["sweep"] for r in rows} == {"tiny"}
    assert all(isinstance(r[s], int) and 0 <= r[s] < 2**63 for r in rows for s in SEEDS)
    assert all(0.0 <= r[m] <= 1.0 for r in rows for m in ("train_accuracy", "test_accuracy"))
    assert all(r[m] > 0 for r in rows for m in ("train_loss", "test_loss"))
    # common random numbers: a repeat's data and init seeds are shared by every configuration
    for repeat in range(TINY_REPEATS):
        assert len({(r["data_seed"], r["init_seed"]) for r in rows if r["repeat"] == repeat}) == 1
    assert len({r["noise_seed"] for r in rows}) == len(rows)
    with open_store(f"sqlite:///{tiny_sqlite}", create=False) as store:
        assert rows == store.runs("tiny")  # the JSON carries the stored numbers exactly


def test_json_sweeps_and_trials_name_their_sweep(sweeper_cli, tiny_sqlite):
    (sweep,) = json.loads(listing(sweeper_cli, tiny_sqlite, "sweeps", "json").stdout)
    assert (sweep["name"], sweep["status"], sweep["n_trials"], sweep["n_runs"]) == (
        "tiny",
        "completed",
        TINY_CONFIGS,
        TINY_CONFIGS * TINY_REPEATS,
    )

    trials = json.loads(listing(sweeper_cli, tiny_sqlite, "trials", "json").stdout)
    assert [t["trial"] for t in trials] == list(range(TINY_CONFIGS))
    assert {t["sweep"] for t in trials} == {"tiny"}
    assert trials[0]["label"] == "none" and trials[0]["params"] == []
    assert all(t["n_runs"] == TINY_REPEATS and t["status"] == "complete" for t in trials)
    assert all(isinstance(t["objective"], float) for t in trials)


@pytest.mark.parametrize("command", ["sweeps", "trials", "runs"])
def test_csv_listing_has_the_json_rows(sweeper_cli, tiny_sqlite, command):
    as_json = json.loads(listing(sweeper_cli, tiny_sqlite, command, "json").stdout)
    as_csv = list(csv.DictReader(io.StringIO(listing(sweeper_cli, tiny_sqlite, command, "csv").stdout)))

    assert len(as_csv) == len(as_json)
    assert list(as_csv[0]) == list(as_json[0])
    for got, want in zip(as_csv, as_json):
        for key, value in want.items():
            if value is None:
                assert got[key] == ""
            elif isinstance(value, bool):
                assert got[key] == str(value)
            elif isinstance(value, float):
                assert float(got[key]) == value
            elif isinstance(value, int):
                assert int(got[key]) == value
            elif isinstance(value, list):
                assert json.loads(got[key]) == value
            else:
                assert got[key] == value


@pytest.mark.parametrize("command, title", [("sweeps", "sweeps"), ("trials", "tiny: trials"), ("runs", "tiny: runs")])
def test_table_listing_shows_a_titled_table(sweeper_cli, tiny_sqlite, command, title):
    out = listing(sweeper_cli, tiny_sqlite, command, "table").stdout

    assert out.splitlines()[0].strip() == title
    assert "┏" in out and "└" in out
    body = [line for line in out.splitlines() if line.startswith("│")]
    expected = {"sweeps": 1, "trials": TINY_CONFIGS, "runs": TINY_CONFIGS * TINY_REPEATS}[command]
    assert len(body) >= expected


def test_default_format_is_the_table(sweeper_cli, tiny_sqlite):
    default = sweeper_cli("trials", "tiny", "--db", f"sqlite:///{tiny_sqlite}")
    table = sweeper_cli("trials", "tiny", "--db", f"sqlite:///{tiny_sqlite}", "--format", "table")
    assert default.exit_code == 0 and default.stdout == table.stdout


def test_sweeps_say_what_trained_their_runs(sweeper_cli, tiny_sqlite):
    (sweep,) = json.loads(listing(sweeper_cli, tiny_sqlite, "sweeps", "json").stdout)
    (run_engine,) = {r["engine"] for r in json.loads(listing(sweeper_cli, tiny_sqlite, "runs", "json").stdout)}
    here = this_machine("cpu")

    assert run_engine in ("fused", "stacked")
    assert (sweep["engine"], sweep["device"], sweep["gpu"]) == (run_engine, "cpu", None)
    assert (sweep["sweeper_version"], sweep["torch_version"], sweep["cpu"], sweep["host"]) == (
        here.sweeper_version,
        here.torch_version,
        here.cpu,
        here.host,
    )
    (row,) = ran_in_one_column([sweep])  # what the table shows, in one column a terminal can hold
    assert row["ran"] == (
        f"{run_engine} engine on cpu ({here.cpu}), sweeper {here.sweeper_version}, "
        f"torch {here.torch_version}, host {here.host}"
    )
    assert not set(RAN_COLUMNS) & set(row)


# -- tables in a pipe or a file ---------------------------------------------------------------------


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip()[1:-1].split(line.strip()[0])]


def test_a_table_in_a_pipe_keeps_each_row_on_one_line_with_full_values(sweeper_cli, tiny_sqlite):
    columns = {f"column_{i:02d}_with_a_long_name": f"value-{i:02d}-" + "x" * 30 for i in range(12)}
    sql = "SELECT " + ", ".join(f"'{v}' AS {k}" for k, v in columns.items()) + " FROM sweeper_runs"

    out = sweeper_cli("query", sql, "--db", f"sqlite:///{tiny_sqlite}", "--format", "table").stdout

    lines = out.splitlines()
    (header,) = [line for line in lines if line.startswith("┃")]
    body = [line for line in lines if line.startswith("│")]
    assert cells(header) == list(columns)
    assert [cells(line) for line in body] == [list(columns.values())] * TINY_CONFIGS * TINY_REPEATS
    assert len(lines) == 3 + len(body) + 1  # top border, header, rule, rows, bottom border
    assert "…" not in out and len(body[0]) > 12 * 40


def test_the_runs_table_in_a_pipe_has_one_line_per_run_with_its_full_seeds(sweeper_cli, tiny_sqlite):
    runs = json.loads(listing(sweeper_cli, tiny_sqlite, "runs", "json").stdout)

    lines = listing(sweeper_cli, tiny_sqlite, "runs", "table").stdout.splitlines()

    (header,) = [cells(line) for line in lines if line.startswith("┃")]
    body = [dict(zip(header, cells(line))) for line in lines if line.startswith("│")]
    # what trained a run in words, in one column; the metrics at the best validation epoch only in csv and json
    assert header == [k for k in ran_in_one_column(runs)[0] if not k.startswith("early_")]
    assert [[int(row[s]) for s in SEEDS] for row in body] == [[run[s] for s in SEEDS] for run in runs]


def test_the_report_in_a_pipe_is_80_columns_wide_and_every_column_is_in_wide_tables(
    sweeper_cli, tiny_sqlite, monkeypatch
):
    monkeypatch.delenv("COLUMNS", raising=False)
    url = f"sqlite:///{tiny_sqlite}"
    report = json.loads(sweeper_cli("report", "tiny", "--db", url, "--format", "json").stdout)

    narrow = sweeper_cli("report", "tiny", "--db", url).stdout.splitlines()
    wide = sweeper_cli("report", "tiny", "--db", url, "--wide").stdout.splitlines()

    # piped, a report is as wide as a terminal would be (not one line a row): every row closes its border
    assert narrow[0] == report["answer"][: len(narrow[0])] and max(map(len, narrow + wide)) <= 80
    assert all(line.endswith(("│", "┃", "┓", "┩", "┘")) for line in narrow + wide if line.startswith(("│", "┃", "┏")))
    (header,) = [cells(line) for line in narrow if line.startswith("┃")]
    assert header == ["configuration", "Δ points [95% CI]", "wins", "p adj.", "verdict"]
    headers = " ".join(" ".join(cells(line)) for line in wide if line.startswith("┃"))
    for name in ("rank", "n", "div.", "selected on", "ECE", "P(improve)", "P(best)", "gap", "MDE"):
        assert name in headers.split() or name in headers
    words = " ".join(" ".join(narrow).split())
    assert words.count("What ran: task circles: circles, ") == 1 and f"; {TINY_CONFIGS * TINY_REPEATS} runs: " in words


def test_a_table_on_a_terminal_still_fits_its_width(terminal, tiny_sqlite):
    out = terminal.output(["runs", "tiny", "--db", f"sqlite:///{tiny_sqlite}"], columns=80)

    lines = out.splitlines()
    assert lines[0].strip() == "tiny: runs"
    assert max(map(len, lines)) <= 80
    assert len([line for line in lines if line.startswith("│")]) > TINY_CONFIGS * TINY_REPEATS  # cells folded
