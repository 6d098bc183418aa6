"""The data sets a task can name: one record each, in one registry.

A record says what the data is (problem type, classes, the shape of one sample) and how to get it:
a ``Table`` has fixed rows that each repeat splits (scikit-learn's bundled data sets), a
``Generated`` record draws a fresh sample per repeat (scikit-learn's generators). Adding a data set is
adding one record to ``_RECORDS``. Models take a data set whose sample shape fits them (the model
families' input rules, ``sweeper.tasks.families``), so an image data set feeds the cnn and rnn without
naming it anywhere else.

Nothing here imports scikit-learn until data is loaded: the search-space check reads the records only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

import numpy as np

Problem = Literal["binary", "multiclass", "regression"]


class DataSource(Protocol):
    """What the rest of sweeper asks of a data set: what it is, and its rows or a draw of them.

    Every source is one of two kinds, told by ``generated``: a fixed table offers ``arrays()``, whose rows
    each repeat splits into training, validation and test parts (stratified for classification); a
    generator offers ``draw(n, noise, random_state)`` and the ``n_samples``/``noise`` it draws by default.
    """

    name: str
    problem: Problem
    #: One sample as it is: ``(features,)`` for a table, ``(H, W)`` or ``(C, H, W)`` for an image,
    #: ``(T, F)`` for a sequence. Models read it through their family's input rule.
    shape: tuple[int, ...]
    #: 2 for binary, k for multiclass, 0 for regression.
    n_classes: int
    generated: bool

    @property
    def n_features(self) -> int:
        """Features per sample, flat, as an mlp sees them."""

    @property
    def n_outputs(self) -> int:
        """How many outputs a model needs: 1 for binary (sigmoid) and regression, k for k classes."""


@dataclass(frozen=True)
class _Record:
    name: str
    problem: Problem
    shape: tuple[int, ...]
    n_classes: int

    @property
    def n_features(self) -> int:
        """Features per sample, flat, as an mlp sees them."""
        return math.prod(self.shape)

    @property
    def n_outputs(self) -> int:
        """How many outputs a model needs: 1 for binary (sigmoid) and regression, k for k classes."""
        return self.n_classes if self.problem == "multiclass" else 1


@dataclass(frozen=True)
class Table(_Record):
    """A fixed set of rows: features ``(N, *shape)`` (or flat, ``(N, n_features)``) and targets ``(N,)``."""

    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    generated = False

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and targets, loaded once per process and read-only (every caller shares them)."""
        return _loaded(self)


@dataclass(frozen=True)
class Generated(_Record):
    """A scikit-learn generator: ``draw(n, noise, random_state)`` gives ``n`` fresh samples."""

    draw: Callable[..., tuple[np.ndarray, np.ndarray]]  # (n, noise, random_state, like=None)
    #: What a task without ``n_samples`` / ``data_noise`` draws.
    n_samples: int
    noise: float
    generated = True


@cache
def _loaded(table: Table) -> tuple[np.ndarray, np.ndarray]:
    x, y = table.load()
    # The arrays are shared by every later call: read-only so that no caller can corrupt the cache.
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _bundled(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's ``load_<name>``, imported when first called."""

    def load():
        from sklearn import datasets

        return getattr(datasets, f"load_{name}")(return_X_y=True)

    return load


def _generator(
    name: str, noise_arg: str = "noise", **fixed
) -> Callable[[int, float, object], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's ``make_<name>`` with ``fixed`` keywords; the draw's noise is its ``noise_arg``."""

    def draw(n: int, noise: float, random_state, like=None):  # like: these generators have no random structure
        from sklearn import datasets

        return getattr(datasets, f"make_{name}")(n_samples=n, random_state=random_state, **{noise_arg: noise}, **fixed)

    return draw


def _blobs(n: int, noise: float, random_state, like=None) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 2-D (``make_blobs``), of standard deviation ``noise``.

    ``like``: the random state of another draw whose blobs these samples must come from (a validation
    part drawn apart from the training and test parts). make_blobs places its centres with the first
    numbers of its random state, so every state would otherwise have blobs of its own.
    """
    from sklearn import datasets
    from sklearn.utils import check_random_state

    # As make_blobs draws them itself for centers=3 (uniform in its default centre_box, (-10, 10)).
    centers = 3 if like is None else check_random_state(like).uniform(-10.0, 10.0, size=(3, 2))
    return datasets.make_blobs(n_samples=n, n_features=2, centers=centers, cluster_std=noise, random_state=random_state)


_RECORDS: tuple[DataSource, ...] = (
    # name, problem, one sample's shape, classes, loader (generators: and their default n_samples, noise)
    Generated("circles", "binary", (2,), 2, _generator("circles"), n_samples=100, noise=0.1),
    Generated("moons", "binary", (2,), 2, _generator("moons"), n_samples=100, noise=0.1),
    Generated("blobs", "multiclass", (2,), 3, _blobs, n_samples=150, noise=2.0),
    Generated("friedman1", "regression", (10,), 0, _generator("friedman1", n_features=10), n_samples=200, noise=1.0),
    Table("breast_cancer", "binary", (30,), 2, _bundled("breast_cancer")),
    Table("wine", "multiclass", (13,), 3, _bundled("wine")),
    Table("iris", "multiclass", (4,), 3, _bundled("iris")),
    Table("digits", "multiclass", (8, 8), 10, _bundled("digits")),  # 8x8 grey images of handwritten digits
    Table("diabetes", "regression", (10,), 0, _bundled("diabetes")),
)
#: Name -> record, in the order the search-space messages list them.
DATASETS: dict[str, DataSource] = {d.name: d for d in _RECORDS}
GENERATED = tuple(name for name, d in DATASETS.items() if d.generated)
