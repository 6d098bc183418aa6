"""The cnn family: 3x3 convolutions of ``task.channels`` channels, each followed by the activation and 2x2
max-pooling, then the mlp's dense layers of ``task.hidden`` sizes and the output layer.

Parameters, canonical order: ``conv{i}.weight (c_i, c_{i-1}, 3, 3)``, ``conv{i}.bias (c_i,)``, then the
mlp's ``dense{i}.*`` and ``out.*`` on the flattened last feature map. Noise sites: ``input``;
``pre_activation`` and ``post_activation`` at every convolution (before pooling) and every dense hidden
layer; ``weights`` (every kernel and weight matrix, not the biases).

The reference model (``Reference``) and the stacked program (``forward``) below compute the same
thing operation for operation, drawing noise in the same order: input, then layer by layer its
weights, pre- and post-activation. The stacked program runs every member's kernels as one grouped
convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweeper.noise.pack import PackNoise
from sweeper.tasks.families import _layers, mlp
from sweeper.tasks.families._layers import ACTIVATIONS, Params
from sweeper.tasks.families._reference import ReferenceModel
from sweeper.tasks.spec import TaskSpec

PLAIN_DENSE = False


def param_shapes(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> dict[str, tuple[int, ...]]:
    """Every parameter, in canonical order, with its ``nn.Module`` shape; ``input_shape``: (C, H, W)."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in, h, w = input_shape
    for i, c in enumerate(task.channels):
        shapes[f"conv{i}.weight"] = (c, c_in, 3, 3)
        shapes[f"conv{i}.bias"] = (c,)
        c_in, h, w = c, h // 2, w // 2
    return shapes | mlp.dense_shapes(task.hidden, c_in * h * w, n_out)


def init_params(task: TaskSpec, input_shape: tuple[int, ...], n_out: int, seed: int) -> dict[str, torch.Tensor]:
    """One member's initial parameters, drawn from its init seed's Philox stream in canonical order."""
    return _layers.init_params(task, param_shapes(task, input_shape, n_out), seed)


def activation_width(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> int:
    """Floats per sample a forward pass keeps: every feature map (channels x pixels) and the mlp head's."""
    width, pixels = 0, input_shape[1] * input_shape[2]
    for c in task.channels:
        width += c * pixels
        pixels //= 4
    return width + mlp.activation_width(task, input_shape, n_out)


class Reference(ReferenceModel):
    def __init__(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int, *noise, **named_noise):
        # noise: ReferenceModel's (config, generator, total_steps, input_std), as FamilyCode.Reference takes them
        shapes = param_shapes(task, input_shape, n_out)
        convs = {
            f"conv{i}": nn.Conv2d(shapes[f"conv{i}.weight"][1], c, 3, padding=1) for i, c in enumerate(task.channels)
        }
        n_hidden = len(task.channels) + len(task.hidden)
        super().__init__(task, convs | mlp.dense_layers(shapes), n_hidden, *noise, **named_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_noise(x)
        for i in range(len(self.task.channels)):
            x = F.max_pool2d(self.hidden(i, self.layers[f"conv{i}"](x)), 2)
        return mlp.dense_head(self, x, len(self.task.channels))


def forward(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None = None) -> torch.Tensor:
    """Outputs ``(members, batch, n_out)`` for inputs ``x: (members, batch, C, H, W)``; ``noise=None``
    (evaluation) draws and adds nothing."""
    act = ACTIVATIONS[task.activation]
    x = _layers.site(noise, "input", x)
    for i in range(len(task.channels)):
        w = _layers.site(noise, "weights", params[f"conv{i}.weight"])
        z = _layers.hidden(noise, act, _layers.conv(x, w, params[f"conv{i}.bias"]))
        p, n = z.shape[:2]
        x = F.max_pool2d(z.reshape(p * n, *z.shape[2:]), 2).view(p, n, *z.shape[2:3], z.shape[3] // 2, z.shape[4] // 2)
    return mlp.dense_forward(task, params, x, noise)
