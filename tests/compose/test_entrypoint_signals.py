"""The sweeper image's entrypoint hands `docker stop`'s SIGTERM to sweeper: as PID 1 of the container a shell
gets it, and a shell that waited on a foreground sweeper would leave it training until Docker's SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ENTRYPOINT = Path(__file__).parents[2] / "docker" / "sweeper-entrypoint.sh"

# Stand-ins on PATH: `ray start --block` waits; `sweeper` trains until a signal, which it writes down.
FAKE_RAY = "#!/bin/sh\nexec sleep 600\n"
FAKE_SWEEPER = f"""#!{sys.executable}
import pathlib, signal, sys, time
def stop(signum, frame):
    pathlib.Path("got").write_text(signal.Signals(signum).name)
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
pathlib.Path("started").write_text("")
time.sleep(600)
"""


def test_sigterm_to_the_entrypoint_reaches_a_ray_driver_and_its_status_comes_back(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ray", FAKE_RAY), ("sweeper", FAKE_SWEEPER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_ADDRESS": "head:6379", "TMPDIR": str(tmp_path)}
    shell = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "run", "space.yaml", "--executor", "ray"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and shell.poll() is None, "sweeper did not start"
            time.sleep(0.05)

        shell.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
        status = shell.wait(timeout=10)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()

    assert (tmp_path / "got").read_text() == "SIGTERM"
    assert status == 143
