"""Per-member losses and metrics over stacked outputs: every function returns one value per member."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def loss(out: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean training loss per member, ``(members,)``: BCE on logits, cross-entropy, or MSE.

    ``out: (members, batch, n_out)``; ``y: (members, batch)``.
    """
    if n_classes == 2:
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y, reduction="none").mean(1)
    if n_classes > 2:
        p, b, c = out.shape
        return F.cross_entropy(out.reshape(p * b, c), y.reshape(p * b), reduction="none").view(p, b).mean(1)
    return (out.squeeze(-1) - y).square().mean(1)


def metrics(out: torch.Tensor, y: torch.Tensor, n_classes: int, y_std: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss and metrics per member: ``loss`` and ``accuracy``, or ``loss``, ``mse`` and ``r2``.

    Regression targets are standardized for training; ``mse`` is in the original units (× y_std²),
    ``r2`` is scale-free. ``y_std: (members,)``.
    """
    result = {"loss": loss(out, y, n_classes)}
    if n_classes == 2:
        result["accuracy"] = ((out.squeeze(-1) > 0).to(y.dtype) == y).float().mean(1)
    elif n_classes > 2:
        result["accuracy"] = (out.argmax(-1) == y).float().mean(1)
    else:
        sse = (out.squeeze(-1) - y).square().sum(1)
        sst = (y - y.mean(1, keepdim=True)).square().sum(1)
        result["mse"] = result["loss"] * y_std.square()
        result["r2"] = 1.0 - sse / sst
    return result
