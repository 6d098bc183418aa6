"""`sweeper query` on PostgreSQL runs as the role sweeper_reader: no escape to the owner's powers, no backend
left behind, and `sweeper db reader` makes (and remakes) that role."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from sweeper.store import READER, _reader

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("reader_role_held")]  # it changes the reader role

SECRET = "secret_notes"


def admin_conninfo(url: str) -> str:
    """psycopg's connection string for the URL's database, as the superuser the tests use."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def url(pg_url, tiny_space, sweeper_cli) -> str:
    """A database holding sweep ``tiny`` and a table someone else made there, with one row."""
    result = sweeper_cli("run", tiny_space, "--db", pg_url)
    assert result.exit_code == 0, result.stderr
    with psycopg.connect(admin_conninfo(pg_url), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {SECRET} (note text)")
        connection.execute(f"INSERT INTO {SECRET} VALUES ('the owner only')")
    return pg_url


def reader_backends(url: str) -> list[tuple]:
    """The reader's sessions on the URL's database: (pid, state, query)."""
    with psycopg.connect(admin_conninfo(url), autocommit=True) as connection:
        return connection.execute(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE usename = %s AND datname = current_database() AND pid <> pg_backend_pid()",
            (READER,),
        ).fetchall()


def no_reader_backend_remains(url: str) -> bool:
    """Whether the reader's sessions on the URL's database are gone, polling for up to 30 s (a backend ends a
    moment after its client, and the timeouts under test are 3 s: the margin is for a loaded machine)."""
    for _ in range(300):
        if not reader_backends(url):
            return True
        time.sleep(0.1)
    return False


def roles_and_settings() -> list[tuple]:
    """The attributes, memberships and settings of the owner and the reader: what an escape would change."""
    with psycopg.connect(admin_conninfo("postgresql://postgres@127.0.0.1:5432/postgres"), autocommit=True) as c:
        return c.execute(
            "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcanlogin, "
            "ARRAY(SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = r.oid "
            "ORDER BY 1), ARRAY(SELECT unnest(s.setconfig) ORDER BY 1) FROM pg_roles r "
            "LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0 "
            "WHERE r.rolname IN (%s, %s) ORDER BY 1",
            ("postgres", READER),
        ).fetchall()


def one_line_error(result, starts: str) -> None:
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(starts) and result.stderr.count("\n") == 1, result.stderr


ESCAPES = {
    "set_config_role_then_read_a_file": "select set_config('role','postgres',true), "
    "query_to_xml('select pg_read_file(''/etc/passwd'') f',true,false,'')",
    "set_config_role_then_read_the_passwords": "select set_config('role','postgres',true), "
    "query_to_xml('select rolpassword from pg_authid',true,false,'')",
    "reset_role_then_read_a_file": "reset role; select pg_read_file('/etc/passwd')",
    "set_role": "set role postgres",
    "set_session_authorization": "set session_authorization postgres",
    "set_config_session_authorization": "select set_config('session_authorization','postgres',false)",
    "read_pg_authid": "select rolname, rolpassword from pg_authid",
    "read_a_file": "select pg_read_file('/etc/passwd')",
    "list_a_directory": "select pg_ls_dir('.')",
    "read_a_table_someone_else_made": f"select * from {SECRET}",
    "large_object_import": "select lo_import('/etc/passwd')",
    "commit_then_insert": f"commit; insert into {SECRET} values ('written')",
    "insert_in_a_cte": f"with w as (insert into {SECRET} values ('written') returning 1) select * from w",
    "lock_for_update": "select * from sweeper_runs for update",
    "create_table": "create table sweeper_evil (a int)",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_no_escape_reaches_the_owners_powers(sweeper_cli, url, db_snapshot, name):
    before, roles = db_snapshot(url), roles_and_settings()

    result = sweeper_cli("query", ESCAPES[name], "--db", url, "--format", "json")

    one_line_error(result, "error: query refused: ")
    assert "root:" not in result.stderr and "SCRAM" not in result.stderr
    assert db_snapshot(url) == before and roles_and_settings() == roles
    with psycopg.connect(admin_conninfo(url)) as connection:
        assert connection.execute(f"SELECT note FROM {SECRET}").fetchall() == [("the owner only",)]


def test_copy_to_a_program_runs_nothing(sweeper_cli, url, tmp_path):
    target = tmp_path / "ran"

    result = sweeper_cli("query", f"copy (select 1) to program 'touch {target}'", "--db", url)

    one_line_error(result, "error: query refused: copy is not a query")
    assert not target.exists()


def test_dblink_is_not_there_to_reach_another_server(sweeper_cli, url):
    result = sweeper_cli(
        "query", "select * from dblink('dbname=postgres user=postgres', 'select 1') as t(a int)", "--db", url
    )

    one_line_error(result, "error: query failed: function dblink(")


@pytest.mark.parametrize(
    "sql",
    [
        "select pg_terminate_backend({pid})",
        "select pg_cancel_backend({pid})",
        "select set_config('role','postgres',true), pg_terminate_backend({pid})",
    ],
)
def test_another_session_survives_terminate_and_cancel(sweeper_cli, url, sql):
    with psycopg.connect(admin_conninfo(url), autocommit=True) as other:
        pid = other.info.backend_pid

        result = sweeper_cli("query", sql.format(pid=pid), "--db", url)

        one_line_error(result, "error: query refused: ")
        assert other.execute("SELECT pg_backend_pid()").fetchone() == (pid,)


def test_the_reader_reads_sweeper_and_optuna_tables(sweeper_cli, url):
    result = sweeper_cli(
        "query",
        "select (select count(*) from sweeper_runs) as runs, "
        "(select count(*) from trials) as optuna_trials, session_user as reader, "
        "current_setting('transaction_read_only') as read_only",
        "--db",
        url,
        "-f",
        "json",
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"runs": 6, "optuna_trials": 3, "reader": READER, "read_only": "on"}]


def test_a_billion_row_series_stops_at_the_limit_and_leaves_no_backend(sweeper_cli, url):
    result = sweeper_cli("query", "select generate_series(1, 1e9) as x", "--db", url, "-f", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10_000 and rows[-1] == {"x": 10_000}
    assert result.stderr == "showing the first 10000 rows; --limit to change\n"
    assert no_reader_backend_remains(url)


def test_temporary_files_stop_at_the_readers_temp_file_limit(sweeper_cli, url):
    assert sweeper_cli("db", "reader", "--db", url, "--temp-file-limit", "10MB").exit_code == 0
    try:
        # A set-returning function in FROM is materialized whole before its first row: 1e9 rows of temp files.
        result = sweeper_cli("query", "select * from generate_series(1, 1e9)", "--db", url, "--timeout", "120")
    finally:
        assert sweeper_cli("db", "reader", "--db", url).exit_code == 0

    one_line_error(result, "error: query stopped: temporary file size exceeds temp_file_limit (10240kB)")


HANGS = {
    "sleep": "select pg_sleep(600)",
    # Without the client check, only the server's statement timeout ends it.
    "sleep_without_client_check": "select set_config('client_connection_check_interval', '0', true), pg_sleep(600)",
    # The first batch turns both off for the batches after it; each batch re-arms the timeout.
    "both_turned_off_after_the_first_batch": "select x, case when x > 1 then pg_sleep(600) end from "
    "(select x, set_config('statement_timeout', '0', true), "
    "set_config('client_connection_check_interval', '0', true) "
    "from generate_series(1, 3) x) s",
}


def start_query(url: str, sql: str, *options: str) -> subprocess.Popen:
    """`sweeper query` as a process of its own, returned once its statement runs on the server."""
    sweeper = Path(sys.executable).parent / "sweeper"
    client = subprocess.Popen(
        [str(sweeper), "query", sql, "--db", url, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    for _ in range(600):
        if any(state == "active" and "FETCH" in query for _, state, query in reader_backends(url)):
            return client
        if client.poll() is not None:
            raise AssertionError(f"the client ended before its query ran: {client.communicate()}")
        time.sleep(0.1)
    client.kill()
    raise AssertionError("the query never ran")


@pytest.mark.parametrize("name", sorted(HANGS))
def test_a_killed_client_leaves_no_backend_past_the_timeout(url, name):
    client = start_query(url, HANGS[name], "--timeout", "3")

    client.send_signal(signal.SIGKILL)
    client.communicate()

    assert no_reader_backend_remains(url)


def test_ctrl_c_cancels_the_query_on_the_server_and_exits_130(url):
    client = start_query(url, "select pg_sleep(600)")

    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=60)

    assert client.returncode == 130 and out == "" and "Traceback" not in err
    assert no_reader_backend_remains(url)


def test_query_without_the_reader_role_says_how_to_create_it(sweeper_cli, url, monkeypatch):
    monkeypatch.setattr(_reader, "READER", f"sweeper_absent_{secrets.token_hex(4)}")

    result = sweeper_cli("query", "select 1", "--db", url)

    one_line_error(result, "error: query runs SQL as the role sweeper_absent_")
    assert "create it once with: sweeper db reader --db URL" in result.stderr


def test_a_reader_given_powers_is_refused_until_db_reader_resets_it(sweeper_cli, url):
    with psycopg.connect(admin_conninfo(url), autocommit=True) as admin:
        admin.execute(f"GRANT pg_read_server_files TO {READER}")
        admin.execute(f"ALTER ROLE {READER} CREATEDB")
        try:
            refused = sweeper_cli("query", "select pg_read_file('/etc/passwd')", "--db", url)
        finally:
            reset = sweeper_cli("db", "reader", "--db", url)
        after = sweeper_cli("query", "select pg_read_file('/etc/passwd')", "--db", url)

    one_line_error(
        refused,
        f"error: query refused to run: role {READER} may create databases, is a member of "
        "pg_read_server_files; reset it to a plain reader with: sweeper db reader --db URL",
    )
    assert reset.exit_code == 0, reset.stderr
    one_line_error(after, "error: query refused: permission denied for function pg_read_file")


def test_db_reader_is_idempotent_and_query_grants_tables_made_after_it(sweeper_cli, pg_database, tiny_space):
    fresh = pg_database()

    first = sweeper_cli("db", "reader", "--db", fresh)
    second = sweeper_cli("db", "reader", "--db", fresh)
    ran = sweeper_cli("run", tiny_space, "--db", fresh)
    result = sweeper_cli("query", "select count(*) as n from sweeper_runs", "--db", fresh, "-f", "json")

    assert first.exit_code == 0 and second.exit_code == 0 and ran.exit_code == 0
    ready = f"role {READER} ready: it may read the sweeper and Optuna tables of {fresh}\n"
    assert first.stdout == second.stdout == ready
    assert second.stderr == (
        "note: this database has no sweeper tables yet: query grants them to the reader once they exist\n"
    )
    assert json.loads(result.stdout) == [{"n": 6}]


def test_the_reader_url_itself_queries_without_the_owner(sweeper_cli, url):
    as_reader = sa.make_url(url).set(username=READER).render_as_string(hide_password=False)

    result = sweeper_cli(
        "query", "select session_user as who, count(*) as n from sweeper_runs", "--db", as_reader, "-f", "json"
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"who": READER, "n": 6}]


def test_db_reader_needs_a_user_who_may_create_roles(sweeper_cli, url):
    user = f"sweeper_t_plain_{secrets.token_hex(4)}"
    with psycopg.connect(admin_conninfo(url), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN")
        try:
            result = sweeper_cli("db", "reader", "--db", sa.make_url(url).set(username=user).render_as_string())
        finally:
            admin.execute(f"DROP ROLE {user}")

    one_line_error(result, f"error: {user} may not create or change the role {READER}: ")
    assert "use a superuser or a role with CREATEROLE" in result.stderr


def test_db_reader_on_sqlite_says_it_is_for_postgresql(sweeper_cli, tmp_path):
    result = sweeper_cli("db", "reader", "--db", f"sqlite:///{tmp_path / 'sweeps.db'}")

    one_line_error(result, "error: sqlite:///")
    assert "a reader role is for PostgreSQL (on SQLite, query opens the file read-only)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_db_reader_refuses_a_bad_temp_file_limit_and_changes_nothing(sweeper_cli, url):
    before = roles_and_settings()

    result = sweeper_cli("db", "reader", "--db", url, "--temp-file-limit", "lots")

    one_line_error(result, "error: temp_file_limit 'lots': invalid value")
    assert "(allowed: a size such as 512MB or 2GB, or -1 for none)" in result.stderr
    assert roles_and_settings() == before
