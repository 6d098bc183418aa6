"""Killed at any moment, or cut off from its database, a sweep resumes to the runs of an uninterrupted one, and its
Optuna study holds exactly the trials it asked for: one per configuration, none failed, none extra.

Each test kills (or cuts off) one run after another at random moments of its work, resumes, and compares. The
moments come from a seeded generator, named in every failure, so a failing sequence can be replayed.
"""

from __future__ import annotations

import itertools
import random
import signal
import time

import pytest
import sqlalchemy as sa
from helpers import circles_space

# pack_size 2 (circles_space's): one configuration a round, so a kill lands between many small writes.
GRID_YAML = circles_space(
    "killed",
    seed=8,
    repeats=2,
    search="sampler: grid\ngrid: {placement: [input, weights, pre_activation], std: [0.01, 0.05, 0.1, 0.2]}",
    epochs=30,
)
GRID_CONFIGS, REPEATS = 13, 2  # the baseline and 3 x 4
# 12 trials: past TPE's 10 random startup trials, so later proposals learn from the earlier ones.
TPE_YAML = circles_space(
    "killed",
    seed=8,
    repeats=2,
    search="sampler: tpe\nn_trials: 12\nspace: {placement: [input, weights], std: {log_uniform: [0.01, 0.3]}}",
    epochs=30,
)
TPE_TRIALS = 13  # n_trials and the baseline


@pytest.fixture(scope="module")
def spaces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spaces")
    (folder / "grid.yaml").write_text(GRID_YAML)
    (folder / "tpe.yaml").write_text(TPE_YAML)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(spaces, tmp_path_factory, sweeper_cli):
    """``uninterrupted(kind)``: what the sweep stores when nothing interrupts it (SQLite; PostgreSQL stores the
    same numbers, see test_backends.py)."""
    done = {}

    def run(kind: str) -> str:
        if kind not in done:
            url = f"sqlite:///{tmp_path_factory.mktemp('uninterrupted') / 'sweeps.db'}"
            result = sweeper_cli("run", spaces / f"{kind}.yaml", "--db", url)
            assert result.exit_code == 0, result.stderr
            done[kind] = url
        return done[kind]

    return run


def backend_url(backend: str, tmp_path, pg_database) -> str:
    return f"sqlite:///{tmp_path / 'sweeps.db'}" if backend == "sqlite" else pg_database()


def assert_same_as_uninterrupted(stored, url: str, reference: str, n_trials: int) -> None:
    got, expected = stored(url, "killed"), stored(reference, "killed")
    assert got.runs() == expected.runs()  # the same runs, with the same seeds and numbers, none twice
    assert got.objectives() == pytest.approx(expected.objectives(), rel=1e-12)
    assert got.study_states() == ["COMPLETE"] * n_trials  # no failed trial, no extra one
    assert got.status() == "completed"
    assert got.lease() == (None, None, None)


def kill_at_random_moments(launch, space, url: str, rng: random.Random, kills: int, *, stored, total: int) -> list:
    """Starts the sweep ``kills`` times, each killed with SIGKILL at a random moment of its work; what each did.

    The first is killed among its first writes (tables, sweep, study); each later one once the sweep holds a
    random number of its ``total`` runs (spread over the whole sweep), after a random few milliseconds more,
    so that kills land in every step of a round: asking, storing the configuration, training, storing runs,
    telling Optuna.
    """
    sweep = stored(url, "killed")
    targets = sorted(rng.sample(range(total), kills - 1))
    outcomes = []
    for k in range(kills):
        run = launch("run", space, "--db", url)
        while run.process.poll() is None and not (sweep.exists() if k == 0 else sweep.run_count() >= targets[k - 1]):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        run.kill()
        code = run.wait()
        # A run killed by us, or one that finished first: never refused (the killed owner is gone), never an error.
        assert code in (-signal.SIGKILL, 0), (k, code, run.stderr)
        outcomes.append((sweep.run_count(), code))
        if code == 0:
            break
    return outcomes


