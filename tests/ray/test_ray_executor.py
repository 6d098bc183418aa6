"""The Ray executor: same numbers as the local executor, packs back as they finish, failures retried.

One Ray (2 CPUs) serves the whole module; executors find it running, use it and leave it running.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from sweeper.driver.executors import LocalExecutor  # noqa: E402
from sweeper.driver.planner import Pack, PlannedRun, member  # noqa: E402
from sweeper.driver.ray_executor import (  # noqa: E402
    RayExecutor,
    _unreachable,
    cluster_address,
    cluster_device,
    pack_resources,
    slots,
)
from sweeper.driver.sweep import run_sweep  # noqa: E402
from sweeper.errors import ExecutorError, LeaseError  # noqa: E402
from sweeper.records import RunResult  # noqa: E402
from sweeper.space import load_space  # noqa: E402
from sweeper.store import open_store  # noqa: E402

SPACE = Path(__file__).with_name("two_tasks.yaml")
_RAY_ENV = ("RAY_AUTH_MODE", "RAY_AIR_NEW_OUTPUT", "TUNE_PRINT_ALL_TRIAL_ERRORS")


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU Ray for this module; the stand-in trainers below travel to its workers by value."""
    saved = {k: os.environ.get(k) for k in _RAY_ENV}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    for k, v in saved.items():  # ray.init turns token auth on for this process: put the environment back
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _packs(sizes: list[int]) -> list[Pack]:
    """Pack ``i`` of ``sizes[i]`` members (repeats of trial ``i``)."""
    spec = load_space(SPACE)
    name, task = next(iter(spec.tasks.items()))
    config = spec.grid_configs()[0][0]
    return [
        Pack(name, task, tuple(member(spec.seed, task, PlannedRun(i, config, name, r)) for r in range(n)), (i,) * n)
        for i, n in enumerate(sizes)
    ]


def _fake(members, value: float) -> list[RunResult]:
    return [
        RunResult(final={"value": value}, curve_epochs=np.array([1]), curves={"value": np.array([value])}, best_epoch=1)
        for _ in members
    ]


# ---- what a pack asks for, and where from: no Ray needed ----


def test_auto_means_the_gpus_of_a_cluster_that_has_any_and_one_device_for_every_pack():
    assert cluster_device("auto", 0) == "cpu"
    assert cluster_device("auto", 3) == "cuda"  # a mixed cluster: every pack on a GPU share
    assert cluster_device("cpu", 3) == "cpu"  # ... or every pack on CPUs, GPU nodes' CPUs included
    assert cluster_device("cuda", 1) == "cuda"
    with pytest.raises(ExecutorError, match="--device cuda: the Ray cluster has no GPU; allowed here: auto, cpu"):
        cluster_device("cuda", 0)


def test_cpu_packs_ask_one_cpu_and_gpu_packs_one_gpu_by_default():
    assert pack_resources("cpu", None, None) == {"CPU": 1.0}
    assert pack_resources("cuda", None, None) == {"CPU": 1.0, "GPU": 1.0}
    assert pack_resources("cpu", 4, None) == {"CPU": 4.0}
    assert pack_resources("cuda", 2, 0.25) == {"CPU": 2.0, "GPU": 0.25}


