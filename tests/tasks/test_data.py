import re

import numpy as np
import pytest
from sklearn import datasets
from sklearn.datasets import load_diabetes, load_digits, make_circles

from sweeper.errors import TaskError
from sweeper.tasks.data import input_shape, load_split, n_outputs, part_sizes
from sweeper.tasks.datasets import DATASETS
from sweeper.tasks.spec import TaskSpec


def test_circles_split_is_the_seed_tutorials_data():
    split = load_split(TaskSpec(dataset="circles", n_train=30, n_val=0, scaling="none"), seed=1)
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    np.testing.assert_array_equal(split.x_train, x[:30].astype(np.float32))
    np.testing.assert_array_equal(split.y_train, y[:30])
    np.testing.assert_array_equal(split.x_test, x[30:].astype(np.float32))
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert split.x_test.shape == (70, 2) and split.n_classes == 2
    assert split.x_val.shape == (0, 2) and split.y_val.shape == (0,)


def test_a_generated_validation_part_is_a_draw_of_its_own_and_leaves_train_and_test_alone():
    task = TaskSpec(dataset="circles", n_train=30, scaling="none")
    split = load_split(task, seed=1)
    tutorial = load_split(task.model_copy(update={"n_val": 0}), seed=1)
    np.testing.assert_array_equal(split.x_train, tutorial.x_train)
    np.testing.assert_array_equal(split.x_test, tutorial.x_test)
    # As large as the test part by default, and none of its points is one of the training sample's.
    assert split.x_val.shape == (70, 2)
    assert not (split.x_val[:, None, :] == split.x_train[None, :, :]).all(-1).any()
    assert not np.array_equal(split.x_val, load_split(task, seed=2).x_val)
    assert len(load_split(task.model_copy(update={"n_val": 12}), seed=1).y_val) == 12


@pytest.mark.parametrize("dataset", ["iris", "wine", "breast_cancer", "diabetes"])
def test_bundled_data_splits_three_ways_without_overlap_every_class_in_every_part(dataset):
    task = TaskSpec(dataset=dataset, n_train=30, scaling="none")
    split = load_split(task, seed=5)
    rows = [tuple(r) for part in (split.x_train, split.x_val, split.x_test) for r in part]
    n = {"iris": 150, "wine": 178, "breast_cancer": 569, "diabetes": 442}[dataset]
    assert len(split.y_val) == (n - 30) // 2 and len(split.y_test) == n - 30 - (n - 30) // 2
    # Every sample of the data set in exactly one part.
    every = getattr(datasets, f"load_{dataset}")(return_X_y=True)[0].astype(np.float32)
    assert sorted(rows) == sorted(tuple(r) for r in every)
    if task.problem != "regression":
        for part in (split.y_train, split.y_val, split.y_test):
            assert set(part.tolist()) == set(range(split.n_classes))


def test_part_sizes_take_counts_and_fractions():
    assert part_sizes(TaskSpec(dataset="iris", n_train=30, n_val=0.2)) == (30, 30, 90)
    assert part_sizes(TaskSpec(dataset="iris", n_train=30, n_test=0.5)) == (30, 45, 75)
    assert part_sizes(TaskSpec(dataset="iris", n_train=30, n_val=10, n_test=20)) == (30, 10, 20)
    assert part_sizes(TaskSpec(dataset="moons", n_samples=200, n_train=40, n_test=0.25)) == (40, 50, 50)
    assert part_sizes(TaskSpec(dataset="moons", n_train=40, n_val=0)) == (40, 0, 60)


@pytest.mark.parametrize("dataset", ["circles", "blobs", "friedman1", "wine", "diabetes"])
def test_same_seed_gives_same_split_and_other_seeds_other_samples(dataset):
    task = TaskSpec(dataset=dataset, n_train=20)
    first, again, other = load_split(task, 7), load_split(task, 7), load_split(task, 8)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_train, other.x_train)


def test_derived_63_bit_seeds_are_accepted_and_kept_apart():
    task = TaskSpec(dataset="moons")
    big = load_split(task, 2**62 + 5)
    np.testing.assert_array_equal(big.x_train, load_split(task, 2**62 + 5).x_train)
    assert not np.array_equal(big.x_train, load_split(task, 2**62 + 6).x_train)
    assert not np.array_equal(big.x_train, load_split(task, 5).x_train)


def test_data_noise_n_samples_and_n_test_reach_the_generator():
    task = TaskSpec(dataset="circles", n_samples=60, data_noise=0.0, n_test=10, scaling="none")
    split = load_split(task, seed=3)
    x, _ = make_circles(n_samples=60, noise=0.0, random_state=3)
    np.testing.assert_array_equal(split.x_test, x[30:40].astype(np.float32))
    # Without noise every point lies exactly on one of the two circles (radius 1 or 0.8).
    radii = np.hypot(*split.x_train.T)
    assert np.all(np.isclose(radii, 1.0) | np.isclose(radii, 0.8))


