"""docker/compose.yaml's services run as local processes: the stack works the way the file says.

There is no Docker engine here, so each service's own command and environment (read from the file,
``${VAR}`` filled from .env.example) run as processes on this machine, with sweeper installed as the
images install it: from its wheel, not editable (pip's ``--target`` folder first on PYTHONPATH, over
this environment's dependencies), so a file the package lacks fails here as it would in a container:

- ``postgres``: the PostgreSQL server on 127.0.0.1:5432 stands in, with a database made for this test;
- ``ray-head``: its command, until its own healthcheck command passes;
- ``ray-worker``: its command, started again when it exits before it joined (its restart policy);
- ``sweeper``: its entrypoint with the ``run ... --executor ray`` command of docs/cluster.md (plus
  ``--repeats 2 --epochs 20``), then ``report SWEEP --format json`` (``trials`` while the report command
  is not in the package yet);
- ``dashboard``: its command; its API must list the sweep's study;
- ``ray-worker-gpu`` is not run (no GPU here): test_compose_static checks it.

What is rewritten to run them here, and nothing else:

- host names of services (``postgres``, ``ray-head``, ``localhost``) -> 127.0.0.1; binds to 0.0.0.0
  (meant for inside a container) -> 127.0.0.1, as this machine is shared;
- the ports of Ray and of the dashboard (6379, 8265, 8080) -> free ports, the same everywhere they occur;
- in the database URL, user and password -> ``postgres`` (the local server trusts it) and the database
  name -> this test's database; host and port 5432 stay;
- the entrypoint ``sweeper-entrypoint`` -> docker/sweeper-entrypoint.sh, which the Dockerfile installs
  under that name;
- ``ray start --head`` gets ``--temp-dir`` of its own (every node of the cluster uses it), so that
  exactly the processes this test started can be found and stopped: by their ids, never ``ray stop``;
- the working directory holds the service's bind mounts as symlinks (writable ones to temp folders);
- the RAY_AUTH_TOKEN is a fresh random one;
- the kernel cache (SWEEPER_CACHE, prebuilt in the images) is a fresh folder: the worker compiles the
  kernels from the installed sources, which this test checks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
ENTRYPOINTS = {"sweeper-entrypoint": DOCKER / "sweeper-entrypoint.sh"}
QUICK = ["--repeats", "2", "--epochs", "20"]
SWEEP = "seed-case-study"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rewrite:
    """The rewrites of the module docstring, applied to one string of the compose file."""

    def __init__(self, database: str):
        self.database = database
        self.ports: dict[int, int] = {}

    def port(self, port: int) -> int:
        return self.ports.setdefault(port, _free_port())

    def __call__(self, text: str) -> str:
        text = re.sub(
            r"(postgresql\+psycopg://)[^@/\s]*@postgres:5432/\w+",
            rf"\g<1>postgres@127.0.0.1:5432/{self.database}",
            text,
        )
        text = re.sub(r"\b(?:ray-head|localhost):(\d+)\b", lambda m: f"127.0.0.1:{self.port(int(m[1]))}", text)
        text = re.sub(r"(--[a-z-]*port)=(\d+)\b", lambda m: f"{m[1]}={self.port(int(m[2]))}", text)
        return text.replace("0.0.0.0", "127.0.0.1")


class Processes:
    """The processes this test starts, each in a session of its own, so each can be stopped by its id."""

    def __init__(self, logs: Path, ray_temp: Path):
        self.logs, self.ray_temp = logs, ray_temp
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict, cwd: Path) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:  # a restarted service's log goes on
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((name, proc))
        return proc

    def log(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def run(self, name: str, argv: list[str], env: dict, cwd: Path, timeout: float) -> tuple[int, str, str]:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.started.append((name, proc))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{name} ran past {timeout} s:\n{err[-3000:]}") from None
        return proc.returncode, out, err

    def stop_all(self) -> None:
        # Last started first: the workers leave before the head. `ray start --block` stops its node on SIGTERM.
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=20)
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
        # Anything of this test's Ray still running (its processes name the private temp dir).
        for pid in _pids_naming(str(self.ray_temp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pids_naming(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _argv(service: dict) -> list[str]:
    def words(value):
        return shlex.split(value) if isinstance(value, str) else list(value or [])

    argv = words(service.get("entrypoint")) + words(service.get("command"))
    return [str(ENTRYPOINTS.get(argv[0], argv[0])), *argv[1:]]


def _readme_run_command() -> list[str]:
    text = (REPO / "docs" / "cluster.md").read_text()  # its "Run on a cluster" section
    line = re.search(r"docker compose -f docker/compose\.yaml run --rm sweeper (run .*--executor ray.*)", text)[1]
    return shlex.split(line)


@pytest.fixture
def database(pg_database):
    """The name of a fresh PostgreSQL database on the local server (dropped after the module)."""
    return pg_database().rsplit("/", 1)[1]


def _install(wheel: Path, target: Path) -> dict[str, str]:
    """``wheel`` installed (without its dependencies) into ``target``: what to add to a process's
    environment so that its ``sweeper`` command and ``import sweeper`` are the installed ones."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return {"PYTHONPATH": str(target), "PATH": f"{target / 'bin'}{os.pathsep}{Path(sys.executable).parent}"}


