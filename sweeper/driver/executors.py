"""Executors run packs somewhere and hand back their results; they know nothing about noise."""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import torch

from sweeper.driver.planner import Pack
from sweeper.engine.population import train_population
from sweeper.records import RunResult
from sweeper.errors import ExecutorError


class Executor(Protocol):
    """Runs packs and yields ``(pack, results)`` as each completes, in any order.

    Optional members the driver uses when present: ``pack_size(task, n_train, n_test)`` (packs sized
    for the executor's workers rather than this machine) and ``parallel_packs`` (packs it trains at
    once, so a round of configurations fills them).
    """

    #: The device type packs are sized for ("cpu" or "cuda").
    device: str

    def run(self, packs: Iterable[Pack]) -> Iterator[tuple[Pack, list[RunResult]]]: ...

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

    def run(self, packs: Iterable[Pack]) -> Iterator[tuple[Pack, list[RunResult]]]:
        for pack in packs:
            yield pack, train_population(pack.task, pack.members, self.device)

    def close(self) -> None:
        pass
