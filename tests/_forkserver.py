"""A fork server for `sweeper` commands: it imports sweeper (torch, Optuna, SQLAlchemy) once, then forks one
child per request, which runs the CLI as ``python -m sweeper.cli ARGS`` would, in a session of its own.

The children are real processes that the tests kill with real signals; what the fork saves is the few seconds
of imports each fresh interpreter spends before its first write. Protocol, one JSON object a line: the test
sends ``{"args", "cwd", "stdout", "stderr"}`` on stdin, optionally with ``env`` (the child's environment
instead of the server's), ``sigint`` (``"ignore"``: started with SIGINT ignored) and ``kill_at_commit`` (N:
the child SIGKILLs itself as it is about to commit its N-th transaction), and reads ``{"pid"}`` back; when a
child ends the server writes ``{"exit": pid, "code": code}`` (``code`` as ``Popen.returncode``: minus the
signal's number when a signal ended it). The server itself never trains, opens a database or starts a Python
thread, so a fork copies nothing a child could trip on.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import select
import sys

import sweeper
import sweeper.cli

# What the children no longer import: every module of sweeper (the CLI imports most of them only when a command
# runs), so torch, Optuna, SQLAlchemy, scikit-learn and SciPy too; not Ray's executor, which a local run never
# imports, nor the migrations (scripts that Alembic loads by path), nor a package's __main__ (it runs the command).
for _module in pkgutil.walk_packages(sweeper.__path__, "sweeper."):
    if not any(part in _module.name for part in ("ray", "migrations", "__main__")):
        importlib.import_module(_module.name)


def _serve() -> dict:
    """Answers requests until stdin closes (then exits); returns, in a child only, the request it is to run."""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.005)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                print(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}), flush=True)
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            for pid in children:
                os.waitpid(pid, 0)
            os._exit(0)
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        children.add(pid)
        print(json.dumps({"pid": pid}), flush=True)


def _run(request: dict) -> None:
    """In the child: what ``python -m sweeper.cli ARGS`` does, started in ``cwd`` with its output in files."""
    os.setsid()
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # `python -m` puts the folder it is started in first on the path
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    import random
    import signal

    random.seed()  # the server's state is no child's
    # The dispositions of a command started from an interactive shell, whatever started the suite (``nohup``,
    # ``make test &``: SIGINT ignored, which a fork keeps); ``"sigint": "ignore"`` starts it as ``nohup ... &`` would.
    signal.signal(signal.SIGINT, signal.SIG_IGN if request.get("sigint") == "ignore" else signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if request.get("env") is not None:  # read when used (CC, SWEEPER_CACHE...), so set before the command runs
        os.environ.clear()
        os.environ.update(request["env"])
    if request.get("kill_at_commit"):
        _kill_at_commit(request["kill_at_commit"])
    sys.argv = [sweeper.cli.__file__, *request["args"]]
    sweeper.cli.app()


def _kill_at_commit(n: int) -> None:
    """SIGKILL this process as it is about to commit its ``n``-th transaction (sweeper's or Optuna's, on the
    main thread: not the lease's heartbeat), so that the transaction is lost with the process."""
    import signal
    import threading

    import sqlalchemy as sa

    commits = 0

    def count(connection) -> None:
        nonlocal commits
        if threading.current_thread() is threading.main_thread():
            commits += 1
            if commits == n:
                os.kill(os.getpid(), signal.SIGKILL)

    sa.event.listen(sa.engine.Engine, "commit", count)


if __name__ == "__main__":
    _run(_serve())
