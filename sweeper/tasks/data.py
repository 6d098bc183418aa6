"""One repeat's data: draw or split a data set, scale it with training statistics, shape it for the model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sweeper.errors import TaskError
from sweeper.tasks.spec import GENERATED, TaskSpec

#: Features per sample, flat, as an mlp sees them.
_N_FEATURES = {
    "circles": 2, "moons": 2, "blobs": 2, "friedman1": 10,
    "breast_cancer": 30, "wine": 13, "iris": 4, "digits": 64, "diabetes": 10,
}
_MULTICLASS = {"blobs": 3, "wine": 3, "iris": 3, "digits": 10}
#: Generator -> (default n_samples, default data_noise).
_GENERATOR_DEFAULTS = {
    "circles": (100, 0.1), "moons": (100, 0.1), "blobs": (150, 2.0), "friedman1": (200, 1.0),
}


@dataclass(frozen=True)
class Split:
    """One repeat's data: training and test parts, scaled with statistics of the training part only."""

    x_train: np.ndarray  # (n_train, *input_shape) float32
    y_train: np.ndarray  # (n_train,) int64 class labels 0..n_classes-1, or float32 targets for regression
    x_test: np.ndarray  # (n_test, *input_shape) float32
    y_test: np.ndarray  # (n_test,) like y_train
    n_classes: int  # 2 for binary, k for multiclass, 0 for regression
    input_shape: tuple[int, ...]
    y_mean: float = 0.0  # regression: targets were standardized as (y - y_mean) / y_std, train stats
    y_std: float = 1.0


def input_shape(task: TaskSpec) -> tuple[int, ...]:
    """The shape of one sample as the task's model takes it: (features,), (1, 8, 8) or (8, 8)."""
    if task.model == "cnn":
        return (1, 8, 8)  # one channel of the 8x8 digit image
    if task.model == "rnn":
        return (8, 8)  # 8 time steps, one image row of 8 pixels each
    return (_N_FEATURES[task.dataset],)


def n_outputs(task: TaskSpec) -> int:
    """How many outputs the model needs: 1 for binary (sigmoid) and regression, k for k classes."""
    return _MULTICLASS.get(task.dataset, 1)


def load_split(task: TaskSpec, seed: int) -> Split:
    """Draw or split the task's data set for one repeat; the same seed gives the same split."""
    if seed < 0:
        raise TaskError(f"data seed: {seed} is negative; seeds must be integers of at least 0")
    if task.dataset in GENERATED:
        x_train, y_train, x_test, y_test = _generated(task, _random_state(seed))
    else:
        x_train, y_train, x_test, y_test = _bundled_split(task, _random_state(seed))
    x_train, x_test = _scale(task.scaling, x_train, x_test)

    y_mean, y_std = 0.0, 1.0
    if task.problem == "regression":
        if task.scaling != "none":
            # A constant training target would divide by zero; leave its scale alone then.
            y_mean, y_std = float(y_train.mean()), float(y_train.std()) or 1.0
        y_train, y_test = ((y - y_mean) / y_std for y in (y_train, y_test))
        y_type, classes = np.float32, 0
    else:
        y_type, classes = np.int64, _MULTICLASS.get(task.dataset, 2)

    shape = input_shape(task)
    return Split(
        x_train=x_train.astype(np.float32).reshape(-1, *shape),
        y_train=y_train.astype(y_type),
        x_test=x_test.astype(np.float32).reshape(-1, *shape),
        y_test=y_test.astype(y_type),
        n_classes=classes,
        input_shape=shape,
        y_mean=y_mean,
        y_std=y_std,
    )


def _random_state(seed: int) -> int | np.random.RandomState:
    """scikit-learn's random_state for ``seed``: the seed itself when it fits 32 bits, as in the tutorial."""
    if seed < 2**32:
        return seed
    # sweeper's derived seeds have 63 bits, which scikit-learn refuses; seeding with the seed's
    # 32-bit words keeps distinct seeds distinct.
    words = []
    while seed:
        words.append(seed & 0xFFFFFFFF)
        seed >>= 32
    return np.random.RandomState(words)


