"""Model families with named noise sites, as plain single-model PyTorch modules.

These are the reference models: ordinary ``nn.Module`` code a user would write, with sweeper's public
noise layers at the sites a configuration names. The engine's stacked population mirrors them; at
zero noise (and, with per-member generators, at any noise) it must reproduce them exactly.

Noise sites: ``input`` (the model input); ``pre_activation`` / ``post_activation`` (every hidden layer:
dense and convolutional layers before / after their nonlinearity; for the rnn, ``pre_activation`` is
the cell's input projection W_ih·x_t + b_ih at every time step, i.e. every gate's input part, and
``post_activation`` is the last hidden state handed to the output layer); ``weights`` (every weight
matrix and kernel, not the biases); ``gradients`` (every parameter); ``targets``.

Random draws happen in one fixed order per training step: targets, input, then layer by layer its
weights, pre- and post-activation, then the gradients after the backward pass.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from sweeper.noise.layers import GradientNoise, LabelFlip, WeightNoise, noise_layer
from sweeper.noise.spec import NoiseConfig, check_target_kind
from sweeper.tasks.spec import TaskSpec

ACTIVATIONS = {
    "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "elu": F.elu,
    "leaky_relu": F.leaky_relu,
}
GATES = {"lstm": 4, "gru": 3}


def param_shapes(task: TaskSpec, input_shape: tuple[int, ...], n_out: int) -> dict[str, tuple[int, ...]]:
    """Every parameter of the task's model, in canonical order, with its ``nn.Module`` shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    width = math.prod(input_shape)
    if task.model == "cnn":
        c_in, h, w = input_shape
        for i, c in enumerate(task.channels):
            shapes[f"conv{i}.weight"] = (c, c_in, 3, 3)
            shapes[f"conv{i}.bias"] = (c,)
            c_in, h, w = c, h // 2, w // 2
        width = c_in * h * w
    if task.model == "rnn":
        features, hidden = input_shape[-1], task.hidden[0]
        g = GATES[task.cell] * hidden
        shapes.update({"ih.weight": (g, features), "ih.bias": (g,), "hh.weight": (g, hidden), "hh.bias": (g,)})
        width, dense = hidden, ()
    else:
        dense = task.hidden
    for i, h in enumerate(dense):
        shapes[f"dense{i}.weight"], shapes[f"dense{i}.bias"] = (h, width), (h,)
        width = h
    shapes["out.weight"], shapes["out.bias"] = (n_out, width), (n_out,)
    return shapes


