"""A sweep has one owner at a time: its lease is taken in one statement, renewed by a heartbeat on the database's
clock, taken over once stale or once its owner's process on this host is gone, and lost by an owner that cannot
renew it before anyone may take it over."""

from __future__ import annotations

import re
import socket
import subprocess
import threading

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import execute

from sweeper.errors import LeaseError
from sweeper.records import Member, RunResult
from sweeper.store import open_store
from sweeper.store._lease import GIVE_UP_S, STALE_S, Heartbeat, Owner

SPEC_YAML = "name: demo\n"
SETTINGS = dict(seed=7, metric="test_accuracy", higher_is_better=True, repeats=2, problem="binary")
ELSEWHERE = Owner("token-elsewhere", "elsewhere", 4242)
BUSY = re.compile(
    r"sweep 'demo' is being run by host (\S+) \(pid (\d+)\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, "
    r"heartbeat (\d+) s ago; wait for it to finish, or stop it \(a lease whose heartbeat stopped for "
    r"60 s is taken over\)"
)


def start(store, owner: Owner | None) -> int | None:
    return store.start_sweep("demo", SPEC_YAML, **SETTINGS, owner=owner)


def sweep_row(url: str) -> tuple:
    return execute(url, "SELECT * FROM sweeper_sweeps WHERE name = 'demo'")[0]


def lease(url: str) -> tuple:
    return execute(url, "SELECT lease_token, lease_host, lease_pid FROM sweeper_sweeps WHERE name = 'demo'")[0]


def age_heartbeat(url: str, seconds: float) -> None:
    """Set the lease's last heartbeat ``seconds`` back, by the database's clock."""
    if url.startswith("sqlite"):
        then = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds} seconds')"
    else:
        then = f"now() - interval '{seconds} seconds'"
    execute(url, f"UPDATE sweeper_sweeps SET lease_heartbeat_at = {then} WHERE name = 'demo'")


