"""The rnn family: an LSTM or GRU (``task.cell``) of one hidden size over the sequence's time steps, then
the output layer on the last hidden state.

Parameters, canonical order (PyTorch's layout and gate order, i f g o / r z n):
``ih.weight (gates·h, F)``, ``ih.bias (gates·h,)``, ``hh.weight (gates·h, h)``, ``hh.bias (gates·h,)``,
``out.weight (n_out, h)``, ``out.bias (n_out,)``. Noise sites: ``input``; ``pre_activation``: the cell's
input projection W_ih·x_t + b_ih at every time step (every gate's input part); ``post_activation``: the
last hidden state handed to the output layer; ``weights``: ``ih.weight``, ``hh.weight`` and ``out.weight``,
one draw per forward pass shared by every time step.

The reference model (``Reference``) and the stacked program (``forward``) below compute the same
thing operation for operation, drawing noise in the same order: input, the recurrent weights, the
pre-activation of each time step, the post-activation, then the output layer's weights.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from sweeper.noise.pack import PackNoise
from sweeper.tasks.families import _layers, mlp
from sweeper.tasks.families._layers import Params
from sweeper.tasks.families._reference import ReferenceModel
from sweeper.tasks.spec import TaskSpec

PLAIN_DENSE = False
GATES = {"lstm": 4, "gru": 3}


def param_shapes(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> dict[str, tuple[int, ...]]:
    """Every parameter, in canonical order, with its ``nn.Module`` shape; ``input_shape``: (T, F)."""
    features, hidden = input_shape[-1], task.hidden[0]
    g = GATES[task.cell] * hidden
    shapes = {"ih.weight": (g, features), "ih.bias": (g,), "hh.weight": (g, hidden), "hh.bias": (g,)}
    return shapes | mlp.dense_shapes((), hidden, n_out)


def init_params(task: TaskSpec, input_shape: tuple[int, ...], n_out: int, seed: int) -> dict[str, torch.Tensor]:
    """One member's initial parameters, drawn from its init seed's Philox stream in canonical order.

    ``keras``: as every family, and Keras's recurrent ones: an orthogonal recurrent kernel and a
    forget-gate bias of 1 (``unit_forget_bias``). ``torch``: as ``nn.LSTM``/``nn.GRU``, every recurrent
    parameter U(-1/√h, 1/√h). (The orthogonal kernel is torch's QR of normals from a ``torch.Generator``
    seeded with ``seed``: LAPACK's bits, not the same on every CPU.)
    """
    h = task.hidden[0]

    def recurrent(name: str, t: torch.Tensor, u: torch.Tensor) -> bool:
        if not name.startswith(("ih.", "hh.")):
            return False
        if task.init == "torch":
            t.copy_(_layers.symmetric(u, 1.0 / math.sqrt(h)))
        elif name == "hh.weight":
            # Keras makes the (hidden, gates·hidden) recurrent kernel orthogonal; ours is its transpose.
            nn.init.orthogonal_(t.T, generator=torch.Generator().manual_seed(seed))
        elif name == "ih.bias" and task.cell == "lstm":
            t.zero_()
            t[h : 2 * h] = 1.0  # gate order i, f, g, o: the forget gate starts open
        else:
            return False
        return True

    return _layers.init_params(task, param_shapes(task, input_shape, n_out), seed, own=recurrent)


def activation_width(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> int:
    """Floats per sample a forward pass keeps: gates, cell and hidden state at every step, and the output."""
    return input_shape[0] * GATES[task.cell] * task.hidden[0] * 3 + mlp.activation_width(task, input_shape, n_out)


def cell_step(cell: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One LSTM or GRU step from input and hidden projections (PyTorch's equations and gate order)."""
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, c


class Reference(ReferenceModel):
    def __init__(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int, *noise, **named_noise):
        # noise: ReferenceModel's (config, generator, total_steps, input_std), as FamilyCode.Reference takes them
        shapes = param_shapes(task, input_shape, n_out)
        (g, f), h = shapes["ih.weight"], task.hidden[0]
        layers = {"ih": nn.Linear(f, g), "hh": nn.Linear(h, g)} | mlp.dense_layers(shapes)
        super().__init__(task, layers, 1, *noise, **named_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for ``x: (batch, time, features)``: the output layer on the last hidden state."""
        x = self.input_noise(x)
        ih, hh = self.layers["ih"], self.layers["hh"]
        w_ih, w_hh = ih.weight, hh.weight  # read once: one weight-noise draw per step
        h = x.new_zeros(x.shape[0], self.task.hidden[0])
        c = torch.zeros_like(h)
        pre = self.pre[0]
        # Every time step of one forward pass is the same optimizer step of the noise schedule.
        with pre.one_step() if hasattr(pre, "one_step") else contextlib.nullcontext():
            for t in range(x.shape[1]):
                gi = pre(F.linear(x[:, t], w_ih, ih.bias))
                gh = F.linear(h, w_hh, hh.bias)
                h, c = cell_step(self.task.cell, gi, gh, h, c)
        return mlp.dense_head(self, self.post[0](h), 1)


def forward(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None = None) -> torch.Tensor:
    """Outputs ``(members, batch, n_out)`` for inputs ``x: (members, batch, time, features)``; ``noise=None``
    (evaluation) draws and adds nothing."""
    x = _layers.site(noise, "input", x)
    w_ih = _layers.site(noise, "weights", params["ih.weight"])
    w_hh = _layers.site(noise, "weights", params["hh.weight"])
    h = x.new_zeros(x.shape[0], x.shape[1], task.hidden[0])  # (members, batch, hidden)
    c = torch.zeros_like(h)
    for t in range(x.shape[2]):
        gi = _layers.site(noise, "pre_activation", _layers.linear(x[:, :, t], w_ih, params["ih.bias"]))
        gh = _layers.linear(h, w_hh, params["hh.bias"])
        h, c = cell_step(task.cell, gi, gh, h, c)
    return mlp.dense_forward(task, params, _layers.site(noise, "post_activation", h), noise)
