"""A pack of a user's ``nn.Sequential`` CNN run as grouped convolutions in channels-last memory.

``torch.func.vmap`` runs a pack's convolutions as one grouped convolution (members x channels), but
hands every pooling and convolution a members-first tensor that it copies into place, and PyTorch's CPU
pooling over many channels in the default memory format is slow: a 2x2 max-pooling of ``(100, 256, 8,
8)`` costs about five times its channels-last form. Here the pack's activations stay rows first,
``(rows, members, *one member's shape)``, in channels-last memory through the convolutional stages, and
the layers are called as the same torch ops vmap would call, one per layer for the whole pack. Each
member's arithmetic is its own grouped convolution's: the numbers are vmap's to float rounding.

Only a flat ``nn.Sequential`` of the layers below (default arguments where noted) is taken; any other
model keeps vmap (``takes``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: Elementwise layers: applied to the whole pack's tensor as they are.
ELEMENTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Identity,
)

#: ``site(name, placement, h)``: the noise of ``placement`` at the site module ``name`` applied to
#: ``h: (rows, members, ...)``; absent sites are not called.
Site = Callable[[str, str, torch.Tensor], torch.Tensor]


def takes(model: nn.Module) -> bool:
    """Whether ``model`` is a flat ``nn.Sequential`` with a convolution that this module can run."""
    if type(model) is not nn.Sequential or list(model.buffers()):
        return False
    layers = list(model.children())
    if not any(isinstance(m, nn.Conv2d) for m in layers):
        return False  # vmap's dense layers are already batched matrix products
    for m in layers:
        if _has_hooks(m) or list(m.children()):
            return False
        if type(m) is nn.Conv2d:
            ok = m.padding_mode == "zeros" and m.groups == 1
        elif type(m) is nn.MaxPool2d:
            ok = not m.return_indices
        elif type(m) is nn.Flatten:
            ok = m.start_dim == 1 and m.end_dim == -1
        elif type(m) is nn.Unflatten:
            ok = m.dim == 1
        else:  # an in-place activation would write into the pack's inputs where it comes first
            ok = type(m) is nn.Linear or (type(m) in ELEMENTWISE and not getattr(m, "inplace", False))
        if not ok:
            return False
    return not _has_hooks(model)


def forward(
    model: nn.Sequential,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    sites: dict[str, tuple[str, ...]],
    site: Site,
) -> torch.Tensor:
    """The pack's outputs ``(members, rows, n_out)`` for inputs ``x: (members, rows, *input_shape)``.

    ``params``: the stacked parameters, ``(members, *shape)`` by ``named_parameters`` name. ``sites``:
    per site module's name, its placements (``pre_activation``, ``post_activation``), applied by
    ``site`` before and after the module.
    """
    members = x.shape[0]
    h = x.transpose(0, 1)  # (rows, members, ...): a view; the layers below copy where they need to
    for name, m in model.named_children():
        if "pre_activation" in sites.get(name, ()):
            h = site(name, "pre_activation", h)
        h = _layer(m, name, params, h, members)
        if "post_activation" in sites.get(name, ()):
            h = site(name, "post_activation", h)
    return h.transpose(0, 1)


def _layer(m: nn.Module, name: str, params: dict[str, torch.Tensor], h: torch.Tensor, members: int) -> torch.Tensor:
    rows = h.shape[0]
    if isinstance(m, nn.Conv2d):
        w, b = params[f"{name}.weight"], params.get(f"{name}.bias")  # (members, out, in, kh, kw), (members, out)
        z = h.reshape(rows, members * h.shape[2], *h.shape[3:]).contiguous(memory_format=torch.channels_last)
        bias = None if b is None else b.reshape(-1)
        z = F.conv2d(z, w.reshape(-1, *w.shape[2:]), bias, m.stride, m.padding, m.dilation, members)
        return z.unflatten(1, (members, -1))  # (rows, members, out, H, W), channels last in memory
    if isinstance(m, nn.MaxPool2d):
        z = h.flatten(1, 2).contiguous(memory_format=torch.channels_last)
        z = F.max_pool2d(z, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        return z.unflatten(1, (members, -1))
    if isinstance(m, nn.Flatten):
        return h.reshape(rows, members, -1)
    if isinstance(m, nn.Unflatten):
        return h.unflatten(2, m.unflattened_size)
    if isinstance(m, nn.Linear):
        w, b = params[f"{name}.weight"], params.get(f"{name}.bias")  # (members, out, in), (members, out)
        hm = h.movedim(1, 0)  # (members, rows, ..., in)
        flat = hm.reshape(members, -1, hm.shape[-1])
        out = flat @ w.transpose(1, 2) if b is None else torch.baddbmm(b[:, None], flat, w.transpose(1, 2))
        return out.reshape(*hm.shape[:-1], -1).movedim(0, 1)
    return m(h)  # elementwise


def _has_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
