"""Two model factories a search space names as ``task.model: {factory: models:mlp, args: {...}}``.

sweeper calls a factory as ``factory(input_shape, n_outputs, **args)``: ``input_shape`` is one sample as
the data file gives it (``(features,)`` for a table once encoded, ``(8, 8)`` for digits.npz's images) and
the module maps ``(batch, *input_shape)`` to ``(batch, n_outputs)`` logits.

Neither model has ``nn.Dropout`` nor ``nn.BatchNorm``: dropout draws from torch's own generator and batch
normalization updates its running statistics in place, and either makes sweeper train a pack member by
member instead of as one vectorized program (same numbers, several times slower). The noise under study
is sweeper's: it goes at the activation modules (``pre_activation``, ``post_activation``) and into every
weight matrix and kernel (``weights``).
"""

from __future__ import annotations

import math

from torch import nn

#: The activations ``mlp`` accepts by name.
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(input_shape, n_outputs, widths=(64,), activation="relu"):
    """Dense layers of ``widths`` units, each followed by ``activation``, then a linear output layer;
    any sample shape is flattened first."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r}: allowed: {', '.join(ACTIVATIONS)}")
    layers, width = [nn.Flatten()], math.prod(input_shape)
    for units in widths:
        layers += [nn.Linear(width, units), ACTIVATIONS[activation]()]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, n_outputs))


def cnn(input_shape, n_outputs, channels=(8, 16)):
    """3x3 convolutions of ``channels`` (padding 1), each followed by a ReLU and 2x2 max-pooling, then a
    linear output layer; for images (H, W) (taken as one channel) or (C, H, W)."""
    if len(input_shape) not in (2, 3):
        raise ValueError(f"images of shape (H, W) or (C, H, W) expected, not {tuple(input_shape)}")
    # (batch, H, W) -> (batch, 1, H, W): dimension 1 unflattened to (1, H).
    layers = [nn.Unflatten(1, (1, input_shape[0]))] if len(input_shape) == 2 else []
    c, h, w = (1, *input_shape) if len(input_shape) == 2 else input_shape
    for out in channels:
        if min(h, w) < 2:
            raise ValueError(f"{len(channels)} poolings halve {tuple(input_shape[-2:])} to nothing; fewer channels")
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, n_outputs))
