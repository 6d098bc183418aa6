"""Whether a finished run learned anything: its training metric against chance."""

from __future__ import annotations

import numpy as np

#: The level of the one-sided binomial test that calls a classifier's training accuracy chance.
CHANCE_ALPHA = 0.05


def failed_to_learn(
    final: dict[str, float], untrained: dict[str, float], y_train: np.ndarray, n_classes: int
) -> bool | None:
    """Whether a finished run learned nothing: its training metric is no better than chance, nor than
    the same network before training.

    Classification: chance is the better of the majority-class rate of its training part and the
    untrained network's training accuracy; the run failed to learn when the number of training samples
    it gets right is no more than a guesser right that often reaches by luck (one-sided binomial test,
    p >= CHANCE_ALPHA). Regression: training R² no better than the larger of 0 (predicting the mean)
    and the untrained network's. None when the training metric is not finite (diverged).

    ``final`` and ``untrained``: the logged metrics after training and before it; ``y_train``:
    ``(n_train,)`` the run's training targets; ``n_classes``: 0 for regression.
    """
    if n_classes == 0:
        r2 = final.get("train_r2", float("nan"))
        before = untrained.get("train_r2", float("nan"))
        return bool(r2 <= max(0.0, before if np.isfinite(before) else 0.0)) if np.isfinite(r2) else None
    accuracy = final.get("train_accuracy", float("nan"))
    if not np.isfinite(accuracy):
        return None
    from scipy.stats import binom

    n = len(y_train)
    majority = np.unique(np.asarray(y_train), return_counts=True)[1].max() / n
    before = untrained.get("train_accuracy", float("nan"))
    chance = max(majority, before if np.isfinite(before) else 0.0)
    right = round(accuracy * n)  # accuracy is a float32 mean: the count it came from
    return bool(binom.sf(right - 1, n, chance) >= CHANCE_ALPHA)
