"""What the driver tests share: `sweeper run` as a process of its own (forked from a server that imported sweeper
once), and what a sweep left in a database, read back with plain SQL (no sweeper code), on SQLite and PostgreSQL
alike."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
#: The columns of a run that must come out the same however the sweep was interrupted.
NUMBERS = (
    "data_seed",
    "init_seed",
    "noise_seed",
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "best_epoch",
    "diverged",
    "failed_to_learn",
)


class Stored:
    """A sweep as a database holds it: its runs, its Optuna study, its status and its lease."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name

    def _read(self, sql: str, **params) -> list[tuple]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(sa.text(sql), {"name": self.name, **params})]
        finally:
            engine.dispose()

    def runs(self) -> dict[tuple, tuple]:
        """(trial, task, repeat) -> the run's seeds and numbers; fails if a run is stored twice."""
        columns = ", ".join(f"r.{c}" for c in NUMBERS)
        rows = self._read(
            f'SELECT t.number, r.task, r."repeat", {columns} FROM sweeper_runs r '
            "JOIN sweeper_trials t ON t.id = r.trial_id JOIN sweeper_sweeps s ON s.id = t.sweep_id "
            "WHERE s.name = :name"
        )
        by_key = {
            row[:3]: tuple(
                bool(v) if c in ("diverged", "failed_to_learn") and v is not None else v
                for c, v in zip(NUMBERS, row[3:])
            )
            for row in rows
        }
        assert len(by_key) == len(rows), "a (trial, task, repeat) is stored twice"
        return by_key

    def run_count(self) -> int:
        try:
            ((count,),) = self._read("SELECT count(*) FROM sweeper_runs")
        except sa.exc.SQLAlchemyError:  # no tables yet
            return 0
        return count

    def objectives(self) -> dict[int, float]:
        return dict(
            self._read(
                "SELECT t.number, t.objective FROM sweeper_trials t JOIN sweeper_sweeps s "
                "ON s.id = t.sweep_id WHERE s.name = :name"
            )
        )

    def study_states(self) -> list[str]:
        """The state of every trial of the sweep's Optuna study, sorted."""
        return sorted(
            state
            for (state,) in self._read(
                "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
            )
        )

    def study_params(self, param: str) -> list[float]:
        """The values of one parameter over the study's trials, sorted."""
        return sorted(
            value
            for (value,) in self._read(
                "SELECT p.param_value FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id "
                "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND p.param_name = :param",
                param=param,
            )
        )

    def study_configs(self) -> list[tuple]:
        """Each trial of the study as its sorted (parameter, value) pairs, sorted."""
        trials: dict[int, list] = {}
        for number, param, value in self._read(
            "SELECT t.number, p.param_name, p.param_value FROM trial_params p JOIN trials t ON t.trial_id = "
            "p.trial_id JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name"
        ):
            trials.setdefault(number, []).append((param, value))
        return sorted(tuple(sorted(pairs)) for pairs in trials.values())

    def status(self) -> str:
        ((status,),) = self._read("SELECT status FROM sweeper_sweeps WHERE name = :name")
        return status

    def lease(self) -> tuple:
        """(token, host, pid) of the sweep's lease; all None when no run holds it."""
        ((token, host, pid),) = self._read(
            "SELECT lease_token, lease_host, lease_pid FROM sweeper_sweeps WHERE name = :name"
        )
        return token, host, pid

    def exists(self) -> bool:
        try:
            return bool(self._read("SELECT 1 FROM sweeper_sweeps WHERE name = :name"))
        except sa.exc.SQLAlchemyError:  # no tables yet
            return False


@pytest.fixture
def stored():
    """``stored(url, name)``: what the database at ``url`` holds of sweep ``name``."""
    return Stored


class ForkServer:
    """`_forkserver.py` as a process of this session: ``start(args, cwd, stdout, stderr)`` forks a `sweeper run`
    from it and returns its pid; ``wait(pid)`` its exit code, as the server reports it."""

    def __init__(self):
        self.server = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_forkserver.py"))],
            env=ONE_THREAD,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.codes: dict[int, int] = {}
        self.pids: queue.Queue = queue.Queue()
        self.ended = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.server.stdout:
            message = json.loads(line)
            if "pid" in message:
                self.pids.put(message["pid"])
            else:
                with self.ended:
                    self.codes[message["exit"]] = message["code"]
                    self.ended.notify_all()

    def start(self, args: list[str], cwd: Path, stdout: Path, stderr: Path) -> int:
        request = {"args": args, "cwd": str(cwd), "stdout": str(stdout), "stderr": str(stderr)}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return self.pids.get(timeout=60)

    def wait(self, pid: int, timeout: float | None) -> int | None:
        """The exit code of ``pid``; None if it is still running after ``timeout`` seconds (0: do not wait)."""
        with self.ended:
            self.ended.wait_for(lambda: pid in self.codes, timeout=timeout)
            return self.codes.get(pid)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@pytest.fixture(scope="session")
def fork_server():
    server = ForkServer()
    yield server
    server.close()


class Process:
    """The part of `subprocess.Popen` the tests use, for a process the fork server started."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid, self.returncode = server, pid, None

    def poll(self) -> int | None:
        self.returncode = self.server.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = self.server.wait(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"sweeper run (pid {self.pid})", timeout)
        return self.returncode


class Launched:
    """A `sweeper run` started as a process of its own (forked from the fork server: ``python -m sweeper.cli``
    without paying its imports again), its stderr in a file."""

    def __init__(self, server: ForkServer, args: list[str], folder: Path, tag: str):
        self.stderr_path = folder / f"{tag}.stderr"
        self.process = Process(server, server.start(args, folder, folder / f"{tag}.stdout", self.stderr_path))

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def wait(self, timeout: float = 300) -> int:
        return self.process.wait(timeout=timeout)


@pytest.fixture
def launch(tmp_path, fork_server):
    """``launch(*args)``: ``sweeper run ARGS...`` as a process of its own; killed if the test leaves it running."""
    started: list[Launched] = []

    def start(*args) -> Launched:
        launched = Launched(fork_server, [str(a) for a in args], tmp_path, f"run{len(started)}")
        started.append(launched)
        return launched

    yield start
    for launched in started:
        launched.kill()
        launched.wait()
