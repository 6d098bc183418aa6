"""The records that cross layers: what the driver hands the engine, what the engine hands back, what the
store keeps and reads back.

Each layer imports these and none of the others: the store knows what a run's result holds without
importing the engine that computed it, and the engine trains members without knowing where they are
stored (as Optuna keeps ``FrozenTrial`` apart from both its storages and its samplers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from sweeper.noise.spec import NoiseConfig, NoiseSpec, make_config

#: The fields a run or a sweep records of what trained or drove it, in the order listings show them.
MACHINE_FIELDS = ("sweeper_version", "torch_version", "device", "cpu", "gpu", "host")


@dataclass(frozen=True)
class Member:
    """One run: a noise configuration at one repeat, with the seeds of its three random streams."""

    config: NoiseConfig
    repeat: int
    data_seed: int
    init_seed: int
    noise_seed: int


@dataclass(frozen=True)
class Machine:
    """The software and hardware a run was trained with (or a sweep was driven from); measured by
    ``sweeper.engine.machine.this_machine``."""

    sweeper_version: str
    torch_version: str
    device: str  # the device type: "cpu" or "cuda"
    cpu: str | None  # the CPU's model name
    gpu: str | None  # the GPU's name; None on the CPU
    host: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    """The outcome of training one member.

    ``final`` holds the metrics after the last epoch (``train_loss``, ``val_loss``, ``test_loss``, and
    ``*_accuracy`` and ``test_ece``, or ``*_mse`` and ``*_r2``: the columns of ``sweeper.metrics``; no
    ``val_`` ones without a validation part), and as ``early_<name>`` the validation and test metrics at
    ``best_epoch``; NaN when the member diverged. ``curves`` maps the last-epoch names to arrays over
    ``curve_epochs``.
    """

    final: dict[str, float]
    curve_epochs: np.ndarray  # (n_logs,) epochs after which metrics were logged, 1-based
    curves: dict[str, np.ndarray]  # name -> (n_logs,)
    best_epoch: int | None  # logged epoch of the best validation metric (test without one); None if none finite
    diverged: bool = False
    diverged_epoch: int | None = None  # first epoch whose loss or parameters were not finite
    wall_time: float = 0.0  # seconds of the pack divided by its members
    device: str = "cpu"
    engine: str | None = None  # which engine trained it: "fused", "stacked" or "reference"
    machine: Machine | None = None  # measured where it trained
    failed_to_learn: bool | None = None  # see sweeper.engine.chance.failed_to_learn; None when it diverged
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRef:
    """A stored trial as programs need it: row id, number in its sweep, Optuna trial, configuration."""

    id: int
    number: int
    optuna_trial_id: int | None
    config: NoiseConfig


def stored_config(sites: Iterable[dict] | None) -> NoiseConfig:
    """The noise configuration of a stored trial, from its sites as the store keeps them (``config_json``,
    a listing's ``params``): the one way back from stored text to a configuration.

    A key left out or None takes NoiseSpec's default; TypeError names a key that is not a site's,
    ValueError a value NoiseSpec refuses.
    """
    return make_config(NoiseSpec(**{k: v for k, v in site.items() if v is not None}) for site in sites or ())


def describe(ran: dict) -> str:
    """What ran, in words: ``fused engine on cpu (AMD EPYC 7763), sweeper 0.2.0, torch 2.13.0, host w1``.

    ``ran`` holds the fields of a Machine, and ``engine`` where a run's; None where unknown.
    """
    if all(ran.get(key) is None for key in ("engine", "sweeper_version", "torch_version", "host")):
        return "not recorded (stored before sweeper recorded what ran)"
    named = ran.get("gpu") or ran.get("cpu")
    where = " ".join(part for part in (ran.get("device"), f"({named})" if named else None) if part)
    engine = f"{ran['engine']} engine on " if ran.get("engine") else ""
    return ", ".join(
        part
        for part in (
            engine + (where or "an unrecorded device"),
            f"sweeper {ran['sweeper_version']}" if ran.get("sweeper_version") else None,
            f"torch {ran['torch_version']}" if ran.get("torch_version") else None,
            f"host {ran['host']}" if ran.get("host") else None,
        )
        if part
    )
