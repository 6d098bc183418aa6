"""The Ray executor: packs become Ray Tune trials on a Ray cluster's CPUs or GPUs.

Every pack is one Tune trial asking for the CPUs (or the GPU share) one pack needs; Tune places the
trials on the cluster's nodes and retries a trial whose worker died. A trial hands its results to an
inbox actor owned by this process, so ``run`` yields each pack as soon as it is trained while Tune goes
on with the others in a background thread; while it trains, it posts there how far it is (its
member-epochs, at most every ``_PROGRESS_S``). Nothing here writes the database: the driver does.

The device is decided once, for the whole cluster: ``auto`` means the GPUs when the cluster has any
when the run starts, else the CPUs. On a cluster of CPU-only and GPU nodes, ``auto`` (or ``cuda``)
trains every pack on a GPU share, sized by the GPU memory rule; ``cpu`` trains every pack on CPUs,
sized by the CPU rule, on any node. One run never mixes the two: the numbers of a sweep then come from
one device type, which is what makes them reproducible (docs/design.md, promise 2).

The process that calls ``run`` must be on a Ray node (Ray's rule for drivers); a machine outside the
cluster joins it first as a node without CPUs (``ray start --address=HEAD:6379 --num-cpus=0``), as the
``sweeper`` image's entrypoint does.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import ray
from ray import tune
from ray.util.queue import Empty, Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sweeper.driver.executors import Executor, PackEpochs
from sweeper.driver.planner import Pack
from sweeper.engine import sizing
from sweeper.engine.population import train_population
from sweeper.errors import ExecutorError
from sweeper.records import RunResult
from sweeper.tasks import user_models
from sweeper.tasks.spec import TaskSpec

#: Attempts a pack gets beyond its first when its worker dies or its trial raises.
MAX_FAILURES = 2
#: Seconds to wait for a node that can take a pack (workers may still be joining the cluster).
NODE_WAIT_S = 60.0
#: Seconds between looks at the inbox while Tune runs.
_POLL_S = 0.2
#: Seconds at least between two posts of a pack's progress (each is a call to the inbox actor); a trial
#: looks whether the driver stopped listening as often.
_PROGRESS_S = 1.0
#: Seconds the driver waits for Tune to wind down when it stops listening early (Ctrl-C, SIGTERM, a lost
#: lease): its trials stop at their next chunk; past this, the process leaves Tune to Ray (a driver that
#: exits takes its job's trials with it), so that it ends well within a scheduler's grace period.
_STOP_WAIT_S = 5.0

#: What a trial runs on its pack, called as ``train_population`` is: (task, members, device, on_epochs=...).
Train = Callable[..., list[RunResult]]


def cluster_address(address: str | None) -> str | None:
    """The Ray cluster to use: ``address``, else ``$RAY_ADDRESS``, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def cluster_device(device: str, gpus: float, where: str = "the Ray cluster") -> str:
    """The device every pack runs on (``device`` one of DEVICES): ``auto`` means cuda when the cluster has
    GPUs, else cpu."""
    if device == "cuda" and not gpus:
        raise ExecutorError(f"--device cuda: {where} has no GPU; allowed here: auto, cpu")
    return "cuda" if device == "cuda" or (device == "auto" and gpus) else "cpu"


def pack_resources(device: str, cpus_per_pack: float | None, gpus_per_pack: float | None) -> dict[str, float]:
    """What one pack's trial asks Ray for: 1 CPU by default; on ``cuda`` also 1 GPU, or the share given."""
    if cpus_per_pack is not None and not cpus_per_pack > 0:
        raise ExecutorError(f"--cpus-per-pack {cpus_per_pack:g}: allowed: more than 0")
    if gpus_per_pack is not None:
        if device != "cuda":
            raise ExecutorError(
                f"--gpus-per-pack {gpus_per_pack:g}: packs run on {device}; a GPU share needs "
                "--device cuda, or auto on a cluster with GPUs"
            )
        if not (0 < gpus_per_pack <= 1 or (gpus_per_pack > 1 and float(gpus_per_pack).is_integer())):
            raise ExecutorError(
                f"--gpus-per-pack {gpus_per_pack:g}: allowed: a share in (0, 1] "
                "(0.25 = four packs per GPU) or a whole number of GPUs"
            )
    resources = {"CPU": float(cpus_per_pack or 1)}
    if device == "cuda":
        resources["GPU"] = float(gpus_per_pack or 1)
    return resources


