"""Every metric sweeper logs, stores, selects on and reports: one table of names, directions and problems.

A metric is logged per part of the data (``train_``, ``val_``, ``test_``): ``test_accuracy`` is the
accuracy on the test part. Its ``val_`` and ``test_`` columns are also kept as the run had them at its
best validation epoch (``early_test_accuracy``: what early stopping would have kept). A new metric is a
row here, its computation in ``sweeper.engine.losses`` and in the fused engine's C code
(``engine/_c/mlp.c``: ``METRIC_LIST``), and its columns in ``sweeper.store.models``
with a schema revision (the tables are written out there, reviewed with their migrations).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The problem types of a task.
PROBLEMS = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")
#: The parts of the data a metric can be logged on, in the order they are logged and stored.
PARTS = ("train", "val", "test")
#: The parts whose metrics are also kept at the best validation epoch, under ``EARLY_PREFIX``.
EARLY_PARTS = ("val", "test")
EARLY_PREFIX = "early_"
#: Every problem has a training loss; a sweep selects on the problem's own metrics before it.
LOSS = "loss"


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    problems: tuple[str, ...]
    parts: tuple[str, ...] = PARTS


#: The table; its order is that of the store's columns and of every listing.
TABLE = (
    Metric(LOSS, False, PROBLEMS),  # BCE on logits, cross-entropy, or MSE of the standardized targets
    Metric("accuracy", True, CLASSIFICATION),
    Metric("ece", False, CLASSIFICATION, ("test",)),  # expected calibration error (Guo et al. 2017)
    Metric("mse", False, ("regression",)),  # in the targets' own units
    Metric("r2", True, ("regression",)),
)
_BY_NAME = {m.name: m for m in TABLE}

#: Every metric column of a run and of a curve point: ``<part>_<name>``, in table order.
COLUMNS = tuple(f"{part}_{m.name}" for m in TABLE for part in m.parts)
#: A run's columns at its best validation epoch (without a validation part: its best test epoch).
EARLY_COLUMNS = tuple(EARLY_PREFIX + column for column in COLUMNS if column.split("_", 1)[0] in EARLY_PARTS)


def columns(problem: str) -> tuple[str, ...]:
    """The metric columns a problem fills (``mixed``, a sweep of several problems: all of them)."""
    return COLUMNS if problem == "mixed" else tuple(c for c in COLUMNS if problem in _BY_NAME[base(c)].problems)


def logged(problem: str, part: str) -> tuple[str, ...]:
    """The metrics (bare names) logged on ``part`` for ``problem``, in table order."""
    return tuple(m.name for m in TABLE if problem in m.problems and part in m.parts)


def choices(problem: str) -> tuple[str, ...]:
    """What a search space may name as its metric for ``problem``, the default first: the problem's own
    metrics, then the loss; bare (the validation part, or the test part where there is none), then
    ``val_``, then ``train_`` (the test part is kept to report, never selected on)."""
    own = [m.name for m in TABLE if problem in m.problems and "val" in m.parts and m.name != LOSS] + [LOSS]
    return tuple(prefix + name for prefix in ("", "val_", "train_") for name in own)


def base(name: str) -> str:
    """A metric's bare name: ``accuracy`` for ``early_test_accuracy``, ``val_accuracy`` or ``accuracy``."""
    name = name.removeprefix(EARLY_PREFIX)
    part, _, rest = name.partition("_")
    return rest if part in PARTS and rest else name


def higher_is_better(name: str) -> bool | None:
    """Whether a higher value of metric ``name`` (bare or a column) is better; None if it is none of the table's."""
    metric = _BY_NAME.get(base(name))
    return None if metric is None else metric.higher_is_better
