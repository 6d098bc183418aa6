"""`sweeper run` and `sweeper delete` respect the sweep's lease: a sweep another run holds is refused in one line
naming that run, with nothing written; a stale lease is taken over; a run that loses its lease stops."""

from __future__ import annotations

import re
import signal

import pytest
from helpers import circles_space, execute, train_in_chunks

from sweeper.driver import sweep as sweep_module
from sweeper.driver.executors import Executor
from sweeper.driver.sweep import run_sweep
from sweeper.errors import LeaseError
from sweeper.space import parse_space
from sweeper.store import Store, _lease, open_store
from sweeper.store._lease import GIVE_UP_S, STALE_S

SPACE_YAML = circles_space(
    "held",
    seed=3,
    repeats=2,
    search="sampler: grid\nconfigs:\n  - {placement: input, std: 0.05}\n  - {placement: weights, std: 0.05}",
    epochs=5,
)
N_CONFIGS, REPEATS = 3, 2
REFUSED = re.compile(
    r"error: sweep 'held' is being run by host elsewhere \(pid 4242\) since \d{4}-\d\d-\d\d "
    r"\d\d:\d\d:\d\d UTC, heartbeat \d+ s ago; wait for it to finish, or stop it \(a lease whose "
    r"heartbeat stopped for 60 s is taken over\)\n"
)


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "held.yaml"
    path.write_text(SPACE_YAML)
    return path


def everything(url: str) -> dict:
    """Every row of sweeper's and Optuna's tables that a run writes."""
    tables = ("sweeper_sweeps", "sweeper_trials", "sweeper_runs", "trials", "trial_params", "trial_values")
    return {table: sorted(execute(url, f"SELECT * FROM {table}"), key=repr) for table in tables}


def held_elsewhere(url: str, seconds_ago: float = 0) -> None:
    """Give the sweep's lease to a live run on another host, its last heartbeat ``seconds_ago``."""
    then = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds_ago} seconds')"
    execute(
        url,
        "UPDATE sweeper_sweeps SET status = 'running', lease_token = 'elsewhere', lease_host = 'elsewhere', "
        f"lease_pid = 4242, lease_since = {then}, lease_heartbeat_at = {then}",
    )


@pytest.fixture
def interrupted(space, tmp_path, sweeper_cli, monkeypatch):
    """The URL of a sweep interrupted as its first configuration was told: the second one had trained by then
    (a grid's round trains while the round before is stored), and was stored before the run stopped."""
    url = f"sqlite:///{tmp_path / 'held.db'}"
    tell = sweep_module._Sweep.tell

    def interrupted_after_the_first(self, connection, asked):
        tell(self, connection, asked)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module._Sweep, "tell", interrupted_after_the_first)
    assert sweeper_cli("run", space, "--db", url).exit_code == 130
    monkeypatch.undo()
    assert execute(url, "SELECT count(*) FROM sweeper_runs") == [(2 * REPEATS,)]
    return url


def test_running_a_sweep_another_run_holds_is_refused_in_one_line_and_writes_nothing(space, interrupted, sweeper_cli):
    held_elsewhere(interrupted)
    before = everything(interrupted)

    second = sweeper_cli("run", space, "--db", interrupted)

    assert second.exit_code == 2
    assert REFUSED.fullmatch(second.stderr), second.stderr
    assert everything(interrupted) == before


def test_a_stale_lease_is_taken_over_and_the_sweep_completes(space, interrupted, sweeper_cli):
    held_elsewhere(interrupted, seconds_ago=STALE_S + 1)

    resumed = sweeper_cli("run", space, "--db", interrupted)

    assert resumed.exit_code == 0, resumed.stderr
    assert f"{(N_CONFIGS - 2) * REPEATS} runs trained" in resumed.stderr
    assert execute(interrupted, "SELECT status, lease_token FROM sweeper_sweeps") == [("completed", None)]
    assert execute(interrupted, "SELECT state, count(*) FROM trials GROUP BY state") == [("COMPLETE", N_CONFIGS)]


def test_deleting_a_sweep_another_run_holds_is_refused_in_one_line(interrupted, sweeper_cli):
    held_elsewhere(interrupted)

    refused = sweeper_cli("delete", "held", "--db", interrupted, "--yes")

    assert refused.exit_code == 2
    assert REFUSED.fullmatch(refused.stderr), refused.stderr
    assert execute(interrupted, "SELECT count(*) FROM sweeper_runs") == [(2 * REPEATS,)]