def _generated(task: TaskSpec, random_state) -> tuple[np.ndarray, ...]:
    """Draw n_samples with the scikit-learn generator; the first n_train are training data, then the test."""
    name = task.dataset
    default_n, default_noise = _GENERATOR_DEFAULTS[name]
    n = task.n_samples or default_n
    noise = default_noise if task.data_noise is None else task.data_noise
    _check_sizes(task, n, f"{name} has {n} samples (n_samples)")

    if name == "circles":
        x, y = datasets.make_circles(n_samples=n, noise=noise, random_state=random_state)
    elif name == "moons":
        x, y = datasets.make_moons(n_samples=n, noise=noise, random_state=random_state)
    elif name == "blobs":
        x, y = datasets.make_blobs(
            n_samples=n, centers=3, n_features=2, cluster_std=noise, random_state=random_state
        )
    else:
        x, y = datasets.make_friedman1(n_samples=n, n_features=10, noise=noise, random_state=random_state)
    end = n if task.n_test is None else task.n_train + task.n_test
    return x[: task.n_train], y[: task.n_train], x[task.n_train : end], y[task.n_train : end]


def _bundled_split(task: TaskSpec, random_state) -> tuple[np.ndarray, ...]:
    """Split a bundled data set into n_train and n_test samples, stratified by class for classification."""
    name = task.dataset
    for key in ("n_samples", "data_noise"):
        if getattr(task, key) is not None:
            raise TaskError(
                f"task.{key}: only generated data sets ({', '.join(GENERATED)}) take it, not {name}"
            )
    x, y = _bundled(name)
    n = len(y)
    _check_sizes(task, n, f"{name} has {n} samples")

    stratify = None
    if task.problem != "regression":
        stratify = y
        k = _MULTICLASS.get(name, 2)
        # scikit-learn's stratified split needs room for every class on both sides.
        if task.n_train < k:
            raise TaskError(
                f"task.n_train: {task.n_train} cannot hold the {k} classes of {name}; "
                f"a stratified split needs n_train of at least {k}"
            )
        if task.n_test is not None and task.n_test < k:
            raise TaskError(
                f"task.n_test: {task.n_test} cannot hold the {k} classes of {name}; "
                f"a stratified split needs n_test of at least {k}"
            )
        if task.n_test is None and n - task.n_train < k:
            raise TaskError(
                f"task.n_train: {task.n_train} leaves {n - task.n_train} test samples for the {k} classes "
                f"of {name}; n_train must be at most {n - k}"
            )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=task.n_train, test_size=task.n_test, random_state=random_state, stratify=stratify
    )
    return x_train, y_train, x_test, y_test


def _check_sizes(task: TaskSpec, n: int, what: str) -> None:
    """Refuse an n_train or n_test that the n available samples cannot satisfy."""
    if task.n_train >= n:
        raise TaskError(
            f"task.n_train: {task.n_train} leaves no test data; {what}, so n_train must be at most {n - 1}"
        )
    if task.n_test is not None and task.n_train + task.n_test > n:
        raise TaskError(
            f"task.n_test: {task.n_test} with n_train {task.n_train} needs {task.n_train + task.n_test} "
            f"samples; {what}, so n_test must be at most {n - task.n_train}"
        )


@lru_cache(maxsize=None)
def _bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of a scikit-learn bundled data set, loaded once per process."""
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    # The arrays are shared by every later call: read-only so that no caller can corrupt the cache.
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _scale(scaling: str, x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit the scaler on the training part only and apply it to both parts."""
    if scaling == "none":
        return x_train, x_test
    # Both scalers map constant features to a finite constant (they treat a zero range as 1).
    scaler = (StandardScaler() if scaling == "standard" else MinMaxScaler()).fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test)