def runtime_env(tasks: Iterable[TaskSpec]) -> dict:
    """Ray's ``runtime_env`` for a sweep's job: the modules of its tasks' own models (``task.model:
    {factory: ...}``, imported by the driver's checks) travel with the job as ``py_modules``, so every
    worker imports the code the driver checked, whether or not it sees the driver's files."""
    modules = {user_models.module_of(t.user_model) for t in tasks if t.user_model is not None}
    return {"py_modules": sorted(modules, key=lambda m: m.__name__)} if modules else {}


def slots(nodes: Iterable[dict[str, float]], resources: dict[str, float]) -> int:
    """How many packs asking ``resources`` fit at once on the nodes (each a dict of Ray resources)."""
    return sum(min(math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in resources.items()) for node in nodes)


class _Cancelled(Exception):
    """The driver stopped listening: the trial stops training at its next chunk."""


@ray.remote(num_cpus=0)
class _Cancel:
    """A flag the driver sets when it stops listening (Ctrl-C, SIGTERM, a lost lease); trials read it."""

    def __init__(self) -> None:
        self.cancelled = False

    def set(self) -> None:
        self.cancelled = True

    def is_set(self) -> bool:
        return self.cancelled


def _train_pack(config: dict, packs: list[Pack], inbox: Queue, cancel, device: str, threads: int, train: Train) -> dict:
    """One Tune trial: trains its pack and hands the results to the driver's inbox; stops early, handing
    nothing in, once the driver set ``cancel``."""
    import torch

    index = config["pack"]
    pack = packs[index]
    # The thread count a local run given the same CPUs would use: results can depend on it.
    torch.set_num_threads(threads)
    start = time.perf_counter()
    posted = start

    def on_epochs(member_epochs: int) -> None:
        nonlocal posted
        if time.perf_counter() - posted >= _PROGRESS_S:
            if ray.get(cancel.is_set.remote()):
                raise _Cancelled
            inbox.put(("epochs", index, member_epochs))
            posted = time.perf_counter()

    try:
        results = train(pack.task, pack.members, device, on_epochs=on_epochs)
    except _Cancelled:  # not a failure: Tune must not train it again
        return {"members": len(pack), "seconds": time.perf_counter() - start, "cancelled": True}
    inbox.put(("done", index, results))  # returns once the inbox holds them, so before Tune sees the trial end
    return {"members": len(pack), "seconds": time.perf_counter() - start}


def _free_memory(device: str) -> tuple[int, str]:
    """Bytes free where this Ray task runs (placed like a pack), and the id of its node."""
    import torch

    return sizing.free_memory(torch.device(device)), ray.get_runtime_context().get_node_id()


class _StopAll(tune.Stopper):
    """Ends a Tune run from outside: when the driver stops listening, Tune stops every trial."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event.is_set()

    # Tune pickles its run config into the experiment state; the copy has no one to stop it.
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.event = threading.Event()


class _FailureLines(tune.Callback):
    """One stderr line per failed attempt of a pack, in place of Tune's traceback for each."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def on_trial_recover(self, iteration: int, trials: list, trial, **info) -> None:
        self._say(trial, "training it again")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._say(trial, "giving up on it")

    def _say(self, trial, then: str) -> None:
        _log(
            f"ray: {self.labels[trial.config['pack']]} failed (attempt {trial.num_failures}): "
            f"{_reason(_trial_error(trial))}; {then}"
        )


