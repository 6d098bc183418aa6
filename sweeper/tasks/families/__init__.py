"""The model families a task can name: one module each, and one registry line each.

A family's module (``mlp.py``, ``cnn.py``, ``rnn.py``) holds everything about its model side by side:
parameter shapes, initialisation, the single-model reference (``Reference``, an ``nn.Module``), the
stacked program over a population (``forward``) that mirrors it operation for operation, and the
activation width the memory estimate needs (``FamilyCode`` below lists them). Adding a family is
adding a module and its line in ``_FAMILIES``.

Noise sites (``sweeper.noise``): ``input``, ``pre_activation`` / ``post_activation`` (each family's
module says where), ``weights`` (every weight matrix and kernel, not the biases), ``gradients`` (every
parameter), ``targets``. Both forms draw in one fixed order per training step: targets, input, then
layer by layer its weights, pre- and post-activation, then the gradients after the backward pass, in
canonical parameter order.

The registry line holds what checking a search space needs (the family's input rule: which sample
shapes it takes and how it sees them; its rule on ``hidden``), so that the check reads no module and
imports no torch; ``Family.code`` imports the module when a model is built.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from sweeper.noise.pack import PackNoise
    from sweeper.noise.spec import NoiseConfig
    from sweeper.tasks.spec import TaskSpec


@dataclass(frozen=True)
class Inputs:
    """Which samples a family takes: ``view`` maps a data set's sample shape to the shape the model
    reads (the same values, reshaped), or None where the family cannot read such samples."""

    #: What it takes, for messages: "images, samples of shape (H, W) or (C, H, W)".
    what: str
    view: Callable[[tuple[int, ...]], tuple[int, ...] | None]


#: Any sample, flattened to its features.
FLAT = Inputs("any samples, read as flat features", lambda shape: (math.prod(shape),))
#: Images: an (H, W) image is one channel.
IMAGES = Inputs(
    "images, samples of shape (H, W) or (C, H, W)",
    lambda shape: (1, *shape) if len(shape) == 2 else shape if len(shape) == 3 else None,
)
#: Sequences of T steps of F features; an (H, W) image is read row by row.
SEQUENCES = Inputs("sequences, samples of shape (T, F)", lambda shape: shape if len(shape) == 2 else None)


class FamilyCode(Protocol):
    """What a family's module defines. ``input_shape`` is one sample as the model reads it (the family's
    input rule applied), ``n_out`` the model's outputs; parameters are named and ordered canonically:
    ``param_shapes``, ``init_params``, ``Reference.load_params`` and ``forward`` agree on them."""

    #: The model is dense layers of ``task.hidden`` sizes and an output layer, nothing else: what the
    #: fused C engine (sweeper.engine.fused) trains.
    PLAIN_DENSE: bool

    def param_shapes(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> dict[str, tuple[int, ...]]:
        """Every parameter, in canonical order, with its ``nn.Module`` shape."""

    def init_params(
        self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int, seed: int
    ) -> dict[str, torch.Tensor]:
        """One member's initial parameters, drawn in canonical order from the Philox stream keyed by its
        init ``seed`` (``_layers.init_params``)."""

    def activation_width(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> int:
        """Floats per sample one forward pass keeps (the memory estimate, sweeper.engine.sizing)."""

    def Reference(
        self,
        task: TaskSpec,
        input_shape: tuple[int, ...],
        n_out: int,
        config: NoiseConfig = (),
        generator: torch.Generator | None = None,
        total_steps: int | None = None,
        input_std: torch.Tensor | None = None,
    ) -> nn.Module:
        """One member's model with the noise of ``config`` at its sites, drawn from ``generator``: an
        ``nn.Module`` with ``load_params(params)``, ``canonical_parameters()`` and ``total_steps``."""

    def forward(
        self, task: TaskSpec, params: dict[str, torch.Tensor], x: torch.Tensor, noise: PackNoise | None = None
    ) -> torch.Tensor:
        """The stacked program: outputs ``(members, batch, n_out)`` for ``x: (members, batch, *input_shape)``
        and parameters ``name -> (members, *shape)``; ``noise=None`` (evaluation) draws nothing."""


@dataclass(frozen=True)
class Family:
    """One model family's registry line: its name (``task.model``), what data it takes, its module."""

    name: str
    inputs: Inputs
    #: The module that defines the family (a ``FamilyCode``).
    module: str
    #: How many sizes ``task.hidden`` must hold and what they are; None: any number (dense layers).
    hidden: tuple[int, str] | None = None

    @property
    def code(self) -> FamilyCode:
        return importlib.import_module(self.module)


_FAMILIES = (
    Family("mlp", FLAT, "sweeper.tasks.families.mlp"),
    Family("cnn", IMAGES, "sweeper.tasks.families.cnn"),
    Family("rnn", SEQUENCES, "sweeper.tasks.families.rnn", hidden=(1, "one recurrent hidden size")),
)
#: Name -> family, as ``task.model`` names it.
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}


def family(task: TaskSpec) -> Family:
    """The family of the task's model (a built-in one: see ``inputs`` for a user's own model)."""
    return FAMILIES[task.model]


#: A user's own model (``task.model: {factory: ...}``) reads samples as the data set gives them. It is no
#: family of this registry: its code is the factory's ``nn.Module``, which ``sweeper.engine.functional``
#: trains with torch.func (no canonical parameters known before it is built, no stacked program).
AS_GIVEN = Inputs("any samples, as the data set gives them", lambda shape: tuple(shape))


def inputs(task: TaskSpec) -> Inputs:
    """How the task's model reads a data set's samples: its family's rule, or as given to a user's model."""
    return AS_GIVEN if task.user_model is not None else family(task).inputs
