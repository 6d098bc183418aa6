"""Without a working C compiler sweeper still trains, on torch code, and says so in one plain line.

Each case runs the CLI in a process of its own (forked from a server that imported sweeper but loaded no
kernel) with an empty kernel cache, so the library is really built (or not) there, as on a user's first run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sweeper import _native

REPO = Path(__file__).resolve().parents[2]
SEARCH_SPACE = REPO / "search_spaces" / "seed_case_study.yaml"
QUICK = ["--repeats", "2", "--epochs", "40"]
#: A small bench: its first step asks for the kernels (whether the fused engine can run).
BENCH = ["bench", "--epochs", "2", "--members", "2", "--reference-runs", "1", "--no-stacked", "--format", "json"]


@pytest.fixture
def sweeper(launch):
    """``sweeper(*args, cc=, cache=, cwd=)``: the CLI in a process of its own (forked from the fork server, which
    has loaded no kernel) with ``CC`` and ``SWEEPER_CACHE`` set so; its exit code, stdout and stderr."""

    def run(*args, cc: str | None, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("CC", "SWEEPER_CACHE")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        env["SWEEPER_CACHE"] = str(cache)
        if cc is not None:
            env["CC"] = cc
        done = launch(*args, cwd=cwd, env=env)
        code = done.wait(timeout=600)
        return subprocess.CompletedProcess(args, code, done.stdout, done.stderr)

    return run


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sweeper: ")]


def stored_runs(sweeper, db: str, cwd: Path, cache: Path) -> dict:
    done = sweeper("runs", "seed-case-study", "--db", db, "--format", "json", cc=None, cache=cache, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {(r["trial"], r["repeat"]): r for r in json.loads(done.stdout)}


@pytest.mark.slow
def test_a_sweep_without_a_compiler_runs_on_torch_code_says_so_once_and_stores_the_same_numbers(tmp_path, sweeper):
    torch_db, kernels_db = f"sqlite:///{tmp_path / 'torch.db'}", f"sqlite:///{tmp_path / 'kernels.db'}"
    done = sweeper(
        "run", SEARCH_SPACE, *QUICK, "--db", torch_db, cc="/nonexistent/cc", cache=tmp_path / "none", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert notices(done.stderr) == [
        f"sweeper: cannot build the C kernels: CC=/nonexistent/cc is not an installed program; {_native.SLOWER}; "
        "install a C compiler (apt-get install build-essential) or set CC=/path/to/gcc."
    ]
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr
    assert "8 runs trained" in done.stderr
    assert not (tmp_path / "none").exists()

    done = sweeper("run", SEARCH_SPACE, *QUICK, "--db", kernels_db, cc=None, cache=tmp_path / "kernels", cwd=tmp_path)
    assert done.returncode == 0 and notices(done.stderr) == [], done.stderr
    assert list((tmp_path / "kernels").glob("sweeper-*.so"))
    # The same training either way (torch runs the stacked program, the kernels the fused engine): equal
    # up to float rounding, which over 40 epochs stays far below what noise or a repeat changes.
    slow, fast = (
        stored_runs(sweeper, torch_db, tmp_path, tmp_path / "kernels"),
        stored_runs(sweeper, kernels_db, tmp_path, tmp_path / "kernels"),
    )
    assert slow.keys() == fast.keys() and len(slow) == 8
    for key in slow:
        for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            np.testing.assert_allclose(
                slow[key][metric], fast[key][metric], rtol=1e-4, atol=1e-5, err_msg=f"{key} {metric}"
            )
    assert len({round(r["train_loss"], 4) for r in fast.values()}) > 2  # and the runs really differ


@pytest.mark.slow
def test_a_failing_compiler_shows_its_own_error_with_debug_only(tmp_path, sweeper):
    fake = tmp_path / "fake-cc"
    fake.write_text("#!/bin/sh\necho 'fake-cc: error: this compiler always fails' >&2\nexit 1\n")
    fake.chmod(0o755)
    plain = sweeper(*BENCH, cc=str(fake), cache=tmp_path / "cache", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["engine"] == "stacked"
    assert notices(plain.stderr) == [
        f"sweeper: cannot build the C kernels: the C compiler failed (fake-cc exited with 1); {_native.SLOWER}; "
        "set CC to a C compiler with OpenMP support, e.g. CC=gcc (--debug shows why)."
    ]
    assert "always fails" not in plain.stderr

    debug = sweeper("--debug", *BENCH, cc=str(fake), cache=tmp_path / "cache", cwd=tmp_path)
    assert debug.returncode == 0, debug.stderr
    assert notices(debug.stderr) == [notices(plain.stderr)[0].replace(" (--debug shows why).", ".")]
    lines = debug.stderr.splitlines()
    command = lines[lines.index(notices(debug.stderr)[0]) + 1]
    assert command.startswith(f"$ {fake} -O3 ") and command.endswith(".o") and "philox.c" in command
    assert "fake-cc: error: this compiler always fails" in lines
