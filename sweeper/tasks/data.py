"""One repeat's data: draw or split a data set, scale it with training statistics, shape it for the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sweeper.errors import TaskError
from sweeper.tasks import files
from sweeper.tasks.datasets import GENERATED
from sweeper.tasks.families import inputs
from sweeper.tasks.spec import FileDataset, TaskSpec

#: Mixed into a repeat's data seed for the seed of its validation draw (generated data sets).
_VALIDATION = 0x56414C


@dataclass(frozen=True)
class Split:
    """One repeat's data: training, validation and test parts, scaled with statistics of the training part only."""

    x_train: np.ndarray  # (n_train, *input_shape) float32
    y_train: np.ndarray  # (n_train,) int64 class labels 0..n_classes-1, or float32 targets for regression
    x_val: np.ndarray  # (n_val, *input_shape) float32; n_val is 0 without a validation part
    y_val: np.ndarray  # (n_val,) like y_train
    x_test: np.ndarray  # (n_test, *input_shape) float32
    y_test: np.ndarray  # (n_test,) like y_train
    n_classes: int  # 2 for binary, k for multiclass, 0 for regression
    input_shape: tuple[int, ...]
    y_mean: float = 0.0  # regression: targets were standardized as (y - y_mean) / y_std, train stats
    y_std: float = 1.0


def input_shape(task: TaskSpec) -> tuple[int, ...]:
    """The shape of one sample as the task's model takes it: digits are (64,) to an mlp, (1, 8, 8) to a cnn
    and (8, 8), 8 time steps of one image row each, to an rnn; a user's own model takes samples as the data
    set gives them (digits: (8, 8))."""
    return inputs(task).view(task.data.shape)


def n_outputs(task: TaskSpec) -> int:
    """How many outputs the model needs: 1 for binary (sigmoid) and regression, k for k classes."""
    return task.data.n_outputs


def load_split(task: TaskSpec, seed: int) -> Split:
    """Draw or split the task's data set for one repeat; the same seed gives the same split."""
    if seed < 0:
        raise TaskError(f"data seed: {seed} is negative; seeds must be integers of at least 0")
    if task.data.generated:
        parts = _generated(task, seed)
    elif isinstance(task.dataset, FileDataset):
        parts = _file_split(task, _random_state(seed))
    else:
        parts = _table_split(task, _random_state(seed))
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts
    # Scaled as flat features whatever the sample's shape (an image's pixels each on their own).
    flat = (x.reshape(len(x), task.data.n_features) for x in (x_train, x_val, x_test))
    x_train, x_val, x_test = _scale(task.scaling, *flat)

    y_mean, y_std = 0.0, 1.0
    if task.problem == "regression":
        if task.scaling != "none":
            # A constant training target would divide by zero; leave its scale alone then.
            y_mean, y_std = float(y_train.mean()), float(y_train.std()) or 1.0
        y_train, y_val, y_test = ((y - y_mean) / y_std for y in (y_train, y_val, y_test))
        y_type, classes = np.float32, 0
    else:
        y_type, classes = np.int64, task.data.n_classes

    shape = input_shape(task)
    return Split(
        x_train=x_train.astype(np.float32).reshape(-1, *shape),
        y_train=y_train.astype(y_type),
        x_val=x_val.astype(np.float32).reshape(-1, *shape),
        y_val=y_val.astype(y_type),
        x_test=x_test.astype(np.float32).reshape(-1, *shape),
        y_test=y_test.astype(y_type),
        n_classes=classes,
        input_shape=shape,
        y_mean=y_mean,
        y_std=y_std,
    )


def part_sizes(task: TaskSpec) -> tuple[int, int, int]:
    """The task's (n_train, n_val, n_test) in samples, its defaults and fractions resolved; TaskError if they
    do not fit the data set."""
    if task.data.generated:
        n = task.n_samples or task.data.n_samples
        n_train = _count(task, "n_train", n)
        n_test = _count(task, "n_test", n) if task.n_test is not None else n - n_train
        n_val = n_test if task.n_val is None else _count(task, "n_val", n)
        what = f"{task.dataset} has {n} samples (n_samples)"
        _check_sizes(task, n, n_train, n_test, 0, what)  # validation is drawn apart, on top of n_samples
        return n_train, n_val, n_test
    if isinstance(task.dataset, FileDataset):
        return _file_sizes(task)
    return _split_sizes(task, len(task.data.arrays()[1]), f"{task.dataset} has")


def _split_sizes(task: TaskSpec, n: int, what: str) -> tuple[int, int, int]:
    """The parts of ``n`` samples split three ways; ``what`` + " N samples" says where they are."""
    n_train = _count(task, "n_train", n)
    rest = n - n_train
    n_val = None if task.n_val is None else _count(task, "n_val", n)
    n_test = None if task.n_test is None else _count(task, "n_test", n)
    if n_val is None and n_test is None:
        n_val = rest // 2  # the samples that are not training data, split evenly
    elif n_val is None:
        n_val = max(0, min(n_test, rest - n_test))
    if n_test is None:
        n_test = rest - n_val
    _check_sizes(task, n, n_train, n_test, n_val, f"{what} {n} samples")
    return n_train, n_val, n_test