@pytest.mark.parametrize(
    "device, cpus, gpus, says",
    [
        ("cpu", 0, None, "--cpus-per-pack 0"),
        ("cpu", None, 0.5, "needs --device cuda"),
        ("cuda", None, 1.5, "a share in (0, 1]"),
        ("cuda", None, 0, "--gpus-per-pack 0"),
    ],
)
def test_impossible_pack_resources_are_refused_with_what_is_allowed(device, cpus, gpus, says):
    with pytest.raises(ExecutorError, match=says.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        pack_resources(device, cpus, gpus)


def test_slots_count_packs_that_fit_on_each_node():
    nodes = [{"CPU": 8.0, "GPU": 2.0}, {"CPU": 3.0}, {"CPU": 0.0}]
    assert slots(nodes, {"CPU": 1.0}) == 11
    assert slots(nodes, {"CPU": 2.0}) == 5
    assert slots(nodes, {"CPU": 1.0, "GPU": 0.25}) == 8
    assert slots(nodes, {"CPU": 1.0, "GPU": 1.0}) == 2


def test_the_address_argument_wins_over_ray_address_which_wins_over_a_local_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert cluster_address("other:6379") == "other:6379"
    assert cluster_address(None) == "head:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster_address(None) is None


def test_an_address_where_nothing_listens_is_named_at_once_not_retried_for_ever():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # closed again: nothing listens there
    assert _unreachable(f"127.0.0.1:{free}") == "Connection refused"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert _unreachable(f"127.0.0.1:{s.getsockname()[1]}") is None
    assert _unreachable("auto") is None and _unreachable("ray://head:10001") is None


# ---- on a Ray ----


@pytest.mark.slow
def test_a_ray_sweep_stores_exactly_the_numbers_of_a_local_sweep(local_ray, tmp_path):
    """Same sweep seed, same device type, same thread count: every stored number is equal, bit for bit."""
    spec = load_space(SPACE)
    ray_db, local_db = f"sqlite:///{tmp_path / 'ray.db'}", f"sqlite:///{tmp_path / 'local.db'}"
    ex = RayExecutor("cpu")
    try:
        with open_store(ray_db) as store:
            ray_outcome = run_sweep(spec, store, ex)
    finally:
        ex.close()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each Ray pack got: 1 CPU
    try:
        with open_store(local_db) as store:
            run_sweep(spec, store, LocalExecutor("cpu"))
    finally:
        torch.set_num_threads(threads)

    assert ray_outcome.runs_trained == ray_outcome.runs_total == 3 * 2 * 2

    def numbers(url):
        with open_store(url, create=False) as store:
            runs = [{k: v for k, v in r.items() if k != "wall_time"} for r in store.runs(spec.name)]
            return runs, store.curves(spec.name), store.trials(spec.name)

    ray_runs, ray_curves, ray_trials = numbers(ray_db)
    local_runs, local_curves, local_trials = numbers(local_db)
    assert len(ray_runs) == 12 and {r["task"] for r in ray_runs} == {"circles", "moons"}
    assert ray_runs == local_runs
    assert all(r["engine"] and r["host"] and r["torch_version"] for r in ray_runs)  # measured in the worker
    assert len(ray_curves) == 12 * 4 and ray_curves == local_curves
    assert [t["objective"] for t in ray_trials] == [t["objective"] for t in local_trials]


@pytest.mark.slow
def test_packs_come_back_as_they_finish_dead_workers_are_retried_and_lost_packs_named(local_ray, tmp_path, capsys):
    """One run with trouble (one Tune run keeps the test short).

    Pack 0 is quick. Pack 1 finishes only once the consumer holds pack 0: an executor that returned at
    the end would stall it. Pack 2's worker dies on the first attempt and is trained again. Pack 3
    fails every attempt: the error names it, after every other pack came back. Each failed attempt is
    one line on stderr, not a traceback.
    """
    go, died = tmp_path / "pack 0 arrived", tmp_path / "pack 2 died once"

    def train(task, members, device, on_epochs=None):
        pack = len(members) - 1  # pack i has i + 1 members
        if pack == 1:
            deadline = time.monotonic() + 30
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return _fake(members, 1.0 if go.exists() else -1.0)
        if pack == 2 and not died.exists():
            died.touch()
            os._exit(1)  # the worker process dies, as on a lost node or an out-of-memory kill
        if pack == 3:
            raise RuntimeError("this pack cannot be trained")
        return _fake(members, float(len(members)))

    packs = _packs([1, 2, 3, 4])
    ex = RayExecutor("cpu", train=train, max_failures=1)
    arrived = []
    try:
        with pytest.raises(ExecutorError) as failed:
            for pack, results in ex.run(packs):
                arrived.append((pack.trial_ids[0], [r.final["value"] for r in results]))
                if pack.trial_ids[0] == 0:
                    go.touch()
    finally:
        ex.close()
    assert arrived[0] == (0, [1.0])
    assert sorted(arrived) == [(0, [1.0]), (1, [1.0, 1.0]), (2, [3.0, 3.0, 3.0])]
    assert died.exists()
    message = str(failed.value)
    assert message.startswith("1 of 4 packs failed after 2 attempts each (finished packs are stored")
    assert message.endswith("first: pack 3 (circles, 4 members, trials [3]): RuntimeError: this pack cannot be trained")
    err = capsys.readouterr().err
    assert "ray: pack 2 (circles, 3 members, trials [2]) failed (attempt 1): ActorDiedError" in err
    assert (
        "ray: pack 3 (circles, 4 members, trials [3]) failed (attempt 2): RuntimeError: this pack cannot be "
        "trained; giving up on it" in err
    )
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_pack_posts_its_member_epochs_while_it_trains(local_ray):
    """Progress reaches the driver before the pack does: posts at most every _PROGRESS_S (1 s)."""

    def train(task, members, device, on_epochs=None):
        for k in (1, 2, 3):
            time.sleep(1.1)
            on_epochs(len(members) * 10 * k)
        return _fake(members, 1.0)

    (pack,) = _packs([2])
    ex = RayExecutor("cpu", train=train)
    told, arrived = [], []
    try:
        for done, _ in ex.run([pack], on_epochs=lambda p, n: told.append((p.trial_ids, n, len(arrived)))):
            arrived.append(done)
    finally:
        ex.close()
    assert arrived == [pack]
    assert told == [(pack.trial_ids, 20, 0), (pack.trial_ids, 40, 0), (pack.trial_ids, 60, 0)]


@pytest.mark.slow
def test_a_driver_that_stops_listening_cancels_the_packs_in_training_at_their_next_chunk(local_ray, tmp_path):
    """The driver's ``on_epochs`` raises (its lease is lost) once both packs train: ``run`` stops within seconds,
    and so do the trials, at their next chunk, without a retry or a failure line."""
    stopped = tmp_path / "stopped"
    stopped.mkdir()

    def train(task, members, device, on_epochs=None):
        start = time.monotonic()
        try:
            for chunk in range(1, 10_000):  # ten minutes of chunks
                time.sleep(0.06)
                on_epochs(len(members) * chunk)
        finally:
            stopped.joinpath(f"{len(members)}").write_text(f"{time.monotonic() - start:.1f}")
        return _fake(members, 1.0)

    training, lost = set(), []

    def lose_the_lease(pack, member_epochs):
        training.add(pack.trial_ids[0])
        if training == {0, 1}:  # both trials are under way
            lost.append(time.monotonic())
            raise LeaseError("its lease is lost")

    ex = RayExecutor("cpu", train=train)
    try:
        with pytest.raises(LeaseError):
            for _ in ex.run(_packs([1, 2]), on_epochs=lose_the_lease):
                pytest.fail("no pack may come back")
        left_s = time.monotonic() - lost[0]
        deadline = time.monotonic() + 15
        while len(list(stopped.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped_s = time.monotonic() - lost[0]
    finally:
        ex.close()
    assert left_s < 10  # the cancel, then at most _STOP_WAIT_S for Tune to wind down
    assert sorted(p.name for p in stopped.iterdir()) == ["1", "2"]  # both trials stopped, long before ten minutes
    assert stopped_s < 15, stopped_s  # at their next post (every _PROGRESS_S = 1 s), not at the end of the pack


@pytest.mark.slow
def test_an_executor_leaves_a_ray_it_found_running(local_ray):
    ex = RayExecutor("auto")
    assert ex.device == "cpu"  # no GPU in this Ray
    assert ex.parallel_packs == 2
    ex.close()
    assert ray.is_initialized()


@pytest.mark.slow
def test_asking_for_what_no_node_has_is_an_error_not_a_hang(local_ray):
    with pytest.raises(ExecutorError, match=r"no node of the Ray cluster .* has what one pack asks for \(4 CPU\)"):
        RayExecutor("cpu", cpus_per_pack=4, node_wait_s=0)
    with pytest.raises(ExecutorError, match="--device cuda: the Ray cluster .* has no GPU"):
        RayExecutor("cuda")
    assert ray.is_initialized()


@pytest.mark.slow
def test_pack_size_is_the_memory_rule_for_a_packs_share_of_a_worker(local_ray):
    """Two 1-CPU packs share this 2-CPU node: each plans with half of the memory a local pack would."""
    from sweeper.engine.sizing import free_memory, pack_size

    task = next(iter(load_space(SPACE).tasks.values())).model_copy(update={"hidden": (100_000,)})
    ex = RayExecutor("cpu")
    try:
        size = ex.pack_size(task, 30, 70)
    finally:
        ex.close()
    alone = pack_size(task, "cpu", 30, 70, free_bytes=free_memory(torch.device("cpu")))
    assert 2 <= size < alone  # members big enough that memory, not the 128 cap, decides
    assert 0.4 <= size / alone <= 0.6
