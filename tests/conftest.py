"""Fixtures every test directory shares: one torch thread, the CLI in-process, `sweeper run` as a process of its
own (``launch``), fresh PostgreSQL databases; and which tests run one after another when pytest-xdist spreads
the others over its workers (`make test`)."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.store import create_reader

#: The local PostgreSQL server (trust auth); tests create their own databases on it.
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


#: Test modules that run in one pytest-xdist worker, one after another (``--dist loadgroup``), by what they share
#: with each other: a Ray on this machine (each module starts one, and the compose stack its head on free ports).
SERIAL = {
    "ray": ("tests/ray/", "tests/compose/test_compose_topology.py", "tests/cli/test_user_model.py"),
}


def pytest_collection_modifyitems(config, items):
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        for group, prefixes in SERIAL.items():
            if where.startswith(prefixes):
                item.add_marker(pytest.mark.xdist_group(group))


class _HostLock:
    """An exclusive lock that every test process of this host shares (``flock`` on one file), re-entrant within
    a process: ``with lock:`` waits while another process holds it."""

    def __init__(self, name: str):
        self.path = Path(tempfile.gettempdir()) / f"sweeper-tests-{name}.lock"
        self.depth, self.file = 0, None

    def __enter__(self):
        if self.depth == 0:
            self.file = open(self.path, "a")  # noqa: SIM115
            fcntl.flock(self.file, fcntl.LOCK_EX)
        self.depth += 1
        return self

    def __exit__(self, *exc):
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


#: The PostgreSQL role `sweeper query` runs as is one for the whole server: the tests that change it (give it
#: powers, run the compose init script) hold this lock while they do, and every ``pg_database`` resets the role
#: under it, so no test process resets or uses a role that another is changing.
READER_ROLE = _HostLock("reader-role")


@pytest.fixture(scope="module")
def reader_role_held():
    """Holds :data:`READER_ROLE` for the module: for modules whose tests change the reader role."""
    with READER_ROLE:
        yield


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: the tests run many tiny ops, which a second thread only slows down on a
    machine whose few cores are shared (and every process then computes the same way)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def sweeper_cli():
    """``sweeper_cli(*args)`` runs the ``sweeper`` command in this process; stdout and stderr come apart."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="module")
def swept_once(request, tmp_path_factory, sweeper_cli):
    """``swept_once(space_yaml, backend)``: the URL of a database (``sqlite`` or ``postgresql``) holding the
    finished sweep of ``space_yaml``, run once per module whatever number of tests ask for it."""
    done = {}

    def run(space_yaml: str, backend: str) -> str:
        if (space_yaml, backend) not in done:
            folder = tmp_path_factory.mktemp(f"swept-{backend}")
            space = folder / "space.yaml"
            space.write_text(space_yaml)
            url = (
                f"sqlite:///{folder / 'sweeps.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")()
            )
            result = sweeper_cli("run", space, "--db", url)
            assert result.exit_code == 0, result.stderr
            done[space_yaml, backend] = url
        return done[space_yaml, backend]

    return run


@pytest.fixture(scope="module")
def pg_database():
    """``pg_database()``: the URL of a fresh PostgreSQL database; every one is dropped after the module.

    The server gets (or keeps, reset) the role ``sweeper query`` runs SQL as. Skips (with the reason) where
    the server is not reachable.
    """
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL server {PG_SERVER} is not reachable: {str(exc.orig).splitlines()[0]}")
    with READER_ROLE:
        create_reader(f"{PG_SERVER}/postgres")  # the role `sweeper query` runs SQL as (idempotent)
    names = []

    def create() -> str:
        name = f"sweeper_t_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        names.append(name)
        return f"{PG_SERVER}/{name}"

    try:
        yield create
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(scope="module")
def pg_url(pg_database):
    """A PostgreSQL database created for this test module and dropped after it."""
    return pg_database()


@pytest.fixture(scope="session")
def sweeper_dist(tmp_path_factory) -> Path:
    """A folder with the sdist and the wheel (``pip wheel . --no-deps``) of this checkout: what users and
    the Docker images install. Built from a copy, as a build writes build/ and *.egg-info into its
    source tree (and a stale build/ there could leak into the wheel)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one build for all the workers: in the folder above their own
        shared = shared.parent
    root = shared / "dist"
    with open(shared / "dist.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        if not (root / "built").exists():
            shutil.rmtree(root, ignore_errors=True)
            _build_dist(root)
    return root / "out"


def _build_dist(root: Path) -> None:
    source, out = root / "source", root / "out"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "*.pyc",
            ".pytest_cache",
            "*.db",
            "*.db-*",
            "reports",
            "out",
        ),
    )
    for argv in (
        [sys.executable, "-m", "build", "--sdist", "--outdir", out, source],
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, source],
    ):
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stderr[-4000:]}"
    (root / "built").touch()


#: The fork server's environment: one OpenMP thread, this checkout first on the path.
SERVER_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
    ),
}


class ForkServer:
    """`_forkserver.py` as a process of this session (one per pytest-xdist worker): ``start(args, cwd, stdout,
    stderr)`` forks a `sweeper` command from it and returns its pid; ``wait(pid)`` its exit code, as the server
    reports it."""

    def __init__(self):
        self.server = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_forkserver.py"))],
            env=SERVER_ENV,
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

    def start(self, args: list[str], cwd: Path, stdout: Path, stderr: Path, **options) -> int:
        """``options``: ``env`` (the child's environment), ``kill_at_commit`` (see _forkserver.py)."""
        request = {"args": args, "cwd": str(cwd), "stdout": str(stdout), "stderr": str(stderr), **options}
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

    def __init__(self, server: ForkServer, args: list[str], folder: Path, tag: str, **options):
        self.stdout_path, self.stderr_path = folder / f"{tag}.stdout", folder / f"{tag}.stderr"
        self.process = Process(server, server.start(args, folder, self.stdout_path, self.stderr_path, **options))

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

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
    """``launch(*args)``: ``sweeper ARGS...`` as a process of its own, in ``tmp_path``; killed if the test leaves it
    running. ``launch(*args, env={...})``: with that environment; ``launch(*args, kill_at_commit=N)``: one that
    SIGKILLs itself as it is about to commit its N-th transaction."""
    started: list[Launched] = []

    def start(*args, cwd: Path | None = None, **options) -> Launched:
        launched = Launched(fork_server, [str(a) for a in args], cwd or tmp_path, f"run{len(started)}", **options)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        launched.kill()
        launched.wait()
