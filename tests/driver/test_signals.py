"""`sweeper run` stopped the way schedulers and terminals stop it, measured on real processes and real signals.

The sweep has a quick pack (stored within seconds) and a long one (hours): each test signals the process
while the long pack trains. SIGTERM (Docker, Kubernetes, Slurm, systemd) and SIGHUP (a closed terminal)
end it within Docker's 10 s grace, with `interrupted` recorded, the lease released and the quick pack
kept; a lost lease stops it although SIGINT is ignored (``nohup``, ``cmd &``), and that SIGINT stays
ignored. Every process is started with the signal dispositions its test relies on, whatever started the
suite.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import LONG_SWEEP, execute

QUICK_RUNS = 2  # the circles pack: 2 repeats of the baseline
#: Docker's grace between SIGTERM and SIGKILL (Kubernetes and Slurm give 30 s).
GRACE_S = 10.0


def as_in_a_shell() -> None:
    """For ``preexec_fn``: the dispositions a terminal's shell gives a command, whatever started the suite
    (``nohup``, ``make test &``: SIGINT or SIGHUP ignored, which exec keeps)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Sweep:
    """A `sweeper run` of the long sweep (a process of its own, in a session of its own) and its database."""

    def __init__(self, process, url: str, stderr_path: Path):
        self.process, self.url, self.stderr_path = process, url, stderr_path

    @classmethod
    def start(cls, folder: Path, url: str, *options: str, terminal: int | None = None) -> Sweep:
        """Started here, output in files, or on a ``terminal`` (a pty's end) that is then its controlling
        terminal, as in a terminal window."""
        folder.joinpath("long.yaml").write_text(LONG_SWEEP)

        def in_a_terminal() -> None:
            as_in_a_shell()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after start_new_session's setsid

        with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "sweeper.cli", "run", "long.yaml", "--db", url, *options],
                cwd=folder,
                env={**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm"},
                stdin=subprocess.DEVNULL if terminal is None else terminal,
                stdout=out if terminal is None else terminal,
                stderr=err if terminal is None else terminal,
                start_new_session=True,
                preexec_fn=as_in_a_shell if terminal is None else in_a_terminal,
            )
        return cls(process, url, folder / "stderr")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def read(self, sql: str) -> list[tuple]:
        return execute(self.url, sql)

    def wait_for_the_long_pack(self, timeout: float = 240) -> None:
        """Until the quick pack is stored and the long one trains (the process still running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the sweep ended early:\n{self.stderr}"
            try:
                ((count,),) = self.read("SELECT count(*) FROM sweeper_runs")
            except sa.exc.SQLAlchemyError:  # no tables yet
                count = 0
            if count >= QUICK_RUNS:
                time.sleep(1.0)  # the long pack is under way
                return
            time.sleep(0.1)
        pytest.fail(f"the quick pack was not stored within {timeout} s:\n{self.stderr}")

    def signal_and_time(self, signum: int, timeout: float = 60) -> tuple[int, float]:
        """Sends ``signum``; the exit status and the seconds from the signal to the exit."""
        sent = time.monotonic()
        os.kill(self.process.pid, signum)
        status = self.process.wait(timeout=timeout)
        return status, time.monotonic() - sent

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # with a local Ray's processes
        self.process.wait()

    def assert_stopped_with_nothing_lost(self) -> None:
        """Status interrupted, lease released, the quick pack stored and no run of the long one."""
        assert self.read("SELECT status, lease_token, lease_host, lease_pid FROM sweeper_sweeps") == [
            ("interrupted", None, None, None)
        ]
        assert self.read("SELECT task, count(*) FROM sweeper_runs GROUP BY task") == [("circles", QUICK_RUNS)]
        assert self.read("SELECT state FROM trials") == [("RUNNING",)]  # resumed, not failed, by the next run


@pytest.fixture
def sweep(tmp_path):
    """``sweep(url, *options)``: the long sweep started; killed if the test leaves it running."""
    started: list[Sweep] = []

    def start(url: str, *options: str) -> Sweep:
        folder = tmp_path / f"sweep{len(started)}"
        folder.mkdir()
        started.append(Sweep.start(folder, url, *options))
        return started[-1]

    yield start
    for s in started:
        s.kill()


def _sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'long.db'}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "ray",
    ],
)
def test_sigterm_during_a_long_pack_exits_143_within_10_s_with_nothing_lost(backend, sweep, tmp_path, request):
    if backend == "ray":
        pytest.importorskip("ray")
    url = request.getfixturevalue("pg_database")() if backend == "postgresql" else _sqlite(tmp_path)
    options = ("--executor", "ray") if backend == "ray" else ()
    running = sweep(url, *options)
    running.wait_for_the_long_pack()

    status, seconds = running.signal_and_time(signal.SIGTERM)

    assert status == 143, running.stderr
    assert seconds < GRACE_S, f"{seconds:.1f} s from SIGTERM to exit"
    assert running.stderr.rstrip("\n").splitlines()[-1] == (
        "terminated (SIGTERM): finished packs are stored; run the same command to resume"
    )
    assert "Traceback" not in running.stderr
    running.assert_stopped_with_nothing_lost()


@pytest.mark.slow
def test_sighup_ends_a_sweep_as_sigterm_does_and_exits_129(sweep, tmp_path):
    running = sweep(_sqlite(tmp_path))
    running.wait_for_the_long_pack()

    status, seconds = running.signal_and_time(signal.SIGHUP)

    assert status == 129, running.stderr
    assert seconds < GRACE_S, f"{seconds:.1f} s from SIGHUP to exit"
    assert running.stderr.rstrip("\n").splitlines()[-1] == (
        "terminated (SIGHUP): finished packs are stored; run the same command to resume"
    )
    running.assert_stopped_with_nothing_lost()


@pytest.mark.slow
def test_a_closed_terminal_ends_a_sweep_with_its_live_bar_as_sighup_does(tmp_path):
    """`sweeper run` in a terminal (its live bar drawn there) whose window is closed: the kernel sends SIGHUP,
    and the terminal is gone for the last lines; the sweep is recorded and its lease released all the same."""
    controller, terminal = pty.openpty()
    running = Sweep.start(tmp_path, _sqlite(tmp_path), terminal=terminal)
    os.close(terminal)
    shown = bytearray()

    def drain() -> None:  # read what the terminal shows, so that the bar never blocks on a full terminal
        if select.select([controller], [], [], 0.1)[0]:
            shown.extend(os.read(controller, 65536))

    try:
        deadline = time.monotonic() + 240
        while b"sweep 'long' ->" not in shown:  # the sweep started: its tables exist
            assert time.monotonic() < deadline and running.process.poll() is None, shown.decode(errors="replace")
            drain()
        while running.read("SELECT count(*) FROM sweeper_runs") != [(QUICK_RUNS,)]:
            assert time.monotonic() < deadline and running.process.poll() is None, shown.decode(errors="replace")
            drain()
        for _ in range(10):  # the long pack is under way
            drain()

        closed = time.monotonic()
        os.close(controller)  # the window is closed
        status = running.process.wait(timeout=60)
        seconds = time.monotonic() - closed
    finally:
        running.kill()

    assert b"runs/s" in shown and "━".encode() in shown  # the live bar (not progress lines) drew on the terminal
    assert status == 129
    assert seconds < GRACE_S, f"{seconds:.1f} s from the closed terminal to exit"
    running.assert_stopped_with_nothing_lost()


@pytest.mark.slow
def test_with_sigint_ignored_ctrl_c_is_ignored_and_a_lost_lease_still_stops_training_at_once(launch, tmp_path):
    """As started by ``nohup sweeper run ... &``: SIGINT ignored. Another run takes the sweep over while the
    long pack trains: the heartbeat (every 5 s) finds it, and training stops at the engine's next chunk.
    (Forked from the tests' fork server, which starts its children with the dispositions asked for.)"""
    url = _sqlite(tmp_path)
    tmp_path.joinpath("long.yaml").write_text(LONG_SWEEP)
    launched = launch("run", "long.yaml", "--db", url, sigint="ignore")
    running = Sweep(launched.process, url, launched.stderr_path)
    running.wait_for_the_long_pack()

    os.kill(running.process.pid, signal.SIGINT)
    time.sleep(1.0)
    assert running.process.poll() is None, "an ignored SIGINT stopped the sweep"
    execute(
        running.url, "UPDATE sweeper_sweeps SET lease_token = 'elsewhere', lease_host = 'elsewhere', lease_pid = 4242"
    )
    taken = time.monotonic()
    status = running.process.wait(timeout=60)
    seconds = time.monotonic() - taken

    assert status == 2, running.stderr
    assert seconds < 5 + GRACE_S, f"{seconds:.1f} s from the takeover to exit"  # a heartbeat, then a chunk
    assert running.stderr.rstrip("\n").splitlines()[-1] == (
        "error: sweep 'long': stopped, its lease is lost (another run took it over), so another run may take it "
        "over; finished packs are stored; run the same command to resume"
    )
    # Nothing more written: the quick pack stays, the sweep is the other run's.
    assert running.read("SELECT task, count(*) FROM sweeper_runs GROUP BY task") == [("circles", QUICK_RUNS)]
    assert running.read("SELECT status, lease_token FROM sweeper_sweeps") == [("running", "elsewhere")]
