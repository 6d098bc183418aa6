"""`sweeper query` reads, the database itself refuses every write, and rows and time are bounded, on SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sweeper.store import open_store

# On PostgreSQL it queries as the reader role, which test_query_postgresql.py changes: not at the same time.
pytestmark = pytest.mark.usefixtures("reader_role_held")
WRITES = {
    "insert": "INSERT INTO sweeper_sweeps (name, spec_yaml, seed, metric, higher_is_better, repeats, problem, "
    "status, study_name, created_at, updated_at) VALUES ('evil', '', 0, 'test_accuracy', true, 1, "
    "'binary', 'running', 'evil', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "update": "UPDATE sweeper_runs SET test_accuracy = 1.0",
    "delete": "DELETE FROM sweeper_runs",
    "drop": "DROP TABLE sweeper_curves",
    "create": "CREATE TABLE evil (a INTEGER)",
    "create_index": "CREATE INDEX evil_index ON sweeper_runs (test_loss)",
    "select_then_delete": "SELECT 1; DELETE FROM sweeper_runs",
    "delete_in_cte": "WITH gone AS (DELETE FROM sweeper_runs RETURNING id) SELECT count(*) FROM gone",
}
# SQLite has no writable CTE; the rest is plain SQL on both.
SQLITE_ONLY_SKIPS = {"delete_in_cte"}

RUNS_SQL = (
    'SELECT t.number AS trial, r.task, r."repeat", r.data_seed, r.noise_seed, r.test_accuracy '
    "FROM sweeper_runs r JOIN sweeper_trials t ON t.id = r.trial_id ORDER BY 1, 2, 3"
)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path_factory, tiny_space, sweeper_cli):
    """A database holding the completed sweep ``tiny``, once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('query') / 'tiny.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    result = sweeper_cli("run", tiny_space, "--db", url)
    assert result.exit_code == 0, result.stderr
    return request.param, url


@pytest.mark.parametrize("name", sorted(WRITES))
def test_query_refuses_writes_and_leaves_the_data_unchanged(sweeper_cli, db, db_snapshot, name):
    backend, url = db
    if backend == "sqlite" and name in SQLITE_ONLY_SKIPS:
        pytest.skip("SQLite has no data-modifying WITH")
    before = db_snapshot(url)

    result = sweeper_cli("query", WRITES[name], "--db", url, "--format", "json")

    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: query "), result.stderr
    assert "Traceback" not in result.stderr
    assert db_snapshot(url) == before


def test_query_select_prints_exactly_one_json_array(sweeper_cli, db):
    _, url = db
    result = sweeper_cli("query", RUNS_SQL, "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.lstrip().startswith("[")
    rows = json.loads(result.stdout)
    with open_store(url, create=False) as store:
        stored = store.runs("tiny")
    assert rows == [
        {k: r[k] for k in ("trial", "task", "repeat", "data_seed", "noise_seed", "test_accuracy")} for r in stored
    ]


def test_query_select_as_csv_and_table(sweeper_cli, db):
    _, url = db
    sql = "SELECT count(*) AS n_runs, min(test_loss) > 0 AS positive FROM sweeper_runs"

    as_csv = sweeper_cli("query", sql, "--db", url, "--format", "csv")
    as_table = sweeper_cli("query", sql, "--db", url)

    assert as_csv.exit_code == 0 and as_table.exit_code == 0
    (row,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert int(row["n_runs"]) == 6
    assert "n_runs" in as_table.stdout and "6" in as_table.stdout


def test_query_names_a_bad_statement_in_one_line(sweeper_cli, db):
    _, url = db
    result = sweeper_cli("query", "SELECT nope FROM sweeper_runs", "--db", url)

    assert result.exit_code == 2
    assert result.stderr.startswith("error: query failed:") and result.stderr.count("\n") == 1
    assert "nope" in result.stderr


BILLION_ROWS = "with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select x from c"
ENDLESS = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"


def test_query_stops_a_billion_rows_at_the_default_limit_and_says_so(sweeper_cli, db):
    _, url = db
    result = sweeper_cli("query", BILLION_ROWS, "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"x": x} for x in range(1, 10_001)]
    assert result.stderr == "showing the first 10000 rows; --limit to change\n"


def test_query_limit_shows_that_many_rows_and_is_silent_when_nothing_was_left(sweeper_cli, db):
    _, url = db
    cut = sweeper_cli("query", "SELECT id FROM sweeper_runs ORDER BY id", "--db", url, "-f", "json", "--limit", "4")
    whole = sweeper_cli("query", "SELECT id FROM sweeper_runs ORDER BY id", "--db", url, "-f", "json", "--limit", "6")

    assert cut.exit_code == 0 and whole.exit_code == 0
    assert json.loads(cut.stdout) == json.loads(whole.stdout)[:4] and len(json.loads(whole.stdout)) == 6
    assert cut.stderr == "showing the first 4 rows; --limit to change\n"
    assert whole.stderr == ""


def test_an_endless_query_stops_at_the_timeout_in_one_line(sweeper_cli, db):
    _, url = db
    result = sweeper_cli("query", ENDLESS, "--db", url, "--timeout", "1")

    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: query stopped: it ran past --timeout 1 s\n"


@pytest.mark.parametrize(
    "option, value",
    [
        ("--limit", "0"),
        ("--limit", "-5"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "1e9"),
    ],
)
def test_a_bad_limit_or_timeout_is_refused_in_one_line_naming_it(sweeper_cli, db, option, value):
    _, url = db
    result = sweeper_cli("query", "SELECT 1", "--db", url, option, value)

    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {option}: ") and result.stderr.count("\n") == 1
    assert "allowed: " in result.stderr


def test_columns_of_the_same_name_are_refused_rather_than_merged(sweeper_cli, db):
    _, url = db
    result = sweeper_cli("query", "SELECT 1 AS a, 2 AS a", "--db", url, "--format", "json")

    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: query: column name 'a' appears more than once; name each column apart with AS\n"