def init_params(task: TaskSpec, input_shape: tuple[int, ...], n_out: int,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One member's initial parameters, drawn from ``generator`` in canonical order.

    ``keras``: Glorot-uniform weights, zero biases, orthogonal recurrent weights and a forget-gate
    bias of 1 (Keras's ``unit_forget_bias``). ``torch``: PyTorch's defaults, U(-1/√fan_in, 1/√fan_in).
    """
    params = {}
    for name, shape in param_shapes(task, input_shape, n_out).items():
        t = torch.empty(shape)
        if task.init == "keras":
            if name == "hh.weight":
                # Keras makes the (hidden, gates·hidden) recurrent kernel orthogonal; ours is its transpose.
                nn.init.orthogonal_(t.T, generator=generator)
            elif name.endswith("weight"):
                nn.init.xavier_uniform_(t, generator=generator)
            else:
                t.zero_()
                if name == "ih.bias" and task.cell == "lstm":
                    h = task.hidden[0]
                    t[h:2 * h] = 1.0  # gate order i, f, g, o: the forget gate starts open
        else:
            fan_in = task.hidden[0] if name.startswith(("ih.", "hh.")) else math.prod(shape[1:]) if len(shape) > 1 else None
            if fan_in is None:  # a bias: fan_in of its layer's weight
                weight_shape = param_shapes(task, input_shape, n_out)[name.replace("bias", "weight")]
                fan_in = math.prod(weight_shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            t.uniform_(-bound, bound, generator=generator)
        params[name] = t
    return params


def _site(config: NoiseConfig, placement: str, generator: torch.Generator | None, total_steps: int | None,
          feature_std: torch.Tensor | None = None) -> nn.Module:
    spec = next((s for s in config if s.placement == placement and s.std > 0), None)
    if spec is None:
        return nn.Identity()
    return noise_layer(spec, generator, total_steps=total_steps, feature_std=feature_std)


class ReferenceModel(nn.Module):
    """The task's model for one member, with the noise of ``config`` at its sites.

    ``total_steps``: the run's optimizer steps (for the linear and cosine schedules); ``input_std``: the
    per-feature standard deviations of the training inputs that ``relative`` input noise is scaled by.
    """

    def __init__(self, task: TaskSpec, input_shape: tuple[int, ...], n_out: int, config: NoiseConfig = (),
                 generator: torch.Generator | None = None, total_steps: int | None = None,
                 input_std: torch.Tensor | None = None):
        super().__init__()
        self.task = task
        self.act = ACTIVATIONS[task.activation]
        self.input_noise = _site(config, "input", generator, total_steps, input_std)
        shapes = param_shapes(task, input_shape, n_out)
        self.convs = nn.ModuleList(
            nn.Conv2d(shapes[f"conv{i}.weight"][1], c, 3, padding=1) for i, c in enumerate(task.channels)
        ) if task.model == "cnn" else nn.ModuleList()
        if task.model == "rnn":
            (g, f), h = shapes["ih.weight"], task.hidden[0]
            self.ih, self.hh = nn.Linear(f, g), nn.Linear(h, g)
        n_dense = 0 if task.model == "rnn" else len(task.hidden)
        self.dense = nn.ModuleList(nn.Linear(*shapes[f"dense{i}.weight"][::-1]) for i in range(n_dense))
        self.out = nn.Linear(*shapes["out.weight"][::-1])
        n_hidden = len(self.convs) + len(self.dense) + (task.model == "rnn")
        self.pre = nn.ModuleList(_site(config, "pre_activation", generator, total_steps) for _ in range(n_hidden))
        self.post = nn.ModuleList(_site(config, "post_activation", generator, total_steps) for _ in range(n_hidden))
        # Names follow param_shapes: the rnn's ih/hh are attributes, convs/dense are lists.
        self._rename = {f"convs.{i}.": f"conv{i}." for i in range(len(self.convs))}
        self._rename.update({f"dense.{i}.": f"dense{i}." for i in range(len(self.dense))})
        self.weight_noise = next((s for s in config if s.placement == "weights" and s.std > 0), None)
        self.generator = generator
        self.total_steps = total_steps

    def load_params(self, params: dict[str, torch.Tensor]) -> None:
        """Loads canonical parameters, then wraps the weights in weight noise if the config asks for it."""
        inverse = {v: k for k, v in self._rename.items()}
        state = {}
        for name, value in params.items():
            prefix = name.split(".")[0] + "."
            state[inverse.get(prefix, prefix) + name.split(".", 1)[1]] = value
        self.load_state_dict(state)
        if self.weight_noise is not None:
            for module in self.weight_modules():
                layer = noise_layer(self.weight_noise, self.generator, total_steps=self.total_steps)
                parametrize.register_parametrization(module, "weight", WeightNoise(layer), unsafe=True)

    def weight_modules(self) -> list[nn.Module]:
        rnn = [self.ih, self.hh] if self.task.model == "rnn" else []
        return [*self.convs, *rnn, *self.dense, self.out]

    def canonical_parameters(self) -> list[nn.Parameter]:
        """Parameters in canonical order (gradient noise draws in this order)."""
        return [p for m in self.weight_modules() for p in (
            m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight, m.bias)]

    def _hidden(self, i: int, z: torch.Tensor) -> torch.Tensor:
        return self.post[i](self.act(self.pre[i](z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_noise(x)
        i = 0
        for conv in self.convs:
            x = F.max_pool2d(self._hidden(i, conv(x)), 2)
            i += 1
        if self.task.model == "rnn":
            x = self._recurrent(x)
            i += 1
        x = x.flatten(1)
        for dense in self.dense:
            x = self._hidden(i, dense(x))
            i += 1
        return self.out(x)

    def _recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """An LSTM/GRU over ``x: (batch, time, features)`` in PyTorch's gate order; the last hidden state."""
        w_ih, w_hh = self.ih.weight, self.hh.weight  # read once: one weight-noise draw per step
        h = x.new_zeros(x.shape[0], self.task.hidden[0])
        c = torch.zeros_like(h)
        pre = self.pre[0]
        # Every time step of one forward pass is the same optimizer step of the noise schedule.
        with pre.one_step() if hasattr(pre, "one_step") else contextlib.nullcontext():
            for t in range(x.shape[1]):
                gi = pre(F.linear(x[:, t], w_ih, self.ih.bias))
                gh = F.linear(h, w_hh, self.hh.bias)
                h, c = cell_step(self.task.cell, gi, gh, h, c)
        return self.post[0](h)


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


def training_noise(model: ReferenceModel, config: NoiseConfig, n_classes: int, generator: torch.Generator | None,
                   target_std: torch.Tensor | None = None):
    """The gradient-noise and target-noise helpers a reference loop calls around each step
    (``target_std``: the training targets' standard deviation, for ``relative`` target noise)."""
    grad, targets = None, None
    steps = model.total_steps
    for spec in config:
        if spec.std <= 0:
            continue
        if spec.placement == "gradients":
            grad = GradientNoise(model.canonical_parameters(), noise_layer(spec, generator, total_steps=steps))
        elif spec.placement == "targets":
            check_target_kind(spec.kind, n_classes)
            targets = (LabelFlip(spec.std, n_classes, schedule=spec.schedule, gamma=spec.gamma, std_min=spec.std_min,
                                 total_steps=steps, generator=generator)
                       if spec.kind == "flip" else noise_layer(spec, generator, total_steps=steps,
                                                               feature_std=target_std))
    return grad, targets

