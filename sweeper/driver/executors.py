"""Executors run packs somewhere and hand back their results; they know nothing about noise."""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterable, Iterator, Protocol

import torch

from sweeper.driver.planner import Pack
from sweeper.engine.population import train_population
from sweeper.engine.result import RunResult
from sweeper.errors import ExecutorError


#: Told, while a pack trains, the member-epochs it has trained so far (``OnEpochs`` of the engine).
PackEpochs = Callable[[Pack, int], None]


class Executor(Protocol):
    """Runs packs and yields ``(pack, results)`` as each completes, in any order, telling ``on_epochs``
    (when given) how far each pack is as it trains.

    Optional members the driver uses when present: ``pack_size(task, n_train, n_test)`` (packs sized
    for the executor's workers rather than this machine) and ``parallel_packs`` (packs it trains at
    once, so a round of configurations fills them).
    """

    #: The device type packs are sized for ("cpu" or "cuda").
    device: str

    def run(self, packs: Iterable[Pack], on_epochs: PackEpochs | None = None
            ) -> Iterator[tuple[Pack, list[RunResult]]]: ...

    def close(self) -> None: ...


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ExecutorError("--device cuda: no CUDA GPU is visible to PyTorch; allowed here: auto, cpu")
    if device not in ("cpu", "cuda"):
        raise ExecutorError(f"--device {device!r} is not allowed; allowed: auto, cpu, cuda")
    return device


class LocalExecutor:
    """Trains packs one after another in this process."""

    def __init__(self, device: str = "auto"):
        self.device = resolve_device(device)

    def run(self, packs: Iterable[Pack], on_epochs: PackEpochs | None = None
            ) -> Iterator[tuple[Pack, list[RunResult]]]:
        for pack in packs:
            told = None if on_epochs is None else partial(on_epochs, pack)
            yield pack, train_population(pack.task, pack.members, self.device, on_epochs=told)

    def close(self) -> None:
        pass
