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
    one = {name: np.array([value]) for name, value in final.items()}
    before = {name: np.array([value]) for name, value in untrained.items()}
    return failed_to_learn_members(one, before, np.asarray(y_train)[None], n_classes)[0]


def failed_to_learn_members(
    final: dict[str, np.ndarray], untrained: dict[str, np.ndarray], y_train: np.ndarray, n_classes: int
) -> list[bool | None]:
    """:func:`failed_to_learn` of every member of a pack at once: ``final`` and ``untrained`` map names to
    ``(members,)`` metrics, ``y_train`` is ``(members, n_train)``; the same answers, one test call for all."""
    members = len(y_train)
    missing = np.full(members, np.nan)
    if n_classes == 0:
        r2 = np.asarray(final.get("train_r2", missing), dtype=np.float64)
        before = np.asarray(untrained.get("train_r2", missing), dtype=np.float64)
        failed = r2 <= np.maximum(0.0, np.where(np.isfinite(before), before, 0.0))
        return [bool(f) if np.isfinite(v) else None for f, v in zip(failed, r2)]
    accuracy = np.asarray(final.get("train_accuracy", missing), dtype=np.float64)
    from scipy.stats import binom

    n = y_train.shape[1]
    labels = np.unique(y_train)
    majority = (y_train[:, :, None] == labels).sum(axis=1).max(axis=1) / n  # (members,)
    before = np.asarray(untrained.get("train_accuracy", missing), dtype=np.float64)
    chance = np.maximum(majority, np.where(np.isfinite(before), before, 0.0))
    finite = np.isfinite(accuracy)
    right = np.round(np.where(finite, accuracy, 0.0) * n)  # accuracy is a float32 mean: the count it came from
    p = binom.sf(right - 1, n, chance)
    return [bool(q >= CHANCE_ALPHA) if ok else None for q, ok in zip(p, finite)]