@pytest.mark.slow
@pytest.mark.postgres
def test_the_compose_stack_sweeps_into_postgresql_and_reports_from_it(
    compose, env_example, syntax, database, sweeper_dist, tmp_path
):
    values = {**env_example, "RAY_AUTH_TOKEN": secrets.token_hex(24)}
    services = syntax.interpolate(compose["services"], values)
    rewrite = Rewrite(database)
    ray_temp = Path(tempfile.mkdtemp(prefix="sweeper-compose-", dir="/tmp"))  # short: Ray's socket paths
    (tmp_path / "logs").mkdir()
    procs = Processes(tmp_path / "logs", ray_temp)
    # Only the service's environment, plus what any process needs: the installed sweeper and this
    # environment's programs (ray, optuna-dashboard) on PATH, and a kernel cache of its own.
    (wheel,) = sweeper_dist.glob("sweeper-*.whl")
    installed = _install(wheel, tmp_path / "site")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SWEEPER_", "PG"))}
    base.update(
        PYTHONPATH=installed["PYTHONPATH"],
        PATH=f"{installed['PATH']}{os.pathsep}{base.get('PATH', '')}",
        SWEEPER_CACHE=str(tmp_path / "kernels"),
    )
    where = subprocess.run(
        [sys.executable, "-c", "import sweeper; print(sweeper.__file__)"],
        env=base,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(tmp_path / "site"), where

    def env(name: str) -> dict:
        return {**base, **{k: rewrite(v) for k, v in syntax.service_environment(services[name]).items()}}

    def argv(name: str) -> list[str]:
        return [rewrite(a) for a in _argv(services[name])]

    def workdir(name: str) -> Path:
        service, root = services[name], tmp_path / name
        root.mkdir()
        inside = service.get("working_dir", "/")
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            if not source.startswith((".", "/")) or not target.startswith(inside.rstrip("/") + "/"):
                continue  # a named volume, or a mount the working directory does not see
            link = root / Path(target).relative_to(inside)
            link.parent.mkdir(parents=True, exist_ok=True)
            if mode == ["ro"]:
                link.symlink_to((DOCKER / source).resolve())
            else:
                link.mkdir()
        return root

    try:
        procs.start("ray-head", argv("ray-head") + [f"--temp-dir={ray_temp}"], env("ray-head"), tmp_path)
        health = [rewrite(a) for a in services["ray-head"]["healthcheck"]["test"][1:]]
        deadline = time.monotonic() + 90
        while subprocess.run(health, env=env("ray-head"), capture_output=True).returncode != 0:
            assert procs.started[0][1].poll() is None, f"ray-head exited:\n{procs.log('ray-head')}"
            assert time.monotonic() < deadline, f"ray-head never healthy:\n{procs.log('ray-head')}"
            time.sleep(1)
        # `up -d` returns with the worker started; `run` comes after it (docs/cluster.md). Ray gives a node 30 s
        # to register with the head, which a busy machine can miss: `ray start` then exits, and the service's
        # restart policy starts it again, as Docker would.
        assert services["ray-worker"]["restart"] in ("always", "unless-stopped", "on-failure")
        deadline, worker = time.monotonic() + 180, None
        while worker is None or "Ray runtime started" not in procs.log("ray-worker", lines=10_000):
            assert time.monotonic() < deadline, f"ray-worker never joined:\n{procs.log('ray-worker')}"
            if worker is None or worker.poll() is not None:
                worker = procs.start("ray-worker", argv("ray-worker"), env("ray-worker"), tmp_path)
            time.sleep(0.5)

        cli_dir = workdir("sweeper")
        run = argv("sweeper")[:1] + _readme_run_command() + QUICK
        code, out, err = procs.run("sweeper run", run, env("sweeper"), cli_dir, timeout=240)
        assert code == 0, f"{shlex.join(run)} failed ({code}):\n{err[-4000:]}\nray-worker:\n{procs.log('ray-worker')}"
        assert "(ray)" in err and "8 runs trained" in err, err

        engine = sa.create_engine(f"{PG_SERVER}/{database}")
        try:
            with engine.connect() as connection:
                runs = connection.exec_driver_sql("select count(*), count(distinct device) from sweeper_runs").one()
                status = connection.exec_driver_sql("select status from sweeper_sweeps").scalars().all()
        finally:
            engine.dispose()
        assert tuple(runs) == (8, 1) and status == ["completed"]
        # The worker trained with the C kernels, compiled from the installed package's sources.
        assert [p.name for p in (tmp_path / "kernels").glob("sweeper-*.so")], procs.log("ray-worker")

        dashboard = procs.start("dashboard", argv("dashboard"), env("dashboard"), tmp_path)
        if importlib.util.find_spec("sweeper.report.command") is not None:
            listing = [argv("sweeper")[0], "report", SWEEP, "--format", "json"]
        else:  # the report command is not in the package yet: the trials listing reads the same store
            listing = [argv("sweeper")[0], "trials", SWEEP, "--format", "json"]
        code, out, err = procs.run("sweeper listing", listing, env("sweeper"), cli_dir, timeout=120)
        assert code == 0, err[-3000:]
        answer = json.loads(out)
        assert "pre_activation" in out
        if listing[1] == "trials":
            assert [t["n_runs"] for t in answer] == [2, 2, 2, 2]

        url = f"http://127.0.0.1:{rewrite.port(8080)}/api/studies"
        deadline, studies = time.monotonic() + 60, None
        while studies is None:
            assert dashboard.poll() is None, f"dashboard exited:\n{procs.log('dashboard')}"
            assert time.monotonic() < deadline, f"dashboard never answered:\n{procs.log('dashboard')}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == [SWEEP]
    finally:
        procs.stop_all()
        leftovers = _pids_naming(str(ray_temp))
        subprocess.run(["rm", "-rf", str(ray_temp)], check=False)
    assert not leftovers, f"processes of this test's Ray left running: {leftovers}"
