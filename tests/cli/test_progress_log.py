"""`sweeper run` into a log file (``nohup sweeper run ... > sweep.log``) writes its progress as it goes:
plain lines at a steady pace and at each tenth of the runs, or one JSON object a line; ``tail -f`` sees
them while the sweep runs, not at its end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from helpers import LONG_SWEEP

# 3 configurations x 4 repeats in packs of 4, each logged every 10 of its 40 epochs.
SHORT = """\
name: short
seed: 3
repeats: 4
pack_size: 4
task: {dataset: circles, n_train: 30, hidden: [8], epochs: 40, log_every: 10}
search:
  sampler: grid
  configs:
    - {placement: none}
    - {placement: input, kind: gaussian, std: 0.1}
    - {placement: pre_activation, kind: gaussian, std: 0.1}
"""
LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC sweep '(?P<sweep>[^']+)': (?P<stored>\d+)/(?P<planned>\d+) runs stored "
    r"\((?P<percent>\d+)% done\), \d+\.\d\d runs/s, ETA (-|\d+s|\d+m\d\ds|\d+h\d\dm), (?P<packs>\d+) packs? in flight"
)
KEYS = {
    "time",
    "sweep",
    "runs_stored",
    "runs_planned",
    "runs_in_training",
    "fraction_done",
    "runs_per_second",
    "eta_seconds",
    "elapsed_seconds",
    "packs_in_flight",
}


def start(tmp_path, *options: str) -> tuple[subprocess.Popen, object]:
    """``sweeper run`` of the long sweep, its output redirected to files as ``nohup ... > log`` would."""
    (tmp_path / "long.yaml").write_text(LONG_SWEEP)
    log = tmp_path / "sweep.log"
    with open(tmp_path / "stdout", "w") as out, open(log, "w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sweeper.cli",
                "run",
                "long.yaml",
                "--db",
                f"sqlite:///{tmp_path / 's.db'}",
                *options,
            ],
            cwd=tmp_path,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )
    return process, log


def lines_while_running(process: subprocess.Popen, log, want: int, keep, timeout: float = 240) -> list[str]:
    """Reads the log as ``tail -f`` would until it holds ``want`` lines that ``keep``, the sweep still running."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the sweep ended:\n{log.read_text()}"
            kept = [line for line in log.read_text().splitlines() if keep(line)]
            if len(kept) >= want:
                return kept
            time.sleep(0.2)
        pytest.fail(f"fewer than {want} progress lines after {timeout} s:\n{log.read_text()}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def printable(text: str) -> bool:
    return all(c == "\n" or c.isprintable() for c in text)


@pytest.mark.slow
def test_a_run_into_a_log_file_writes_a_progress_line_every_few_seconds_while_it_trains(tmp_path):
    process, log = start(tmp_path, "--progress-every", "1")

    lines = lines_while_running(process, log, 6, LINE.fullmatch)
    while LINE.fullmatch(lines[-1])["stored"] != "2":  # the quick pack not stored yet: a loaded machine
        lines = lines_while_running(process, log, len(lines) + 1, LINE.fullmatch)

    circles, moons, banner = log.read_text().splitlines()[:3]
    # What the model sees, a line per task, said once the store took the sweep; then the banner.
    assert circles.startswith("features: task 'circles': ") and moons.startswith("features: task 'moons': ")
    assert banner.startswith("sweep 'long' -> sqlite:///")
    assert printable(log.read_text())  # no bar, no cursor movement, no colour: grep and tail -f read it
    last = LINE.fullmatch(lines[-1])
    assert (last["sweep"], last["planned"]) == ("long", "4")
    assert last["stored"] == "2" and last["packs"] == "1"  # the quick pack stored, the long one in flight
    stored = [int(LINE.fullmatch(line)["stored"]) for line in lines]
    assert stored == sorted(stored) and stored[0] == 0


@pytest.mark.slow
def test_log_format_json_writes_one_object_a_line(tmp_path):
    process, log = start(tmp_path, "--progress-every", "1", "--log-format", "json")

    # Four lines at least, the last after the quick pack was stored (on a loaded machine it may take longer).
    lines = lines_while_running(process, log, 4, lambda line: line.startswith("{"))
    while json.loads(lines[-1])["runs_stored"] < 2:
        lines = lines_while_running(process, log, len(lines) + 1, lambda line: line.startswith("{"))

    objects = [json.loads(line) for line in lines]
    assert all(set(o) == KEYS for o in objects)
    assert {(o["sweep"], o["runs_planned"]) for o in objects} == {("long", 4)}
    assert objects[-1]["runs_stored"] == 2 and objects[-1]["packs_in_flight"] == 1
    assert 0.5 <= objects[-1]["fraction_done"] < 1
    assert objects[-1]["time"].endswith("Z")


def test_a_short_run_writes_a_line_at_each_tenth_and_ends_on_every_run_stored(tmp_path, sweeper_cli):
    """With no time between lines (``--progress-every 0``) the lines come at tenths of the sweep."""
    space = tmp_path / "short.yaml"
    space.write_text(SHORT)

    result = sweeper_cli("run", space, "--db", f"sqlite:///{tmp_path / 's.db'}", "--progress-every", "0")

    assert result.exit_code == 0, result.stderr
    lines = [LINE.fullmatch(line) for line in result.stderr.splitlines() if LINE.fullmatch(line)]
    percents = [int(m["percent"]) for m in lines]
    assert percents[0] == 0 and percents[-1] == 100
    # One line a tenth, then the last, on the runs stored (the tenth before it counted the last pack in training).
    assert len({p // 10 for p in percents[:-1]}) == len(percents) - 1 and percents == sorted(percents)
    assert len(percents) >= 8  # 12 runs in 3 packs of 4, logged 4 times each: most tenths are passed
    assert (lines[-1]["stored"], lines[-1]["planned"], lines[-1]["packs"]) == ("12", "12", "0")
    assert "12 runs trained" in result.stderr.splitlines()[-1]


def test_a_negative_progress_interval_is_refused_in_one_line(tmp_path, sweeper_cli):
    space = tmp_path / "short.yaml"
    space.write_text(SHORT)

    result = sweeper_cli("run", space, "--progress-every", "-1")

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "--progress-every" in result.stderr
