"""What every family builds from: activations, initialisers, and the stacked program's per-member layers.

The stacked layers take tensors with a leading member dim: ``x: (members, batch, ...)`` and parameters
``(members, *shape of the nn.Module parameter)``; no product crosses members.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sweeper.noise.pack import PackNoise
from sweeper.tasks.spec import TaskSpec

ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
}

Params = dict[str, torch.Tensor]  # name -> (members, *shape of the nn.Module parameter)


def init_params(
    task: TaskSpec,
    shapes: dict[str, tuple[int, ...]],
    generator: torch.Generator,
    own: Callable[[str, torch.Tensor], bool] = lambda name, t: False,
) -> dict[str, torch.Tensor]:
    """One member's initial parameters of ``shapes``, drawn from ``generator`` in their (canonical) order.

    ``keras``: Glorot-uniform weights, zero biases. ``torch``: PyTorch's defaults, U(-1/√fan_in, 1/√fan_in),
    a bias with its layer's weight's fan_in. ``own(name, t)`` lets a family fill a parameter its own
    way (and say so by returning True).
    """
    params = {}
    for name, shape in shapes.items():
        t = torch.empty(shape)
        if own(name, t):
            pass
        elif task.init == "keras":
            if name.endswith("weight"):
                nn.init.xavier_uniform_(t, generator=generator)
            else:
                t.zero_()
        else:
            weight_shape = shape if len(shape) > 1 else shapes[name.replace("bias", "weight")]
            bound = 1.0 / math.sqrt(math.prod(weight_shape[1:]))
            t.uniform_(-bound, bound, generator=generator)
        params[name] = t
    return params


def site(noise: PackNoise | None, placement: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` with each member's noise of ``placement``; as it is without noise (evaluation)."""
    return x if noise is None else noise.perturb(placement, x)


def hidden(noise: PackNoise | None, act, z: torch.Tensor) -> torch.Tensor:
    """A hidden layer's output from its pre-activation ``z``: pre-activation noise, ``act``, post-activation noise."""
    return site(noise, "post_activation", act(z) if noise is None else noise.pre_activate(z, act))


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


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x: (members, batch, in), w: (members, out, in), b: (members, out) -> (members, batch, out)
    return _Linear.apply(x, w, b)


def conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # x: (members, batch, c_in, h, w); one grouped convolution runs every member's kernels at once.
    p, n, c, h, wd = x.shape
    out = F.conv2d(
        x.transpose(0, 1).reshape(n, p * c, h, wd), w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=1, groups=p
    )
    return out.view(n, p, -1, h, wd).transpose(0, 1)  # (members, batch, c_out, h, w)
