"""A finished pack is stored while the next one trains, and every guarantee of a write holds as before."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import circles_space, execute, train_in_chunks

from sweeper.driver.bench import _TimedExecutor, overlap
from sweeper.driver.executors import Executor
from sweeper.driver.sweep import run_sweep
from sweeper.errors import StoreError
from sweeper.space import parse_space
from sweeper.store import Store, open_store

SPACE_YAML = circles_space(
    "overlap",
    seed=4,
    repeats=2,
    search="sampler: grid\nconfigs:\n"
    + "".join(f"  - {{placement: input, std: {s}}}\n" for s in (0.01, 0.02, 0.03, 0.04, 0.05)),
    epochs=5,
)
N_CONFIGS, REPEATS = 6, 2


class TwoPacksARound(_TimedExecutor):
    """The bench's timed local executor (the (start, end) of each pack's training in ``spans``), asking for
    rounds of two packs."""

    parallel_packs = 2


def test_a_pack_is_stored_while_the_next_one_trains_and_every_run_is_stored_once(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'overlap.db'}"
    save_runs, saves, threads = Store.save_runs, [], set()

    def slowly(self, *args, **kwargs):
        start = time.perf_counter()
        time.sleep(0.3)  # a slow database: the next pack trains meanwhile
        stored = save_runs(self, *args, **kwargs)
        saves.append((start, time.perf_counter()))
        threads.add(threading.current_thread().name)
        return stored

    monkeypatch.setattr(Store, "save_runs", slowly)
    executor = TwoPacksARound()

    with open_store(url) as store:
        outcome = run_sweep(parse_space(SPACE_YAML, "overlap.yaml"), store, executor)

    assert outcome.runs_trained == N_CONFIGS * REPEATS
    assert threads == {"sweeper-pack-writer"}
    # The second pack of a round started training while the first one was being written.
    assert any(start < begun < end for start, end in saves for begun, _ in executor.spans)
    assert overlap(saves, executor.spans) > 0
    assert execute(url, "SELECT count(*), count(DISTINCT trial_id || task || repeat) FROM sweeper_runs") == [
        (N_CONFIGS * REPEATS, N_CONFIGS * REPEATS)
    ]
    assert execute(url, "SELECT state, count(*) FROM trials GROUP BY state") == [("COMPLETE", N_CONFIGS)]


class SecondPackTrainsLong(Executor):
    """Yields a first pack at once (its results never reach the database here), then trains the second for
    up to 60 s in chunks, telling ``on_epochs`` after each as the engines do."""

    device = "cpu"
    parallel_packs = 2

    def __init__(self):
        self.trained_s = None

    def pack_size(self, task, n_train: int, n_test: int) -> int:
        return 2

    def run(self, packs, on_epochs):
        first, second = list(packs)[:2]
        yield first, [None] * len(first)
        train_in_chunks(self, second, on_epochs, 60)
        yield from ()


def test_a_failed_write_stops_the_next_pack_at_its_next_chunk_and_nothing_more_is_written(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'failed.db'}"

    def fails(self, *args, **kwargs):
        time.sleep(0.2)
        raise StoreError("database error in the test: disk full")

    monkeypatch.setattr(Store, "save_runs", fails)
    executor = SecondPackTrainsLong()

    with open_store(url) as store, pytest.raises(StoreError, match="disk full"):
        run_sweep(parse_space(SPACE_YAML, "overlap.yaml"), store, executor)

    assert executor.trained_s < 10  # stopped at a chunk, not after the pack
    assert execute(url, "SELECT count(*) FROM sweeper_runs") == [(0,)]
    assert execute(url, "SELECT DISTINCT state FROM trials") == [("RUNNING",)]  # nothing told
    assert execute(url, "SELECT status, lease_token FROM sweeper_sweeps") == [("failed", None)]


def test_overlap_counts_the_seconds_two_sets_of_spans_share():
    assert overlap([(0.0, 2.0), (5.0, 6.0)], [(1.0, 5.5)]) == pytest.approx(1.5)
    assert overlap([(0.0, 1.0)], [(1.0, 2.0)]) == 0.0
