"""The sweeper image's entrypoint hands `docker stop`'s SIGTERM to sweeper: as PID 1 of the container a shell
gets it, and a shell that waited on a foreground sweeper would leave it training until Docker's SIGKILL.
It joins the cluster before sweeper starts, and tries again when Ray's node start times out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ENTRYPOINT = Path(__file__).parents[2] / "docker" / "sweeper-entrypoint.sh"

# Stand-ins on PATH: `ray start --block` says it started, then waits; `sweeper` trains until a signal,
# which it writes down.
FAKE_RAY = "#!/bin/sh\necho 'Ray runtime started.'\nexec sleep 600\n"
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


# `ray start` as Ray's own timeout leaves it on a busy head, for the first FAILS tries (counted in a file).
FLAKY_RAY = """#!/bin/sh
n=$(cat tries 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > tries
if [ "$n" -le {fails} ]; then
  echo "Exception: The current node timed out during startup."
  exit 1
fi
echo 'Ray runtime started.'
exec sleep 600
"""
QUICK_SWEEPER = "#!/bin/sh\ntouch started\necho trained\n"


def _entrypoint(tmp_path, ray: str, sweeper: str, **popen) -> subprocess.Popen:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ray", ray), ("sweeper", sweeper)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_ADDRESS": "head:6379", "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        ["sh", str(ENTRYPOINT), "run", "space.yaml", "--executor", "ray"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        **popen,
    )


def test_a_node_start_that_times_out_is_tried_again_before_sweeper_starts(tmp_path):
    shell = _entrypoint(
        tmp_path, FLAKY_RAY.format(fails=2), QUICK_SWEEPER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = shell.communicate(timeout=60)
    assert shell.returncode == 0, err
    assert out == "trained\n"
    assert (tmp_path / "tries").read_text() == "3\n"
    assert err.count("trying again") == 2 and "try 2 of 3" in err
    assert not list(tmp_path.glob("sweeper-ray-node.*.log"))


def test_a_node_that_never_joins_fails_in_one_line_with_rays_words_and_sweeper_never_starts(tmp_path):
    shell = _entrypoint(
        tmp_path, FLAKY_RAY.format(fails=9), QUICK_SWEEPER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = shell.communicate(timeout=60)
    assert shell.returncode == 1
    assert out == "" and not (tmp_path / "started").exists()
    assert (tmp_path / "tries").read_text() == "3\n"
    assert "could not join the Ray cluster at head:6379 (3 tries)" in err
    assert err.rstrip().endswith("timed out during startup.")
    assert not list(tmp_path.glob("sweeper-ray-node.*.log"))


def test_sigterm_to_the_entrypoint_reaches_a_ray_driver_and_its_status_comes_back(tmp_path):
    shell = _entrypoint(tmp_path, FAKE_RAY, FAKE_SWEEPER)
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
