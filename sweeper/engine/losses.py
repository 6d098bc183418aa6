"""Per-member losses and metrics over stacked outputs: every function returns one value per member."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sweeper import metrics as table


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


def metrics(
    out: torch.Tensor, y: torch.Tensor, n_classes: int, y_std: torch.Tensor, part: str = "test"
) -> dict[str, torch.Tensor]:
    """The metrics ``sweeper.metrics`` logs on ``part`` for the problem, per member, by bare name: ``loss``
    and ``accuracy`` (and ``ece`` on the test part), or ``loss``, ``mse`` and ``r2``.

    ``out: (members, batch, n_out)``; ``y: (members, batch)``; ``y_std: (members,)``, the scale of
    standardized regression targets. Computed in float64 from the float32 outputs, as the fused engine's
    C code computes them (``sweeper_mlp_metrics``): every engine's metrics then agree to 1e-12 on equal
    outputs, and a float32 sum's overflow never marks a member diverged whose outputs are finite.
    """
    problem = "regression" if n_classes == 0 else "binary" if n_classes == 2 else "multiclass"
    out, y = out.double(), (y if n_classes > 2 else y.double())
    mean_loss = loss(out, y, n_classes)
    return {name: _COMPUTE[name](out, y, n_classes, y_std, mean_loss) for name in table.logged(problem, part)}


def _accuracy(out, y, n_classes, y_std, mean_loss) -> torch.Tensor:
    # float64: a share of correct samples is then the nearest double to the fraction, so equal
    # accuracies differ by exactly zero in every later sum (float32 left differences of 2e-8).
    return (_predicted(out, n_classes) == y.long()).double().mean(1)


def _mse(out, y, n_classes, y_std, mean_loss) -> torch.Tensor:
    # Regression targets are standardized for training: the loss times y_std² is in their own units.
    return mean_loss * y_std.double().square()


def _r2(out, y, n_classes, y_std, mean_loss) -> torch.Tensor:
    # Scale-free: the same on standardized targets as in their own units.
    sse = (out.squeeze(-1) - y).square().sum(1)
    sst = (y - y.mean(1, keepdim=True)).square().sum(1)
    return 1.0 - sse / sst


#: Equal-width confidence bins of the expected calibration error (Guo et al. 2017).
ECE_BINS = 15


def _predicted(out: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The predicted class of each sample, ``(members, batch)`` long: logit > 0 for binary, else the argmax."""
    return (out.squeeze(-1) > 0).long() if n_classes == 2 else out.argmax(-1)


def expected_calibration_error(out: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Expected calibration error per member, ``(members,)`` float64 (Naeini et al. 2015; Guo et al. 2017).

    The confidence of a prediction is the probability the model gives its predicted class (binary:
    max(p, 1 - p) of the sigmoid). Samples fall into 15 equal-width bins ((m-1)/15, m/15] by confidence;
    ECE = sum over bins of (bin's share of samples) * |bin's accuracy - bin's mean confidence|.
    ``out: (members, batch, n_out)``; ``y: (members, batch)``.
    """
    logits = out.double()
    if n_classes == 2:
        p = torch.sigmoid(logits.squeeze(-1))
        confidence = torch.maximum(p, 1.0 - p)
    else:
        confidence = torch.softmax(logits, -1).amax(-1)
    correct = (_predicted(out, n_classes) == y.long()).double()
    bins = (torch.ceil(confidence * ECE_BINS).long() - 1).clamp(0, ECE_BINS - 1)  # (members, batch)
    members, batch = bins.shape
    gap = torch.zeros(members, ECE_BINS, dtype=torch.float64, device=out.device)
    gap.scatter_add_(1, bins, correct - confidence)  # per bin: sum of (correct - confidence)
    # sum_b (n_b/n)|acc_b - conf_b| = sum_b |sum over the bin of (correct - confidence)| / n
    return gap.abs().sum(1) / batch


#: How each metric of ``sweeper.metrics.TABLE`` is computed: (out, y, n_classes, y_std, mean loss) -> (members,).
_COMPUTE = {
    "loss": lambda out, y, n_classes, y_std, mean_loss: mean_loss,
    "accuracy": _accuracy,
    "ece": lambda out, y, n_classes, y_std, mean_loss: expected_calibration_error(out, y, n_classes),
    "mse": _mse,
    "r2": _r2,
}