def ended_pid() -> int:
    """The pid of a process of this host that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_second_owner_is_refused_in_one_line_naming_the_first_and_nothing_changes(store, db_url):
    first = Owner.here()
    sweep_id = start(store, first)
    before = sweep_row(db_url)

    with pytest.raises(LeaseError) as refused:
        start(store, ELSEWHERE)

    assert BUSY.fullmatch(str(refused.value)).groups() == (first.host, str(first.pid), "0")
    assert sweep_row(db_url) == before
    assert lease(db_url) == (first.token, first.host, first.pid)
    assert start(store, first) == sweep_id  # its owner may take it again


def test_a_lease_whose_heartbeat_stopped_is_taken_over_and_not_before(store, db_url):
    start(store, ELSEWHERE)
    age_heartbeat(db_url, STALE_S - 5)

    with pytest.raises(LeaseError) as refused:
        start(store, Owner.here())
    assert BUSY.fullmatch(str(refused.value)).group(3) in ("55", "56")  # the database's clock says how long

    age_heartbeat(db_url, STALE_S + 1)
    taker = Owner.here()
    assert start(store, taker) is not None
    assert lease(db_url) == (taker.token, taker.host, taker.pid)


def test_a_lease_of_an_ended_process_of_this_host_is_taken_at_once(store, db_url):
    start(store, Owner("token-killed", socket.gethostname(), ended_pid()))
    taker = Owner.here()

    assert start(store, taker) is not None
    assert lease(db_url) == (taker.token, taker.host, taker.pid)


def test_a_lease_of_a_live_process_of_this_host_is_not_taken(store, db_url):
    with subprocess.Popen(["sleep", "60"]) as alive:
        try:
            start(store, Owner("token-alive", socket.gethostname(), alive.pid))
            with pytest.raises(LeaseError):
                start(store, Owner.here())
        finally:
            alive.kill()


def test_of_runs_racing_for_a_stale_lease_exactly_one_gets_it(store, db_url):
    sweep_id = start(store, ELSEWHERE)
    age_heartbeat(db_url, STALE_S + 1)
    owners = [Owner(f"token-{i}", f"host-{i}", 1000 + i) for i in range(6)]
    outcomes, barrier = {}, threading.Barrier(len(owners))

    def race(owner):
        with open_store(db_url) as own:
            barrier.wait()
            try:
                outcomes[owner.token] = own.start_sweep("demo", SPEC_YAML, **SETTINGS, owner=owner)
            except LeaseError:
                outcomes[owner.token] = "refused"

    threads = [threading.Thread(target=race, args=(o,)) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [token for token, outcome in outcomes.items() if outcome == sweep_id]
    assert len(winners) == 1 and sorted(outcomes.values(), key=str).count("refused") == len(owners) - 1
    assert lease(db_url)[0] == winners[0]


def test_finishing_releases_the_lease_and_a_completed_sweep_is_left_as_it_is(store, db_url):
    owner = Owner.here()
    sweep_id = start(store, owner)
    store.finish_sweep(sweep_id, "completed", owner)
    completed = sweep_row(db_url)

    assert lease(db_url) == (None, None, None)
    assert start(store, Owner.here()) is None  # nothing to do: not reopened, not leased
    assert sweep_row(db_url) == completed


def a_run(store, sweep_id: int) -> tuple:
    """(trial id, task, member, result) of one finished run of the baseline."""
    ref = store.ensure_trial(sweep_id, (), number=0)
    curves = {
        "train_loss": np.array([0.3]),
        "test_loss": np.array([0.4]),
        "train_accuracy": np.array([0.9]),
        "test_accuracy": np.array([0.8]),
    }
    result = RunResult(
        final={k: float(v[-1]) for k, v in curves.items()}, curve_epochs=np.array([10]), curves=curves, best_epoch=10
    )
    return ref.id, "default", Member((), 0, 1, 2, 3), result


def test_an_owner_that_lost_the_lease_can_neither_store_runs_nor_finish(store, db_url):
    owner = Owner.here()
    sweep_id = start(store, owner)
    age_heartbeat(db_url, STALE_S + 1)
    start(store, ELSEWHERE)  # taken over: the first owner was stopped (suspended) for longer than STALE_S
    run = a_run(store, sweep_id)

    with pytest.raises(LeaseError):
        store.save_runs(sweep_id, [run], owner)
    with pytest.raises(
        LeaseError, match="^sweep 'demo': another run took it over before it could be marked interrupted$"
    ):
        store.finish_sweep(sweep_id, "interrupted", owner)

    assert execute(db_url, "SELECT count(*) FROM sweeper_runs") == [(0,)]
    assert execute(db_url, "SELECT status FROM sweeper_sweeps") == [("running",)]
    assert lease(db_url) == (ELSEWHERE.token, ELSEWHERE.host, ELSEWHERE.pid)
    assert store.save_runs(sweep_id, [run], ELSEWHERE) == 1


def test_deleting_a_sweep_another_run_holds_is_refused_until_it_is_released(store, db_url):
    sweep_id = start(store, ELSEWHERE)

    with pytest.raises(LeaseError) as refused:
        store.delete_sweep("demo")
    assert BUSY.fullmatch(str(refused.value)).groups()[:2] == ("elsewhere", "4242")
    with pytest.raises(LeaseError):
        store.check_not_running("demo")
    assert execute(db_url, "SELECT count(*) FROM sweeper_sweeps") == [(1,)]

    store.finish_sweep(sweep_id, "interrupted", ELSEWHERE)
    store.check_not_running("demo")
    assert store.delete_sweep("demo")["trials"] == 0
    assert execute(db_url, "SELECT count(*) FROM sweeper_sweeps") == [(0,)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def heartbeat(store, url: str, owner: Owner, sweep_id: int, clock: Clock, lost: list) -> Heartbeat:
    return Heartbeat(sa.engine.make_url(url), sweep_id, "demo", owner, on_lost=lambda: lost.append(True), clock=clock)


def test_a_heartbeat_renews_the_lease_by_the_database_clock(store, db_url):
    owner = Owner.here()
    sweep_id = start(store, owner)
    age_heartbeat(db_url, STALE_S + 1)
    lost = []
    beating = heartbeat(store, db_url, owner, sweep_id, Clock(), lost)

    beating.beat()

    with pytest.raises(LeaseError):  # fresh again: no one else may take it
        start(store, ELSEWHERE)
    assert beating.lost is None and lost == []


def test_a_heartbeat_finding_the_lease_taken_over_loses_it_once(store, db_url):
    owner = Owner.here()
    sweep_id = start(store, owner)
    age_heartbeat(db_url, STALE_S + 1)
    start(store, ELSEWHERE)
    lost = []
    beating = heartbeat(store, db_url, owner, sweep_id, Clock(), lost)

    beating.beat()
    beating.beat()

    assert lost == [True]
    with pytest.raises(
        LeaseError,
        match=r"^sweep 'demo': stopped, its lease is lost \(another run took it over\), so "
        r"another run may take it over; finished packs are stored; run the same "
        r"command to resume$",
    ):
        beating.check()
    assert lease(db_url) == (ELSEWHERE.token, ELSEWHERE.host, ELSEWHERE.pid)


def test_a_heartbeat_that_cannot_be_written_loses_the_lease_before_it_is_stale(store, db_url, tmp_path):
    owner = Owner.here()
    sweep_id = start(store, owner)
    clock, lost = Clock(), []
    beating = heartbeat(store, db_url, owner, sweep_id, clock, lost)
    beating._db.dispose()
    beating._db = sa.create_engine(f"sqlite:///{tmp_path / 'gone' / 'sweeps.db'}")  # cannot be opened

    clock.now = GIVE_UP_S - 1
    beating.beat()
    assert beating.lost is None and lost == []
    beating.check()

    clock.now = GIVE_UP_S + 1
    beating.beat()

    assert GIVE_UP_S + 1 < STALE_S  # it stops before anyone may take the sweep over
    assert lost == [True]
    assert beating.lost == f"its heartbeat could not be written for {GIVE_UP_S + 1:.0f} s: unable to open database file"
    with pytest.raises(LeaseError):
        beating.check()


def test_the_driving_thread_finds_a_lease_lost_even_when_the_heartbeat_is_stuck(store, db_url):
    owner = Owner.here()
    sweep_id = start(store, owner)
    clock, lost = Clock(), []
    beating = heartbeat(store, db_url, owner, sweep_id, clock, lost)

    clock.now = GIVE_UP_S + 5  # no beat came back since

    with pytest.raises(LeaseError, match=r"its heartbeat could not be written for 45 s\)"):
        beating.check()
    assert lost == [True]
