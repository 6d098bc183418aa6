"""What the engine takes and gives back: members in, one result per member out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sweeper.noise.spec import NoiseConfig

if TYPE_CHECKING:
    from sweeper.engine.machine import Machine


@dataclass(frozen=True)
class Member:
    """One run: a noise configuration at one repeat, with the seeds of its three random streams."""

    config: NoiseConfig
    repeat: int
    data_seed: int
    init_seed: int
    noise_seed: int


@dataclass
class RunResult:
    """The outcome of training one member.

    ``final`` holds the metrics after the last epoch (``train_loss``, ``val_loss``, ``test_loss``, and
    ``*_accuracy`` and ``test_ece``, or ``*_mse`` and ``*_r2``; no ``val_`` ones without a validation
    part), and as ``early_<name>`` the validation and test metrics at ``best_epoch``; NaN when the
    member diverged. ``curves`` maps the last-epoch names to arrays over ``curve_epochs``.
    """

    final: dict[str, float]
    curve_epochs: np.ndarray  # (n_logs,) epochs after which metrics were logged, 1-based
    curves: dict[str, np.ndarray]  # name -> (n_logs,)
    best_epoch: int | None  # logged epoch of the best validation metric (test without one); None if none finite
    diverged: bool = False
    diverged_epoch: int | None = None  # first epoch whose loss or parameters were not finite
    wall_time: float = 0.0  # seconds of the pack divided by its members
    device: str = "cpu"
    engine: str | None = None  # what trained it: "fused", "stacked" or "reference"
    machine: Machine | None = None  # measured where it trained
    extra: dict = field(default_factory=dict)
