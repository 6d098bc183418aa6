"""What users install trains at full speed: the sdist and the wheel carry the C kernels' sources, and
the wheel, installed into a fresh virtual environment, sweeps and reports with the fused engine from a
folder outside the repository (the tests elsewhere run the editable checkout, which cannot show this).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sweeper import _native

REPO = Path(__file__).resolve().parents[2]
#: The files the engine compiles at run time, as paths inside the package.
KERNEL_FILES = sorted(str(p.relative_to(Path(_native.__file__).parents[1])) for p in _native.SOURCES + _native.HEADERS)
TORCH = "torch==2.13.0"  # as the README and the images install it (a CPU build here)
SEARCH_SPACE = REPO / "search_spaces" / "seed_case_study.yaml"
QUICK = ["--repeats", "2", "--epochs", "50"]


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited with {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def outside_env(**extra) -> dict:
    """The environment of a user's shell: none of this checkout on the path, no sweeper settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SWEEPER_")}
    return {**env, **extra}


def test_the_wheel_carries_the_c_kernel_sources(sweeper_dist):
    (wheel,) = sweeper_dist.glob("sweeper-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in KERNEL_FILES if n not in names] == []
    assert wheel.name.endswith("-py3-none-any.whl")  # one wheel for every platform: compiled where it trains


def test_the_sdist_carries_the_c_kernel_sources_and_builds_a_wheel_that_does(sweeper_dist, tmp_path):
    (sdist,) = sweeper_dist.glob("sweeper-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert [n for n in KERNEL_FILES if n not in names] == []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp_path, sdist])
    (wheel,) = tmp_path.glob("sweeper-*.whl")
    assert [n for n in KERNEL_FILES if n not in zipfile.ZipFile(wheel).namelist()] == []


@pytest.mark.slow
def test_a_wheel_in_a_fresh_virtual_environment_sweeps_and_reports_with_the_fused_engine(sweeper_dist, tmp_path):
    venv, work, cache = tmp_path / "venv", tmp_path / "work", tmp_path / "cache"
    run([sys.executable, "-m", "venv", venv])
    python, sweeper = venv / "bin" / "python", venv / "bin" / "sweeper"
    env = outside_env(SWEEPER_CACHE=str(cache))
    # torch first, as the README says; --no-compile: the bytecode of torch's thousands of modules is pip's
    # longest step, and a run compiles what it imports anyway
    run([python, "-m", "pip", "install", "--quiet", "--no-compile", TORCH], env=env)
    (wheel,) = sweeper_dist.glob("sweeper-*.whl")
    run([python, "-m", "pip", "install", "--quiet", "--no-compile", wheel], env=env)
    work.mkdir()
    shutil.copy(SEARCH_SPACE, work)
    where = run([python, "-c", "import sweeper; print(sweeper.__file__)"], env=env, cwd=work).stdout
    assert Path(where.strip()).is_relative_to(venv)  # the installed package, not this checkout

    db = f"sqlite:///{work / 'sweeps.db'}"
    done = run([sweeper, "run", SEARCH_SPACE.name, *QUICK, "--db", db], env=env, cwd=work, timeout=600)
    assert "cannot build the C kernels" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "8 runs trained" in done.stderr
    # The kernels were compiled from the installed sources into the cache this test chose, for this CPU.
    variant = run([python, "-c", "from sweeper import _native; print(_native.cpu_variant())"], env=env).stdout.strip()
    (compiled,) = cache.glob("sweeper-*.so")
    assert compiled.name.startswith(f"sweeper-{variant}-")
    # The images compile them ahead, for every variant (docker/Dockerfile): under the name a sweep loads.
    ahead = tmp_path / "image-cache"
    listed = run(
        [python, "-m", "sweeper._native", "all"], env={**env, "SWEEPER_CACHE": str(ahead)}, cwd="/"
    ).stdout.splitlines()
    assert f"{variant}: {ahead / compiled.name}" in listed
    assert sorted(Path(line.split(": ", 1)[1]) for line in listed) == sorted(ahead.glob("sweeper-*.so"))

    assert "seed-case-study" in run([sweeper, "report", "seed-case-study", "--db", db], env=env, cwd=work).stdout
    report = json.loads(
        run([sweeper, "report", "seed-case-study", "--db", db, "--format", "json"], env=env, cwd=work).stdout
    )
    assert sorted((c["trial"], c["label"], c["n"]) for c in report["configs"]) == [
        (0, "none", 2),
        (1, "input gaussian σ=0.01", 2),
        (2, "pre_activation gaussian σ=0.1", 2),
        (3, "post_activation gaussian σ=0.1", 2),
    ]
    rows = json.loads(
        run([sweeper, "runs", "seed-case-study", "--db", db, "--format", "json"], env=env, cwd=work).stdout
    )
    assert len(rows) == 8 and all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    if "engine" in rows[0]:  # recorded once the store keeps what ran
        assert {r["engine"] for r in rows} == {"fused"}