class RayExecutor(Executor):
    """Trains packs as Ray Tune trials on a Ray cluster, or on a local Ray started for the run."""

    def __init__(
        self,
        device: str = "auto",
        *,
        address: str | None = None,
        cpus_per_pack: float | None = None,
        gpus_per_pack: float | None = None,
        max_failures: int = MAX_FAILURES,
        node_wait_s: float = NODE_WAIT_S,
        train: Train = train_population,
        env: dict | None = None,
    ):
        """``env``: the job's Ray ``runtime_env`` (``runtime_env(tasks)``: the modules of user models),
        given when this executor connects; a Ray this process already uses keeps its own."""
        self.env = env or {}
        self.address = cluster_address(address)
        self.max_failures = max_failures
        self.train = train  # what a trial runs on its pack: the engine (tests put a stand-in here)
        self._owns_ray = False
        self._storage: str | None = None
        self._free: int | None = None  # bytes of a worker's free memory one pack may plan with
        self._connect()
        try:
            #: The device type packs are sized for and trained on, for the whole cluster.
            self.device = cluster_device(
                device, ray.cluster_resources().get("GPU", 0.0), f"the Ray cluster ({self._where})"
            )
            self.resources = pack_resources(self.device, cpus_per_pack, gpus_per_pack)
            self._wait_for_room(node_wait_s)
        except BaseException:
            self.close()
            raise
        self._storage = tempfile.mkdtemp(prefix="sweeper-tune-")
        _log(
            f"ray: {self._where}: {self.parallel_packs} packs at once on {self.device}, "
            f"each asking {_describe(self.resources)}"
        )

    @property
    def _where(self) -> str:
        return self.address or "local Ray"

    def _connect(self) -> None:
        # Tune's console output prints its experiment table on stdout even at verbose=0; the classic
        # reporter keeps quiet, and stdout stays the CLI's. A failed attempt gets one line, not a traceback.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
        if ray.is_initialized():  # a Ray this process already uses (a notebook, a test): leave it as it is
            return
        options = dict(log_to_driver=False, logging_level=logging.WARNING)
        if self.env:
            options["runtime_env"] = self.env
        # Ray retries an address where nothing listens for ever: ask the port first, and say so now.
        why = _unreachable(self.address) if self.address else None
        if why:
            raise ExecutorError(
                f"cannot reach the Ray cluster at {self.address}: {why}; is its head running "
                "(ray start --head --port=PORT) and the address right?"
            )
        try:
            if self.address is None:
                ray.init(include_dashboard=False, **options)
                self._owns_ray = True
            else:
                ray.init(address=self.address, **options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster here"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = (
                "; a driver presents the cluster's token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN) and runs on one "
                f"of its nodes (elsewhere, join first: ray start --address={self.address} --num-cpus=0)"
                if self.address and not self.address.startswith("ray://")
                else ""
            )
            raise ExecutorError(f"cannot connect to the Ray cluster at {self._where}: {first}{hint}") from exc

    @staticmethod
    def _nodes() -> list[dict[str, float]]:
        return [node["Resources"] for node in ray.nodes() if node.get("Alive")]

    @property
    def parallel_packs(self) -> int:
        """How many packs the cluster's live nodes train at once; the driver gains from that many per round."""
        return slots(self._nodes(), self.resources)

    def _wait_for_room(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        if self.parallel_packs == 0:
            _log(f"ray: waiting up to {wait_s:g} s for a node with {_describe(self.resources)}")
        while self.parallel_packs == 0:
            if time.monotonic() > deadline:
                largest = {k: max((n.get(k, 0.0) for n in self._nodes()), default=0.0) for k in self.resources}
                raise ExecutorError(
                    f"no node of the Ray cluster ({self._where}) has what one pack asks for "
                    f"({_describe(self.resources)}); the largest has {_describe(largest)}: "
                    "add workers, or lower --cpus-per-pack/--gpus-per-pack"
                )
            time.sleep(1.0)

    def pack_size(self, task: TaskSpec, n_train: int, n_test: int) -> int:
        """Members per pack: the engine's memory rule on a worker, for the share of it one pack gets.

        Free memory is measured once, by a Ray task placed like a pack. Packs run side by side: a GPU
        pack asking a quarter of a GPU gets a quarter of that GPU's rule, a CPU pack asking 1 of a
        node's 8 CPUs an eighth of the node's.
        """
        if self._free is None:
            probe = ray.remote(_free_memory).options(
                num_cpus=self.resources["CPU"], num_gpus=self.resources.get("GPU", 0)
            )
            free, node_id = ray.get(probe.remote(self.device))
            if self.device == "cuda":
                share = min(1.0, self.resources["GPU"])
            else:
                node = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node_id)
                share = min(1.0, self.resources["CPU"] / node["CPU"])
            self._free = int(free * share)
        return sizing.pack_size(task, self.device, n_train, n_test, free_bytes=self._free)

    def run(self, packs: Iterable[Pack], on_epochs: PackEpochs | None = None) -> Iterator[tuple[Pack, list[RunResult]]]:
        """Yields ``(pack, results)`` as each pack's trial ends; ExecutorError if a pack failed for good.
        ``on_epochs`` is told each pack's progress as its trial posts it (a retried pack starts again at 0).

        Every pack that finished is yielded before that error, so the driver stores it; leaving the loop
        early (an exception from ``on_epochs``, a KeyboardInterrupt, closing the iterator) stops the trials
        still running at their next chunk.
        """
        packs = list(packs)
        if not packs:
            return
        # The inbox lives on this process's node: a worker node lost mid-run takes no results with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        inbox = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        cancel = _Cancel.options(scheduling_strategy=here).remote()
        stop = _StopAll()
        fit: dict = {}
        thread = threading.Thread(
            target=_fit, args=(self._tuner(packs, inbox, cancel, stop), fit), daemon=True, name="sweeper-ray-tune"
        )
        thread.start()
        pending = set(range(len(packs)))
        try:
            while pending:
                try:
                    what, index, content = inbox.get(timeout=_POLL_S)
                except Empty:
                    # Tune has ended and everything its trials handed in is taken: what is left failed.
                    if not thread.is_alive() and inbox.empty():
                        break
                    continue
                if what == "epochs":
                    if index in pending and on_epochs is not None:
                        on_epochs(packs[index], content)
                elif index in pending:  # a retried trial may hand its pack in twice
                    pending.discard(index)
                    yield packs[index], content
            thread.join()
        finally:
            if thread.is_alive():  # left early: the trials still training stop at their next chunk
                cancel.set.remote()
                stop.event.set()
                thread.join(timeout=_STOP_WAIT_S)
            inbox.shutdown(force=True)
            ray.kill(cancel)
        if "error" in fit:
            raise ExecutorError(f"Ray Tune stopped: {fit['error']}") from fit["error"]
        if pending:
            raise ExecutorError(self._failure(packs, pending, fit.get("grid")))

    def _tuner(self, packs: list[Pack], inbox: Queue, cancel, stop: _StopAll) -> tune.Tuner:
        trainable = tune.with_parameters(
            _train_pack,
            packs=packs,
            inbox=inbox,
            cancel=cancel,
            device=self.device,
            threads=max(1, int(self.resources["CPU"])),
            train=self.train,
        )
        return tune.Tuner(
            tune.with_resources(trainable, self.resources),
            param_space={"pack": tune.grid_search(list(range(len(packs))))},
            # A reused actor keeps torch imported from one pack to the next; a failed trial gets a new one.
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"sweeper-{uuid.uuid4().hex[:12]}",
                storage_path=self._storage,
                verbose=0,
                stop=stop,
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                callbacks=[_FailureLines([_label(i, p) for i, p in enumerate(packs)])],
            ),
        )

    def _failure(self, packs: list[Pack], pending: set[int], grid) -> str:
        errors = {r.config["pack"]: r.error for r in grid or () if r.error is not None and r.config}
        first = min(pending)
        why = _reason(errors[first]) if first in errors else "no result came back"
        return (
            f"{len(pending)} of {len(packs)} packs failed after {self.max_failures + 1} attempts each "
            f"(finished packs are stored; run the same command to retry the rest); first: "
            f"{_label(first, packs[first])}: {why}"
        )

    def close(self) -> None:
        """Removes Tune's scratch directory; shuts down the Ray this executor started, never a cluster."""
        if self._storage is not None:
            shutil.rmtree(self._storage, ignore_errors=True)
            self._storage = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


def _unreachable(address: str, timeout_s: float = 10.0) -> str | None:
    """Why nothing answers at a Ray head's ``host:port`` (None if something does, or not such an address)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return None  # "auto", "ray://..." and the like: Ray's to resolve
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _fit(tuner: tune.Tuner, out: dict) -> None:
    try:
        out["grid"] = tuner.fit()
    except BaseException as exc:  # handed over to the thread that consumes the results
        out["error"] = exc


def _label(index: int, pack: Pack) -> str:
    return f"pack {index} ({pack.task_name}, {len(pack)} members, trials {sorted(set(pack.trial_ids))})"


def _trial_error(trial) -> BaseException | None:
    """The exception of a trial's last failed attempt, as Tune just wrote it next to the trial."""
    path = trial.pickled_error_file
    try:
        with open(path, "rb") as f:
            return ray.cloudpickle.load(f)
    except Exception:  # no file (yet), or one this process cannot unpickle
        return None


def _reason(error: BaseException | None) -> str:
    """One line on why an attempt failed: the exception the pack raised, or how its worker died."""
    if error is None:
        return "unknown"
    cause = getattr(error, "cause", None)  # RayTaskError: the exception raised in the trial
    if isinstance(cause, BaseException):
        error = cause
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