def test_deleting_a_sweep_whose_run_stopped_heartbeating_deletes_it(interrupted, sweeper_cli):
    held_elsewhere(interrupted, seconds_ago=STALE_S + 1)

    deleted = sweeper_cli("delete", "held", "--db", interrupted, "--yes")

    assert deleted.exit_code == 0, deleted.stderr
    assert execute(interrupted, "SELECT count(*) FROM sweeper_sweeps") == [(0,)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_run_whose_heartbeat_cannot_be_written_stops_after_the_pack_and_writes_nothing_more(
    space, tmp_path, sweeper_cli, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    clock = Clock()
    heartbeat, save_runs = Store.heartbeat, Store.save_runs

    def with_the_clock(self, sweep_id, name, owner, **kwargs):
        beating = heartbeat(self, sweep_id, name, owner, **kwargs)
        beating._clock, beating._last_renewed = clock, clock()
        beating.beat = lambda: None  # its writes never get through
        return beating

    def then_silence(self, *args, **kwargs):
        stored = save_runs(self, *args, **kwargs)
        clock.now += GIVE_UP_S + 1  # the pack took longer than the heartbeat may stay unwritten
        return stored

    monkeypatch.setattr(Store, "heartbeat", with_the_clock)
    monkeypatch.setattr(Store, "save_runs", then_silence)

    result = sweeper_cli("run", space, "--db", url)

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: sweep 'held': stopped, its lease is lost (its heartbeat could not be written for 41 s), so another run "
        "may take it over; finished packs are stored; run the same command to resume"
    )
    assert execute(url, "SELECT count(*) FROM sweeper_runs") == [(REPEATS,)]  # the first pack, nothing after
    # Nor told Optuna anything: its trials (the first, and the next, asked before the first was stored and
    # the lease found lost) are running, to be finished by the run that resumes.
    assert execute(url, "SELECT state FROM trials") == [("RUNNING",), ("RUNNING",)]
    # The database could still be written here: the run said it stopped, and let go of the sweep.
    assert execute(url, "SELECT status, lease_token FROM sweeper_sweeps") == [("interrupted", None)]


class TakenOverWhileTraining(Executor):
    """An executor whose first pack trains for up to 120 s in chunks, telling ``on_epochs`` after each as the
    engines do at each logging interval; as it starts, another run takes the sweep over."""

    device = "cpu"

    def __init__(self, url: str):
        self.url, self.trained_s = url, None

    def run(self, packs, on_epochs):
        pack = next(iter(packs))
        execute(
            self.url, "UPDATE sweeper_sweeps SET lease_token = 'elsewhere', lease_host = 'elsewhere', lease_pid = 4242"
        )
        train_in_chunks(self, pack, on_epochs, 120)  # a long pack
        yield from ()

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "sigint", [signal.default_int_handler, signal.SIG_IGN], ids=["sigint-handled", "sigint-ignored"]
)
def test_a_run_whose_lease_is_taken_over_stops_training_at_once_and_writes_nothing(tmp_path, monkeypatch, sigint):
    """Also with SIGINT ignored, as in a background job or under nohup: the lost lease does not go through SIGINT."""
    monkeypatch.setattr(_lease, "HEARTBEAT_S", 0.01)
    previous = signal.signal(signal.SIGINT, sigint)
    url = f"sqlite:///{tmp_path / 'taken.db'}"
    spec = parse_space(SPACE_YAML, "held.yaml")
    executor = TakenOverWhileTraining(url)

    try:
        with (
            open_store(url) as store,
            pytest.raises(LeaseError, match=r"its lease is lost \(another run took it over\)"),
        ):
            run_sweep(spec, store, executor)
    finally:
        signal.signal(signal.SIGINT, previous)

    assert executor.trained_s < 10  # training stopped mid-pack, at a chunk, not after the pack
    assert execute(url, "SELECT count(*) FROM sweeper_runs") == [(0,)]
    assert execute(url, "SELECT status, lease_token FROM sweeper_sweeps") == [("running", "elsewhere")]