def _file_sizes(task: TaskSpec) -> tuple[int, int, int]:
    """The parts of a data file: split three ways, or two (training, validation) beside test_path's rows."""
    data, path = task.dataset.data, task.dataset.path
    n = len(data.rows)
    if data.test is None:
        return _split_sizes(task, n, f"{path} has")
    if task.n_test is not None:
        raise TaskError(
            f"task.n_test: the test part is the {len(data.test)} rows of test_path "
            f"{task.dataset.test_path}; leave n_test out"
        )
    n_train = _count(task, "n_train", n)
    n_val = min(len(data.test), n - n_train) if task.n_val is None else _count(task, "n_val", n)
    if n_train + n_val > n:
        key, most = ("n_val", n - n_train) if task.n_val is not None and n_train <= n else ("n_train", n)
        raise TaskError(
            f"task.{key}: n_train {_said(task, 'n_train', n_train)} and n_val {_said(task, 'n_val', n_val)} need "
            f"{n_train + n_val} rows; {path} has {n}, so {key} must be at most {most}"
        )
    return n_train, n_val, len(data.test)


def _count(task: TaskSpec, key: str, n: int) -> int:
    """A part's size in samples: the count given, or the fraction given of the ``n`` samples, rounded."""
    value = getattr(task, key)
    if isinstance(value, int):
        return value
    count = round(value * n)
    fewest = 2 if key == "n_train" else 1
    if count < fewest:
        raise TaskError(
            f"task.{key}: {value:g} of {n} samples is {count} sample{'s' if count != 1 else ''}; allowed: a "
            f"fraction of at least {fewest / n:.3g}, or a count"
        )
    return count


def _said(task: TaskSpec, key: str, count: int) -> str:
    """A part's size as a message says it: ``45``, or ``45 (0.3 of the data)`` when it was a fraction."""
    value = getattr(task, key)
    return f"{count} ({value:g} of the data)" if isinstance(value, float) else str(count)


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


