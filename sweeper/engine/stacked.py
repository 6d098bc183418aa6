"""The task models as one stacked program over a population: parameters carry a leading member dim.

Each function mirrors ``sweeper.tasks.models.ReferenceModel`` operation for operation (same parameter
layout, same order of noise draws), with batched matmuls and grouped convolutions in place of layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sweeper.noise.pack import PackNoise
from sweeper.tasks.models import ACTIVATIONS, cell_step
from sweeper.tasks.spec import TaskSpec

Params = dict[str, torch.Tensor]  # name -> (members, *shape of the nn.Module parameter)


def _site(noise: PackNoise | None, placement: str, x: torch.Tensor) -> torch.Tensor:
    return x if noise is None else noise.perturb(placement, x)


class _Linear(torch.autograd.Function):
    """``x @ w.T + b`` per member, with each gradient product oriented for the BLAS.

    x: (members, batch, in), w: (members, out, in), b: (members, out) -> (members, batch, out).
    Batched products whose result ends in a tiny dimension (a 1-unit output layer, a 2-feature input)
    run an order of magnitude slower on CPU than the same product transposed, so the weight gradient is
    computed in whichever orientation ends in the longer dimension, and a 1-unit layer's input gradient
    is a broadcast product. Same numbers as autograd's formulas up to float summation order.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad * w if w.shape[1] == 1 else torch.bmm(grad, w)  # (m, b, 1) * (m, 1, in)
        if ctx.needs_input_grad[1]:
            if w.shape[1] >= w.shape[2]:  # out >= in: (in, out) ends in the longer dimension
                grad_w = torch.bmm(x.transpose(1, 2), grad).transpose(1, 2)
            else:
                grad_w = torch.bmm(grad.transpose(1, 2), x)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_x, grad_w, grad_b


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x: (members, batch, in), w: (members, out, in), b: (members, out) -> (members, batch, out)
    return _Linear.apply(x, w, b)


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x: (members, batch, c_in, h, w); one grouped convolution runs every member's kernels at once.
    p, n, c, h, wd = x.shape
    out = F.conv2d(x.transpose(0, 1).reshape(n, p * c, h, wd), w.reshape(-1, *w.shape[2:]), b.reshape(-1),
                   padding=1, groups=p)
    return out.view(n, p, -1, h, wd).transpose(0, 1)  # (members, batch, c_out, h, w)


def forward(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None = None) -> torch.Tensor:
    """Outputs ``(members, batch, n_out)`` for inputs ``x: (members, batch, *input_shape)``.

    With ``noise=None`` (evaluation) no site draws or adds anything.
    """
    act = ACTIVATIONS[task.activation]
    x = _site(noise, "input", x)

    def hidden(z):
        return _site(noise, "post_activation", act(z) if noise is None else noise.pre_activate(z, act))

    for i in range(len(task.channels) if task.model == "cnn" else 0):
        w = _site(noise, "weights", params[f"conv{i}.weight"])
        z = hidden(_conv(x, w, params[f"conv{i}.bias"]))
        p, n = z.shape[:2]
        x = F.max_pool2d(z.reshape(p * n, *z.shape[2:]), 2).view(p, n, *z.shape[2:3], z.shape[3] // 2, z.shape[4] // 2)
    if task.model == "rnn":
        x = _recurrent(task, params, x, noise)
    x = x.flatten(2)
    i = 0
    while f"dense{i}.weight" in params:
        x = hidden(_linear(x, _site(noise, "weights", params[f"dense{i}.weight"]), params[f"dense{i}.bias"]))
        i += 1
    return _linear(x, _site(noise, "weights", params["out.weight"]), params["out.bias"])


def _recurrent(task: TaskSpec, params: Params, x: torch.Tensor, noise: PackNoise | None) -> torch.Tensor:
    # x: (members, batch, time, features) -> last hidden state (members, batch, hidden)
    w_ih = _site(noise, "weights", params["ih.weight"])
    w_hh = _site(noise, "weights", params["hh.weight"])
    h = x.new_zeros(x.shape[0], x.shape[1], task.hidden[0])
    c = torch.zeros_like(h)
    for t in range(x.shape[2]):
        gi = _site(noise, "pre_activation", _linear(x[:, :, t], w_ih, params["ih.bias"]))
        gh = _linear(h, w_hh, params["hh.bias"])
        h, c = cell_step(task.cell, gi, gh, h, c)
    return _site(noise, "post_activation", h)