def test_stratified_split_puts_every_class_in_train():
    for seed in range(20):
        split = load_split(TaskSpec(dataset="iris", n_train=3), seed)
        np.testing.assert_array_equal(np.bincount(split.y_train), [1, 1, 1])
        digits = load_split(TaskSpec(dataset="digits", n_train=10), seed)
        np.testing.assert_array_equal(np.sort(digits.y_train), np.arange(10))


@pytest.mark.parametrize("dataset", ["wine", "friedman1"])
def test_standard_scaling_uses_training_statistics_only(dataset):
    split = load_split(TaskSpec(dataset=dataset, n_train=40), seed=0)
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1, atol=1e-5)
    # Had the test part been seen, its mean would be 0 too; training statistics leave it off zero.
    assert np.abs(split.x_test.mean(axis=0)).max() > 0.05


def test_minmax_scaling_maps_training_part_to_unit_interval():
    split = load_split(TaskSpec(dataset="breast_cancer", n_train=50, scaling="minmax"), seed=0)
    np.testing.assert_allclose(split.x_train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(split.x_train.max(axis=0), 1, atol=1e-6)
    assert split.x_test.min() < 0 or split.x_test.max() > 1


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_constant_pixels_of_digits_stay_finite(scaling):
    split = load_split(TaskSpec(dataset="digits", n_train=30, scaling=scaling), seed=0)
    constant = np.ptp(split.x_train, axis=0) == 0
    assert constant.any()  # the border pixels of digits are always 0
    assert np.isfinite(split.x_train).all() and np.isfinite(split.x_test).all()


def test_digits_shapes_per_model():
    for model, shape in [("mlp", (64,)), ("cnn", (1, 8, 8)), ("rnn", (8, 8))]:
        task = TaskSpec(dataset="digits", model=model, hidden=(16,), n_train=50, scaling="none")
        split = load_split(task, seed=2)
        assert split.input_shape == input_shape(task) == shape
        # The 1747 that are not training data, split evenly.
        assert split.x_train.shape == (50, *shape) and split.x_val.shape == (873, *shape)
        assert split.x_test.shape == (874, *shape)
        assert split.n_classes == n_outputs(task) == 10


def test_rnn_steps_through_image_rows_and_cnn_sees_the_image():
    common = dict(dataset="digits", hidden=(16,), n_train=50, scaling="none")
    flat, rnn, cnn = (load_split(TaskSpec(model=m, **common), seed=2).x_train for m in ("mlp", "rnn", "cnn"))
    digits = load_digits()
    j = np.flatnonzero((digits.data == flat[0]).all(axis=1))[0]
    np.testing.assert_array_equal(rnn[0], digits.images[j])  # time step t is image row t
    np.testing.assert_array_equal(cnn[0, 0], digits.images[j])


def test_digits_are_scaled_as_flat_features_before_reshaping():
    common = dict(dataset="digits", hidden=(16,), n_train=50)
    flat = load_split(TaskSpec(model="mlp", **common), seed=2)
    rnn = load_split(TaskSpec(model="rnn", **common), seed=2)
    np.testing.assert_array_equal(rnn.x_train.reshape(50, 64), flat.x_train)
    np.testing.assert_array_equal(rnn.x_test.reshape(-1, 64), flat.x_test)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_input_shape_and_n_outputs_match_the_loaded_data(dataset):
    task = TaskSpec(dataset=dataset, n_train=20)
    split = load_split(task, seed=0)
    assert split.x_train.shape[1:] == input_shape(task)
    labels = np.concatenate([split.y_train, split.y_test])
    if task.problem == "regression":
        assert split.n_classes == 0 and n_outputs(task) == 1 and split.y_train.dtype == np.float32
    else:
        assert split.y_train.dtype == np.int64
        np.testing.assert_array_equal(np.unique(labels), np.arange(split.n_classes))
        assert n_outputs(task) == (1 if split.n_classes == 2 else split.n_classes)


@pytest.mark.parametrize(
    "task, sizes",
    [
        (TaskSpec(dataset="iris", n_train=0.3), (45, 52, 53)),  # the rest split evenly
        (TaskSpec(dataset="iris", n_train=0.3, n_val=0.2, n_test=0.1), (45, 30, 15)),
        (TaskSpec(dataset="iris", n_train=0.3, n_val=0), (45, 0, 105)),
        (TaskSpec(dataset="circles", n_train=0.3), (30, 70, 70)),  # validation drawn apart, as large as test
        (TaskSpec(dataset="circles", n_samples=200, n_train=0.25, n_val=0.1), (50, 20, 150)),
        (TaskSpec(dataset="circles", n_train=0.3, n_val=10, n_test=0.5), (30, 10, 50)),
    ],
)
def test_fractions_of_the_data_set_give_the_parts_sizes(task, sizes):
    assert part_sizes(task) == sizes
    split = load_split(task, seed=3)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == sizes


@pytest.mark.parametrize(
    "task, message",
    [
        (
            TaskSpec(dataset="circles", n_train=200),
            "task.n_train: 200 leaves no test data; circles has 100 samples (n_samples), so n_train must be at most 99",
        ),
        (TaskSpec(dataset="circles", n_train=100), "n_train must be at most 99"),
        (
            TaskSpec(dataset="moons", n_train=30, n_test=80),
            "task.n_test: 80 with n_train 30 needs 110 samples; moons has 100 samples (n_samples), "
            "so n_test must be at most 70",
        ),
        (TaskSpec(dataset="iris", n_train=150), "iris has 150 samples, so n_train must be at most 149"),
        (TaskSpec(dataset="wine", n_train=2), "task.n_train: 2 cannot hold the 3 classes of wine"),
        (TaskSpec(dataset="digits", n_train=1790), "n_train must be at most 1777"),
        (TaskSpec(dataset="digits", n_train=1790, n_val=0), "n_train must be at most 1787"),
        (TaskSpec(dataset="wine", n_train=30, n_test=2), "task.n_test: 2 cannot hold the 3 classes of wine"),
        (TaskSpec(dataset="diabetes", n_samples=50), "task.n_samples: only generated data sets"),
        (TaskSpec(dataset="iris", n_train=30, n_val=120), "task.n_val: 120 with n_train 30 leaves no test data"),
        (TaskSpec(dataset="iris", n_train=30, n_val=2), "task.n_val: 2 cannot hold the 3 classes of iris"),
        (TaskSpec(dataset="iris", n_train=30, n_val=0.001), "task.n_val: 0.001 of 150 samples is 0 samples"),
        (
            TaskSpec(dataset="iris", n_train=0.99),
            "task.n_train: 148 (0.99 of the data) leaves 2 samples for validation",
        ),
        (
            TaskSpec(dataset="iris", n_train=0.005),
            "task.n_train: 0.005 of 150 samples is 1 sample; allowed: a fraction of at least 0.0133, or a count",
        ),
        (
            TaskSpec(dataset="iris", n_train=0.5, n_val=0.3, n_test=0.3),
            "task.n_test: 45 (0.3 of the data) with n_train 75 (0.5 of the data) and n_val 45 (0.3 of the data) "
            "needs 165 samples; iris has 150 samples, so n_test must be at most 30",
        ),
        (
            TaskSpec(dataset="circles", n_train=0.5, n_test=0.6),
            "task.n_test: 60 (0.6 of the data) with n_train 50 (0.5 of the data) needs 110 samples; circles has "
            "100 samples (n_samples), so n_test must be at most 50",
        ),
    ],
)
def test_impossible_sizes_raise_task_error_naming_the_key(task, message):
    with pytest.raises(TaskError, match=re.escape(message)):
        load_split(task, seed=0)


def test_regression_targets_are_standardized_with_training_statistics_and_round_trip():
    split = load_split(TaskSpec(dataset="diabetes", n_train=100), seed=4)
    assert abs(split.y_train.mean()) < 1e-5 and split.y_train.std() == pytest.approx(1, abs=1e-5)
    raw = load_split(TaskSpec(dataset="diabetes", n_train=100, scaling="none"), seed=4)
    assert (raw.y_mean, raw.y_std) == (0.0, 1.0)
    np.testing.assert_allclose(split.y_train * split.y_std + split.y_mean, raw.y_train, rtol=1e-5)
    np.testing.assert_allclose(split.y_test * split.y_std + split.y_mean, raw.y_test, rtol=1e-5)
    assert split.y_mean == pytest.approx(raw.y_train.mean(), rel=1e-6)
    assert set(raw.y_train.tolist()) <= set(load_diabetes().target.tolist())


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_blobs_validation_part_comes_from_the_training_parts_blobs(seed):
    task = TaskSpec(dataset="blobs", n_samples=151, n_train=150, n_val=600, n_test=1, scaling="none", data_noise=0.5)
    split = load_split(task, seed)
    train = split.x_train.reshape(len(split.x_train), -1)
    val = split.x_val.reshape(len(split.x_val), -1)
    for label in range(3):
        # blobs of sd 0.5 with centres anywhere in (-10, 10): the same blob's means lie within a few tenths
        gap = np.abs(train[split.y_train == label].mean(axis=0) - val[split.y_val == label].mean(axis=0))
        assert gap.max() < 0.5, (label, gap)
    # training and test parts are the draw they always were
    if seed < 2**32:
        x, y = datasets.make_blobs(n_samples=151, centers=3, n_features=2, cluster_std=0.5, random_state=seed)
        np.testing.assert_array_equal(split.x_train.reshape(150, 2), x[:150].astype(np.float32))
        np.testing.assert_array_equal(split.y_train, y[:150])