CASES = [
    ("grid", "sqlite", 10),
    ("tpe", "sqlite", 6),
    pytest.param("grid", "postgresql", 10, marks=pytest.mark.postgres),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,backend,kills", CASES)
def test_a_sweep_killed_at_random_moments_resumes_to_the_uninterrupted_runs_and_trials(
    kind, backend, kills, spaces, uninterrupted, launch, stored, tmp_path, request
):
    reference = uninterrupted(kind)
    url = backend_url(backend, tmp_path, request.getfixturevalue("pg_database") if backend == "postgresql" else None)
    seed = 1000 + len(request.node.name)
    rng = random.Random(seed)
    n_trials = GRID_CONFIGS if kind == "grid" else TPE_TRIALS

    outcomes = kill_at_random_moments(
        launch, spaces / f"{kind}.yaml", url, rng, kills, stored=stored, total=n_trials * REPEATS
    )
    resumed = launch("run", spaces / f"{kind}.yaml", "--db", url)

    assert resumed.wait() == 0, (seed, outcomes, resumed.stderr)
    assert "Traceback" not in resumed.stderr
    assert [code for _, code in outcomes].count(-signal.SIGKILL) >= kills - 1, (seed, outcomes)  # they landed
    assert_same_as_uninterrupted(stored, url, reference, n_trials)


def terminate_backends(url: str) -> int:
    """pg_terminate_backend on every other connection to the database; how many there were."""
    database = sa.engine.make_url(url).database
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            return len(
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
    finally:
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sweep_whose_connections_are_terminated_resumes_to_the_uninterrupted_runs_and_trials(
    spaces, uninterrupted, launch, stored, pg_database
):
    reference = uninterrupted("grid")
    url = pg_database()
    sweep = stored(url, "killed")
    rng = random.Random(7)
    cut = []

    for target in sorted(rng.sample(range(GRID_CONFIGS * REPEATS), 6)):  # cut once that many runs are stored
        run = launch("run", spaces / "grid.yaml", "--db", url)
        while run.process.poll() is None and (not sweep.exists() or sweep.run_count() < target):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        cut.append(terminate_backends(url))
        code = run.wait()
        stderr = run.stderr
        # Cut off, the run stops with one line (or it finished, or its connections were idle and came back).
        assert code in (0, 2), (cut, code, stderr)
        assert "Traceback" not in stderr
        if code == 2:
            assert stderr.splitlines()[-1].startswith("error: database error in "), stderr
        else:
            break
    resumed = launch("run", spaces / "grid.yaml", "--db", url)

    assert resumed.wait() == 0, resumed.stderr
    assert any(cut), "no connection was terminated: the sweep was over before each cut"
    assert_same_as_uninterrupted(stored, url, reference, GRID_CONFIGS)


# The baseline and one configuration: a first round (after the sweep's setup) and a last one, which also tells
# the first; the kills above cover the rounds between.
SMALL_YAML = circles_space(
    "killed", seed=8, repeats=2, search="sampler: grid\nconfigs:\n  - {placement: input, std: 0.05}", epochs=30
)


@pytest.mark.slow
def test_a_sweep_killed_before_each_of_its_commits_resumes_to_the_uninterrupted_runs_and_trials(
    tmp_path, sweeper_cli, launch, stored
):
    """Where the kills above land at random moments, these land at every write boundary in turn: the run is
    SIGKILLed as it is about to commit its N-th transaction (sweeper's or Optuna's), for every N, then resumed."""
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_YAML)
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    assert sweeper_cli("run", space, "--db", reference).exit_code == 0

    for n in itertools.count(1):
        url = f"sqlite:///{tmp_path / f'killed-{n}.db'}"
        killed = launch("run", space, "--db", url, kill_at_commit=n)
        if killed.wait() == 0:  # it commits fewer than n transactions: it was killed before each of them
            assert n > 5, killed.stderr
            break
        assert killed.process.returncode == -signal.SIGKILL, (n, killed.stderr)
        resumed = launch("run", space, "--db", url)
        assert resumed.wait() == 0, (n, resumed.stderr)
        assert "Traceback" not in resumed.stderr
        assert_same_as_uninterrupted(stored, url, reference, 2)
