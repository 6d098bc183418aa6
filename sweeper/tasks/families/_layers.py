"""What every family builds from: activations, initialisers, and the stacked program's per-member layers.

The stacked layers take tensors with a leading member dim: ``x: (members, batch, ...)`` and parameters
``(members, *shape of the nn.Module parameter)``; no product crosses members.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sweeper.noise.pack import PackNoise
from sweeper.noise.philox import units
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
    seed: int,
    own: Callable[[str, torch.Tensor, torch.Tensor], bool] = lambda name, t, u: False,
) -> dict[str, torch.Tensor]:
    """One member's initial parameters of ``shapes``, drawn from the Philox stream keyed by its init seed.

    Element j of the parameters, in canonical order and row-major, takes value j of the stream
    (``sweeper.noise.philox.units``), a uniform u in (0, 1) made symmetric as (2u - 1)·bound in float32:
    both steps exact or one IEEE rounding, so the same bits on every CPU. ``keras``: Glorot-uniform
    weights, bound √(6 / (fan_in + fan_out)), zero biases. ``torch``: PyTorch's default Linear and Conv2d
    initialisation, U(-1/√fan_in, 1/√fan_in), a bias with its layer's weight's fan_in. ``own(name, t, u)``
    lets a family fill a parameter its own way from its uniforms ``u`` (and say so by returning True).
    """
    u = units(seed, sum(math.prod(shape) for shape in shapes.values()))
    params, at = {}, 0
    for name, shape in shapes.items():
        t, drawn = torch.empty(shape), u[at : at + math.prod(shape)].view(shape)
        at += math.prod(shape)
        if own(name, t, drawn):
            pass
        elif task.init == "keras":
            if name.endswith("weight"):
                receptive = math.prod(shape[2:])
                t.copy_(symmetric(drawn, math.sqrt(6.0 / ((shape[0] + shape[1]) * receptive))))
            else:
                t.zero_()
        else:
            weight_shape = shape if len(shape) > 1 else shapes[name.replace("bias", "weight")]
            t.copy_(symmetric(drawn, 1.0 / math.sqrt(math.prod(weight_shape[1:]))))
        params[name] = t
    return params


def symmetric(u: torch.Tensor, bound: float) -> torch.Tensor:
    """Uniforms in (0, 1) to U(-bound, bound): 2u - 1 is exact for 24-bit units, the product one float32
    rounding, so the result is the same on every CPU."""
    return (u * 2.0 - 1.0) * torch.tensor(bound, dtype=torch.float32)


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
