"""The Ray executor: packs become Ray Tune trials on a Ray cluster's CPUs or GPUs.

Every pack is one Tune trial asking for the CPUs (or the GPU share) a pack needs; Tune places the
trials on the cluster's nodes and retries a trial whose worker died. A trial hands its results to an
inbox actor owned by this process, so ``run`` yields each pack as soon as it is trained, while Tune
goes on with the others in a background thread. Nothing here writes the database: the driver does.

Which device packs run on is decided once, for the whole cluster (``device``): ``auto`` means the
cluster's GPUs when it has any, else its CPUs. A mixed cluster therefore trains every pack on its GPU
nodes (CPU-only nodes host only the inbox); ``--device cpu`` uses every node's CPUs instead.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable, Iterable, Iterator, Sequence

import ray
from ray import tune
from ray.util.queue import Empty, Queue

from sweeper.driver.planner import Pack
from sweeper.engine import sizing
from sweeper.engine.population import train_population
from sweeper.engine.result import Member, RunResult
from sweeper.errors import ExecutorError
from sweeper.tasks.spec import TaskSpec

#: Attempts a pack gets beyond its first when its worker dies or its trial raises.
MAX_FAILURES = 2
#: Seconds between looks at the inbox while Tune runs.
_POLL_S = 0.2

Train = Callable[[TaskSpec, Sequence[Member], str], list[RunResult]]


def cluster_address(address: str | None) -> str | None:
    """The Ray cluster to use: ``address``, else ``$RAY_ADDRESS``, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def pack_resources(device: str, cpus_per_pack: float | None, gpus_per_pack: float | None) -> dict[str, float]:
    """What one pack's trial asks Ray for: 1 CPU by default; on ``cuda`` also 1 GPU (or the share given)."""
    if cpus_per_pack is not None and not cpus_per_pack > 0:
        raise ExecutorError(f"--cpus-per-pack {cpus_per_pack}: must be more than 0")
    if gpus_per_pack is not None:
        if device != "cuda":
            raise ExecutorError(f"--gpus-per-pack {gpus_per_pack}: packs run on {device}; "
                                "a GPU share needs --device cuda (or auto on a cluster with GPUs)")
        if not (0 < gpus_per_pack <= 1 or float(gpus_per_pack).is_integer() and gpus_per_pack > 0):
            raise ExecutorError(f"--gpus-per-pack {gpus_per_pack}: allowed: a share in (0, 1] "
                                "(0.25 = four packs per GPU) or a whole number of GPUs")
    resources = {"CPU": float(cpus_per_pack or 1)}
    if device == "cuda":
        resources["GPU"] = float(gpus_per_pack or 1)
    return resources


def slots(nodes: Iterable[dict[str, float]], resources: dict[str, float]) -> int:
    """How many packs asking ``resources`` the nodes (each a Ray resource dict) run at once."""
    return sum(min(math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in resources.items()) for node in nodes)


def _train_pack(config: dict, packs: list[Pack], inbox: Queue, device: str, threads: int, train: Train) -> dict:
    """One Tune trial: trains its pack and hands the results to the driver's inbox."""
    import torch

    index = config["pack"]
    pack = packs[index]
    # Same thread count as a local run given the same CPUs: results can depend on it.
    torch.set_num_threads(threads)
    start = time.perf_counter()
    results = train(pack.task, pack.members, device)
    inbox.put((index, results))  # blocks until the inbox holds them: before Tune sees the trial end
    return {"members": len(pack), "seconds": time.perf_counter() - start}


def _free_bytes(device: str) -> int:
    """Bytes free where a pack would run (a Ray task placed like a pack)."""
    import torch

    return sizing.free_memory(torch.device(device))


