"""`sweeper sweeps` from a second shell shows a running sweep's runs stored / planned, its rate over the last
minute, its ETA and the run that holds it with its last heartbeat; a sweep whose holder is gone says so and
how to resume it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from helpers import LONG_SWEEP, execute

TINY = """\
name: tiny
seed: 1
repeats: 2
task: {dataset: circles, n_train: 20, hidden: [4], epochs: 5}
search:
  sampler: grid
  configs:
    - {placement: input, std: 0.1}
"""


def listed(sweeper_cli, url: str) -> dict:
    result = sweeper_cli("sweeps", "--db", url, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return row


def table(sweeper_cli, url: str) -> str:
    result = sweeper_cli("sweeps", "--db", url)
    assert result.exit_code == 0, result.stderr
    return " ".join(result.stdout.split())  # the table's cells may wrap: compare words


@pytest.mark.slow
def test_a_running_sweep_shows_its_progress_rate_eta_and_holder_and_once_killed_says_how_to_resume(
    tmp_path, sweeper_cli
):
    url = f"sqlite:///{tmp_path / 'long.db'}"
    (tmp_path / "long.yaml").write_text(LONG_SWEEP)
    with open(tmp_path / "err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sweeper.cli", "run", "long.yaml", "--db", url],
            cwd=tmp_path,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while True:  # until the quick pack is stored
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "err").read_text()
            try:
                if execute(url, "SELECT count(*) FROM sweeper_runs") == [(2,)]:
                    break
            except sa.exc.SQLAlchemyError:  # no tables yet
                pass
            time.sleep(0.1)

        row = listed(sweeper_cli, url)

        assert (row["status"], row["n_runs"], row["runs_planned"]) == ("running", 2, 4)
        assert row["runs_per_second"] == pytest.approx(2 / 60, abs=1e-3)  # 2 runs in the last minute
        assert row["eta_seconds"] == pytest.approx(60, abs=2)  # 2 runs left at that rate
        assert (row["lease_host"], row["lease_pid"]) == (socket.gethostname(), process.pid)
        assert 0 <= row["heartbeat_age_s"] < 10  # beats every 5 s
        assert (row["holder_alive"], row["note"]) == (True, None)
        words = table(sweeper_cli, url)
        assert "2/4 runs, 0.03 runs/s (last minute), ETA 1m00s" in words or "ETA 59s" in words, words
        assert f"host {socket.gethostname()} (pid {process.pid}), heartbeat" in words

        os.killpg(process.pid, signal.SIGKILL)  # a lost machine, an OOM kill: no chance to say so
        process.wait()
        row = listed(sweeper_cli, url)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert (row["status"], row["holder_alive"], row["eta_seconds"]) == ("running", False, None)
    assert row["note"] == (
        f"stopped: its run (pid {process.pid} on this host) has ended; resume it with the command that started it "
        "(sweeper run FILE)"
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_running_sweep_whose_heartbeat_is_older_than_the_lease_is_said_to_be_gone(
    backend, tmp_path, sweeper_cli, request
):
    """Its run was on another host (or its clock is another's): the heartbeat's age, by the database's clock, says
    it stopped; the resume hint repeats the flags it was started with."""
    url = request.getfixturevalue("pg_database")() if backend == "postgresql" else f"sqlite:///{tmp_path / 't.db'}"
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert sweeper_cli("run", tmp_path / "tiny.yaml", "--db", url, "--epochs", "4").exit_code == 0
    then = (
        "now() - interval '2 minutes'"
        if backend == "postgresql"
        else "strftime('%Y-%m-%d %H:%M:%f', 'now', '-120 seconds')"
    )
    execute(
        url,
        "UPDATE sweeper_sweeps SET status = 'running', lease_token = 't', lease_host = 'elsewhere', lease_pid = 4242, "
        f"lease_since = {then}, lease_heartbeat_at = {then}",
    )

    row = listed(sweeper_cli, url)

    assert (row["n_runs"], row["runs_planned"]) == (4, 4)
    assert (row["lease_host"], row["lease_pid"], row["holder_alive"]) == ("elsewhere", 4242, False)
    assert 119 <= row["heartbeat_age_s"] < 200
    assert row["note"].startswith("stopped: its run's heartbeat (host elsewhere, pid 4242) stopped 1")
    assert row["note"].endswith(" s ago; resume it with the command that started it (sweeper run FILE --epochs 4)")
    assert "resume it with the command that started it (sweeper run FILE --epochs 4)" in table(sweeper_cli, url)


def test_a_finished_sweep_shows_its_runs_planned_and_nothing_of_a_run(tmp_path, sweeper_cli):
    url = f"sqlite:///{tmp_path / 't.db'}"
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert sweeper_cli("run", tmp_path / "tiny.yaml", "--db", url).exit_code == 0

    row = listed(sweeper_cli, url)

    assert (row["status"], row["n_runs"], row["runs_planned"]) == ("completed", 4, 4)
    live = ("runs_per_second", "eta_seconds", "lease_host", "lease_pid", "heartbeat_age_s", "holder_alive", "note")
    assert [row[k] for k in live] == [None] * len(live)
    assert "4/4 runs" in table(sweeper_cli, url)
