"""The compose stack's PostgreSQL creates the role `sweeper query` runs as, exactly as `sweeper db reader` does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from sweeper.store import READER, create_reader
from sweeper.store._reader import reader_password

DOCKER = Path(__file__).resolve().parents[2] / "docker"
INIT = DOCKER / "postgres-init"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
OWNER_PASSWORD = "compose-secret-42"
pytestmark = pytest.mark.usefixtures("reader_role_held")  # it runs the script that changes the reader role


def test_postgres_runs_the_reader_script_on_first_start(compose):
    volumes = compose["services"]["postgres"]["volumes"]

    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in volumes
    assert sorted(p.name for p in INIT.iterdir()) == ["sweeper-reader.sql"]


def scram_verifies(verifier: str, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier (``SCRAM-SHA-256$iter:salt$stored:server``) is of ``password``."""
    _, iterations_salt, keys = verifier.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def reader_role() -> tuple:
    """The reader's attributes, memberships, settings and password verifier."""
    with psycopg.connect(ADMIN, autocommit=True) as connection:
        return connection.execute(
            "SELECT a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin, a.rolreplication, "
            "a.rolbypassrls, ARRAY(SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = a.oid), "
            "ARRAY(SELECT unnest(s.setconfig) ORDER BY 1), a.rolpassword FROM pg_authid a "
            "LEFT JOIN pg_db_role_setting s ON s.setrole = a.oid AND s.setdatabase = 0 WHERE a.rolname = %s",
            (READER,),
        ).fetchone()


@pytest.mark.postgres
def test_the_init_script_makes_the_role_db_reader_makes(pg_url):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql to run the script with")
    owner_url = pg_url.replace("postgres@", f"postgres:{OWNER_PASSWORD}@")

    subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", ADMIN, "-f", str(INIT / "sweeper-reader.sql")],
        env={**os.environ, "POSTGRES_PASSWORD": OWNER_PASSWORD},
        check=True,
        capture_output=True,
    )
    *by_script, script_password = reader_role()
    create_reader(owner_url)
    *by_command, command_password = reader_role()

    assert by_script == by_command
    assert by_script[:7] == [False, False, False, False, True, False, False] and by_script[7] == []
    assert by_script[8] == [
        "default_transaction_read_only=on",
        "idle_in_transaction_session_timeout=5min",
        "statement_timeout=5min",
        "temp_file_limit=1GB",
    ]
    assert scram_verifies(script_password, reader_password(OWNER_PASSWORD))
    assert scram_verifies(command_password, reader_password(OWNER_PASSWORD))
    assert not scram_verifies(command_password, OWNER_PASSWORD)