def _generated(task: TaskSpec, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Draw n_samples with the scikit-learn generator, the first n_train training data and the next n_test
    the test part (as the seed tutorial does); the validation part is a draw of its own, from a seed
    derived from ``seed``, so adding one changes neither of the others."""
    n_train, n_val, n_test = part_sizes(task)
    x, y = _draw(task, task.n_samples or task.data.n_samples, _random_state(seed))
    end = n_train + n_test
    if n_val:
        validation_seed = int(np.random.SeedSequence([seed, _VALIDATION]).generate_state(1)[0])
        x_val, y_val = _draw(task, n_val, _random_state(validation_seed), like=_random_state(seed))
    else:
        x_val, y_val = x[:0], y[:0]
    return (x[:n_train], y[:n_train]), (x_val, y_val), (x[n_train:end], y[n_train:end])


def _draw(task: TaskSpec, n: int, random_state, like=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of the task's generator; ``like``: the random state of the draw whose distribution they
    share (a generator with random structure, blobs' centres, takes it from there)."""
    noise = task.data.noise if task.data_noise is None else task.data_noise
    return task.data.draw(n, noise, random_state, like=like)


def _file_split(task: TaskSpec, random_state) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Split a data file as a bundled data set is (or into training and validation parts beside test_path's
    fixed test part), then encode every part with encoders fitted on the training part."""
    _refuse_generator_keys(task)
    data, path = task.dataset.data, task.dataset.path
    n_train, n_val, n_test = part_sizes(task)
    x, y = data.rows.x, data.rows.y
    classification = task.problem != "regression"
    if classification:
        # scikit-learn's stratified split puts each class in every part it makes.
        parts = (2 if n_val else 1) + (data.test is None)
        counts = np.bincount(y, minlength=data.n_classes)
        rare = int(np.argmin(counts))
        if counts[rare] < parts:
            raise TaskError(
                f"{path}: class {data.classes[rare]!r} has {counts[rare]} row"
                f"{'s' if counts[rare] != 1 else ''}; a stratified split into {parts} parts needs at "
                f"least {parts} of each class (or n_val: 0 for one part less)"
            )
    if data.test is None:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = _stratified(
            task, x, y, data.n_classes, path, random_state
        )
    else:
        x_test, y_test = data.test.x, data.test.y
        if n_train == len(y) and not n_val:
            x_train, y_train = x, y  # nothing to draw: every row trains
        else:
            try:
                x_train, x_val, y_train, y_val = train_test_split(
                    x,
                    y,
                    train_size=n_train,
                    test_size=n_val or None,
                    random_state=random_state,
                    stratify=y if classification else None,
                )
            except ValueError as exc:
                raise TaskError(
                    f"task.n_train: {_said(task, 'n_train', n_train)} training and {n_val} validation rows of {path} "
                    f"cannot be stratified ({exc})"
                ) from exc
        if not n_val:
            x_val, y_val = x_train[:0], y_train[:0]
    x_train, x_val, x_test = files.encode(data, x_train, x_val, x_test)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def _refuse_generator_keys(task: TaskSpec) -> None:
    for key in ("n_samples", "data_noise"):
        if getattr(task, key) is not None:
            raise TaskError(
                f"task.{key}: only generated data sets ({', '.join(GENERATED)}) take it, not {task.dataset_name}"
            )


def _table_split(task: TaskSpec, random_state) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Split a table's rows into n_train, n_val and n_test samples, stratified by class for classification."""
    _refuse_generator_keys(task)
    x, y = task.data.arrays()
    return _stratified(task, x, y, task.data.n_classes, task.dataset, random_state)


def _stratified(task: TaskSpec, x, y: np.ndarray, k: int, name: str, random_state) -> tuple[tuple, ...]:
    """Split samples ``x`` (an array or a table) into the task's parts, stratified by class for classification;
    ``k`` is the number of classes and ``name`` the data set as messages name it."""
    n_train, n_val, n_test = part_sizes(task)
    classification = task.problem != "regression"
    if classification:
        # scikit-learn's stratified split needs room for every class in every part.
        parts = 2 if n_val else 1
        if task.n_val is None and task.n_test is None and min(n_val, n_test) < k and n_train >= k:
            raise TaskError(
                f"task.n_train: {_said(task, 'n_train', n_train)} leaves {n_val + n_test} samples for validation and "
                f"test, which cannot hold the {k} classes of {name} in each; n_train must be at most "
                f"{len(y) - parts * k}"
            )
        if task.n_test is None and n_test < k <= n_train:
            raise TaskError(
                f"task.n_train: {_said(task, 'n_train', n_train)} leaves {n_test} test samples for the {k} classes of "
                f"{name}; n_train must be at most {len(y) - n_val - k}"
            )
        for key, size in (("n_train", n_train), ("n_test", n_test), ("n_val", n_val)):
            if 0 < size < k or (key != "n_val" and size < k):
                raise TaskError(
                    f"task.{key}: {_said(task, key, size)} cannot hold the {k} classes of {name}; "
                    f"a stratified split needs at least {k} samples in each part"
                )
    if not n_val:
        # One split, exactly as before validation parts existed: the seed's numbers stay reproducible.
        x_train, x_test, y_train, y_test = train_test_split(
            x,
            y,
            train_size=n_train,
            test_size=task.n_test and n_test,
            random_state=random_state,
            stratify=y if classification else None,
        )
        return (x_train, y_train), (x_train[:0], y_train[:0]), (x_test, y_test)
    try:
        x_train, x_rest, y_train, y_rest = train_test_split(
            x,
            y,
            train_size=n_train,
            test_size=n_val + n_test,
            random_state=random_state,
            stratify=y if classification else None,
        )
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest,
            y_rest,
            train_size=n_val,
            test_size=n_test,
            random_state=random_state,
            stratify=y_rest if classification else None,
        )
    except ValueError as exc:  # a class too rare in what is left for validation and test
        raise TaskError(
            f"task.n_val: {n_val} validation and {n_test} test samples of {name} cannot both be "
            f"stratified ({exc}); allowed: larger parts, or n_val: 0"
        ) from exc
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def _check_sizes(task: TaskSpec, n: int, n_train: int, n_test: int, n_val: int, what: str) -> None:
    """Refuse parts that the n available samples cannot hold."""
    train = _said(task, "n_train", n_train)
    if n_train >= n:
        raise TaskError(f"task.n_train: {train} leaves no test data; {what}, so n_train must be at most {n - 1}")
    if n_test < 1:
        raise TaskError(
            f"task.n_val: {_said(task, 'n_val', n_val)} with n_train {train} leaves no test data; {what}, so n_val "
            f"must be at most {n - n_train - 1}"
        )
    if n_train + n_val + n_test > n:
        parts = f"n_train {train}" + (f" and n_val {_said(task, 'n_val', n_val)}" if n_val else "")
        raise TaskError(
            f"task.n_test: {_said(task, 'n_test', n_test)} with {parts} needs {n_train + n_val + n_test} samples; "
            f"{what}, so n_test must be at most {n - n_train - n_val}"
        )


def _scale(scaling: str, x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Fit the scaler on the training part only and apply it to every part."""
    if scaling == "none":
        return (x_train, *others)
    # Both scalers map constant features to a finite constant (they treat a zero range as 1).
    scaler = (StandardScaler() if scaling == "standard" else MinMaxScaler()).fit(x_train)
    # An empty part (no validation) stays empty; the scaler refuses zero rows.
    return tuple(scaler.transform(x) if len(x) else x for x in (x_train, *others))
