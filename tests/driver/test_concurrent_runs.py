"""Two `sweeper run` of one sweep at once: one trains it, the other is refused in one line (or, come too late,
finds it complete); the database ends as after one uninterrupted run. Two different sweeps at once both complete."""

from __future__ import annotations

import socket

import pytest
from helpers import circles_space

SPACE_YAML = circles_space(
    "conc",
    seed=2,
    repeats=2,
    search="sampler: grid\ngrid: {placement: [input, weights], std: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}",
    epochs=5,
)
N_CONFIGS, REPEATS = 13, 2
TOTAL = N_CONFIGS * REPEATS
ROUNDS = 8
REFUSED = (
    "error: sweep 'conc' is being run by host {host} (pid {pid}) since ",
    "; wait for it to finish, or stop it (a lease whose heartbeat stopped for 60 s is taken over)",
)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "conc.yaml"
    path.write_text(SPACE_YAML)
    return path


@pytest.fixture(scope="module")
def uninterrupted(space, tmp_path_factory, sweeper_cli) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('uninterrupted') / 'sweeps.db'}"
    result = sweeper_cli("run", space, "--db", url)
    assert result.exit_code == 0, result.stderr
    return url


def new_database(backend: str, tmp_path, request, n: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'round{n}.db'}"
    return request.getfixturevalue("pg_database")()


def assert_one_trained_and_one_stood_aside(first, second) -> None:
    """Of two runs of one sweep at once, one trained all of it; the other was refused naming it, or found it done."""
    ends = sorted([(first.wait(), first.stderr, first.process.pid), (second.wait(), second.stderr, second.process.pid)])
    for code, stderr, _ in ends:
        assert "Traceback" not in stderr and code in (0, 2), (code, stderr)
    (trainer,) = [end for end in ends if f"{TOTAL} runs trained in " in end[1]]
    (other,) = [end for end in ends if end is not trainer]
    code, stderr, _ = other
    if code == 2:  # refused while the trainer ran: one line naming it
        (line,) = stderr.splitlines()
        head, tail = REFUSED
        assert line.startswith(head.format(host=socket.gethostname(), pid=trainer[2])), line
        assert line.endswith(tail), line
    else:  # came when the sweep was done
        assert stderr == f"sweep 'conc' is complete: 0 runs trained, nothing to do; {TOTAL} runs stored in all\n"


def assert_as_after_one_uninterrupted_run(stored, url: str, reference: str, name: str = "conc") -> None:
    got = stored(url, name)
    assert got.runs() == stored(reference, "conc").runs()
    assert got.study_states() == ["COMPLETE"] * N_CONFIGS
    # each configuration asked once: placement (none, input, weights as 0, 1, 2) and std of each
    stds = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06)
    assert got.study_configs() == sorted(
        [(("placement", 0.0), ("std", 0.0))] + [(("placement", float(p)), ("std", s)) for p in (1, 2) for s in stds]
    )
    assert got.status() == "completed"
    assert got.lease() == (None, None, None)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_runs_of_one_sweep_at_once_train_it_once(backend, space, uninterrupted, launch, stored, tmp_path, request):
    for n in range(ROUNDS):
        url = new_database(backend, tmp_path, request, n)

        first, second = launch("run", space, "--db", url), launch("run", space, "--db", url)

        assert_one_trained_and_one_stood_aside(first, second)
        assert_as_after_one_uninterrupted_run(stored, url, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_different_sweeps_started_at_once_on_a_new_database_both_complete(
    backend, space, uninterrupted, launch, stored, tmp_path, request
):
    url = new_database(backend, tmp_path, request, 0)

    runs = [launch("run", space, "--db", url, "--name", name) for name in ("one", "two")]

    for run in runs:
        assert run.wait() == 0, run.stderr
        assert f"{TOTAL} runs trained in " in run.stderr
    for name in ("one", "two"):
        assert_as_after_one_uninterrupted_run(stored, url, uninterrupted, name)
