"""Executors run packs somewhere and hand back their results; they know nothing about noise."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

import torch

from sweeper.driver.planner import Pack
from sweeper.engine import sizing
from sweeper.engine.population import train_population
from sweeper.errors import ExecutorError
from sweeper.records import RunResult
from sweeper.tasks.spec import TaskSpec

#: What ``--device`` may say; the command line refuses anything else, so executors take these only.
DEVICES = ("auto", "cpu", "cuda")


#: Told, while a pack trains, the member-epochs it has trained so far (``OnEpochs`` of the engine).
PackEpochs = Callable[[Pack, int], None]


class Executor:
    """Runs packs and yields ``(pack, results)`` as each completes, in any order, telling ``on_epochs``
    (when given) how far each pack is as it trains.

    The defaults are those of an executor that trains one pack at a time on this machine; one that
    trains elsewhere, or several packs at once, overrides ``pack_size`` and ``parallel_packs``.
    """

    #: The device type packs are sized for and trained on ("cpu" or "cuda").
    device: str
    #: How many packs it trains at once: the driver asks for configurations enough to fill them.
    parallel_packs: int = 1

    def pack_size(self, task: TaskSpec, n_train: int, n_test: int) -> int:
        """Members per pack: the engine's memory rule for this machine's ``device``."""
        return sizing.pack_size(task, self.device, n_train, n_test)

    def run(self, packs: Iterable[Pack], on_epochs: PackEpochs | None = None) -> Iterator[tuple[Pack, list[RunResult]]]:
        raise NotImplementedError

    def close(self) -> None:
        """Lets go of what the executor holds (a Ray it started, scratch files)."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ExecutorError("--device cuda: no CUDA GPU is visible to PyTorch; allowed here: auto, cpu")
    return device


class LocalExecutor(Executor):
    """Trains packs one after another in this process."""

    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)

    def run(self, packs: Iterable[Pack], on_epochs: PackEpochs | None = None) -> Iterator[tuple[Pack, list[RunResult]]]:
        for pack in packs:
            told = None if on_epochs is None else partial(on_epochs, pack)
            yield pack, train_population(pack.task, pack.members, self.device, on_epochs=told)
