"""The mlp family: dense layers of ``task.hidden`` sizes on the flat features, then the output layer.

Parameters, canonical order: ``dense{i}.weight (h_i, h_{i-1})``, ``dense{i}.bias (h_i,)``, ...,
``out.weight (n_out, h_last)``, ``out.bias (n_out,)``. Noise sites: ``input``; ``pre_activation`` and
``post_activation`` at every hidden layer; ``weights`` (every weight matrix, not the biases).
The dense layers here are also the head the cnn and rnn end in (``dense_shapes``, ``dense_layers``, ``dense_head``,
``dense_forward``).

The reference model (``Reference``) and the stacked program (``forward``) below compute the same
thing operation for operation, drawing noise in the same order: input, then layer by layer its
weights, pre- and post-activation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sweeper.noise.pack import PackNoise
from sweeper.tasks.families import _layers
from sweeper.tasks.families._layers import ACTIVATIONS, Params
from sweeper.tasks.families._reference import ReferenceModel
from sweeper.tasks.spec import TaskSpec

#: The fused C engine (sweeper.engine.fused) trains this family: dense layers only.
PLAIN_DENSE = True


def dense_shapes(hidden: tuple[int, ...], width: int, n_out: int) -> dict[str, tuple[int, ...]]:
    """Dense layers of sizes ``hidden`` on ``width`` features, then the output layer."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, h in enumerate(hidden):
        shapes[f"dense{i}.weight"], shapes[f"dense{i}.bias"] = (h, width), (h,)
        width = h
    shapes["out.weight"], shapes["out.bias"] = (n_out, width), (n_out,)
    return shapes


def param_shapes(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> dict[str, tuple[int, ...]]:
    """Every parameter, in canonical order, with its ``nn.Module`` shape."""
    return dense_shapes(task.hidden, math.prod(input_shape), n_out)


def init_params(task: TaskSpec, input_shape: tuple[int, ...], n_out: int, seed: int) -> dict[str, torch.Tensor]:
    """One member's initial parameters, drawn from its init seed's Philox stream in canonical order."""
    return _layers.init_params(task, param_shapes(task, input_shape, n_out), seed)


def activation_width(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> int:
    """Floats per sample a forward pass keeps: the input and every layer's output."""
    return sum(task.hidden) + n_out + math.prod(input_shape)


def dense_layers(shapes: dict[str, tuple[int, ...]]) -> dict[str, nn.Module]:
    """The ``nn.Linear`` layers of the dense parameters in ``shapes``, by canonical name."""
    return {
        name[: -len(".weight")]: nn.Linear(*shape[::-1])
        for name, shape in shapes.items()
        if name.startswith(("dense", "out")) and name.endswith(".weight")
    }


class Reference(ReferenceModel):
    def __init__(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int, *noise, **named_noise):
        # noise: ReferenceModel's (config, generator, total_steps, input_std), as FamilyCode.Reference takes them
        layers = dense_layers(param_shapes(task, input_shape, n_out))
        super().__init__(task, layers, len(task.hidden), *noise, **named_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense_head(self, self.input_noise(x), 0)


def dense_head(model: ReferenceModel, x: torch.Tensor, i: int) -> torch.Tensor:
    """The dense layers and the output layer on ``x: (batch, ...)``; ``i``: the first dense layer's site."""
    x = x.flatten(1)
    j = 0
    while f"dense{j}" in model.layers:
        x = model.hidden(i + j, model.layers[f"dense{j}"](x))
        j += 1
    return model.layers["out"](x)


def forward(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None = None) -> torch.Tensor:
    """Outputs ``(members, batch, n_out)`` for inputs ``x: (members, batch, features)``; ``noise=None``
    (evaluation) draws and adds nothing."""
    return dense_forward(task, params, _layers.site(noise, "input", x), noise)


def dense_forward(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None) -> torch.Tensor:
    """``dense_head`` stacked: the dense layers and the output layer on ``x: (members, batch, ...)``."""
    act = ACTIVATIONS[task.activation]
    x = x.flatten(2)
    i = 0
    while f"dense{i}.weight" in params:
        w = _layers.site(noise, "weights", params[f"dense{i}.weight"])
        x = _layers.hidden(noise, act, _layers.linear(x, w, params[f"dense{i}.bias"]))
        i += 1
    return _layers.linear(x, _layers.site(noise, "weights", params["out.weight"]), params["out.bias"])