class RayExecutor:
    """Trains packs as Ray Tune trials on a Ray cluster (or on a local Ray started for the run)."""

    def __init__(self, device: str = "auto", *, address: str | None = None, cpus_per_pack: float | None = None,
                 gpus_per_pack: float | None = None, max_failures: int = MAX_FAILURES,
                 train: Train = train_population):
        if device not in ("auto", "cpu", "cuda"):
            raise ExecutorError(f"--device {device!r} is not allowed; allowed: auto, cpu, cuda")
        self.address = cluster_address(address)
        self._owns_ray = False
        self._connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        where = self.address or "a local Ray"
        if device == "cuda" and not gpus:
            self.close()
            raise ExecutorError(f"--device cuda: the Ray cluster ({where}) has no GPU; allowed here: auto, cpu")
        #: The device type packs are sized for and trained on, for the whole cluster.
        self.device = "cuda" if device == "cuda" or (device == "auto" and gpus) else "cpu"
        try:
            self.resources = pack_resources(self.device, cpus_per_pack, gpus_per_pack)
            self._check_fits()
        except ExecutorError:
            self.close()
            raise
        self.max_failures = max_failures
        self.train = train
        self._storage = tempfile.mkdtemp(prefix="sweeper-tune-")
        self._free: int | None = None
        _log(f"ray: {where}: {self.parallel_packs} packs at once on {self.device}, "
             f"each asking {_describe(self.resources)}")

    def _connect(self) -> None:
        if ray.is_initialized():  # a Ray this process already uses (a notebook, a test): leave it running
            return
        options = dict(log_to_driver=False, logging_level=logging.WARNING)
        try:
            if self.address is None:
                ray.init(include_dashboard=False, **options)
                self._owns_ray = True
            else:
                ray.init(address=self.address, **options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster here"
            hint = ("; from outside the cluster's nodes use the Ray Client address ray://HOST:10001"
                    if self.address and not self.address.startswith("ray://") else "")
            raise ExecutorError(f"cannot connect to the Ray cluster at {self.address or 'a new local Ray'}: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                                f"{hint}") from exc

    @staticmethod
    def _nodes() -> list[dict[str, float]]:
        return [n["Resources"] for n in ray.nodes() if n.get("Alive")]

    def _check_fits(self) -> None:
        if self.parallel_packs == 0:
            largest = {k: max((n.get(k, 0.0) for n in self._nodes()), default=0.0) for k in self.resources}
            raise ExecutorError(f"no node of the Ray cluster has what one pack asks for ({_describe(self.resources)}); "
                                f"the largest node has {_describe(largest)}: lower --cpus-per-pack/--gpus-per-pack")

    @property
    def parallel_packs(self) -> int:
        """How many packs the cluster's live nodes train at once (more than one pack per round pays off)."""
        return slots(self._nodes(), self.resources)

    def pack_size(self, task: TaskSpec, n_train: int, n_test: int) -> int:
        """Members per pack: the engine's memory rule, measured on a worker, for the share a pack gets there.

        A GPU pack gets ``gpus_per_pack`` of a GPU's memory rule (four packs at 0.25 share one GPU).
        """
        if self._free is None:
            probe = ray.remote(_free_bytes).options(num_cpus=self.resources["CPU"],
                                                    num_gpus=self.resources.get("GPU", 0))
            self._free = ray.get(probe.remote(self.device))
        share = min(1.0, self.resources.get("GPU", 1.0))
        return sizing.pack_size(task, self.device, n_train, n_test, free_bytes=int(self._free * share))

    def run(self, packs: Iterable[Pack]) -> Iterator[tuple[Pack, list[RunResult]]]:
        """Yields ``(pack, results)`` as each pack's trial ends; raises ExecutorError if a pack failed for good.

        Packs finished before a failure are yielded first, so the driver stores them.
        """
        packs = list(packs)
        if not packs:
            return
        inbox = Queue(actor_options={"num_cpus": 0})
        tuner = self._tuner(packs, inbox)
        fit: dict = {}
        thread = threading.Thread(target=_fit, args=(tuner, fit), name="sweeper-ray-tune", daemon=True)
        thread.start()
        pending = set(range(len(packs)))
        try:
            while pending:
                try:
                    index, results = inbox.get(timeout=_POLL_S)
                except Empty:
                    if thread.is_alive():
                        continue
                    if inbox.empty():  # Tune is done and every result it got is taken
                        break
                    continue
                if index in pending:  # a retried trial may hand in its pack twice
                    pending.discard(index)
                    yield packs[index], results
            thread.join()
        finally:
            ray.kill(inbox.actor)
        if "error" in fit:
            raise ExecutorError(f"Ray Tune stopped: {fit['error']}") from fit["error"]
        if pending:
            raise ExecutorError(self._failure(packs, pending, fit.get("grid")))

    def _tuner(self, packs: list[Pack], inbox: Queue) -> tune.Tuner:
        trainable = tune.with_parameters(_train_pack, packs=packs, inbox=inbox, device=self.device,
                                         threads=max(1, int(self.resources["CPU"])), train=self.train)
        return tune.Tuner(
            tune.with_resources(trainable, self.resources),
            param_space={"pack": tune.grid_search(list(range(len(packs))))},
            # Reused actors keep torch imported between packs; a failed trial gets a fresh one.
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"sweeper-{uuid.uuid4().hex[:12]}", storage_path=self._storage, verbose=0,
                failure_config=tune.FailureConfig(max_failures=self.max_failures)),
        )

    def _failure(self, packs: list[Pack], pending: set[int], grid) -> str:
        errors = {}
        for result in grid or ():
            if result.error is not None and result.config:
                errors[result.config["pack"]] = result.error
        first = min(pending)
        pack = packs[first]
        why = errors.get(first)
        why = str(why).strip().splitlines()[-1] if why is not None and str(why).strip() else "no result came back"
        return (f"{len(pending)} of {len(packs)} packs failed after {self.max_failures + 1} attempts each "
                f"(the others are stored; run the same command to retry); first: pack {first} "
                f"({pack.task_name}, {len(pack)} members, trials {sorted(set(pack.trials))}): {why}")

    def close(self) -> None:
        """Removes Tune's scratch directory; shuts down the Ray this executor started (never a cluster)."""
        if getattr(self, "_storage", None):
            shutil.rmtree(self._storage, ignore_errors=True)
            self._storage = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


def _fit(tuner: tune.Tuner, out: dict) -> None:
    try:
        out["grid"] = tuner.fit()
    except BaseException as exc:  # handed to the consuming thread
        out["error"] = exc


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
