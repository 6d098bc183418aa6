"""A user's data file as a task's data set: reading, checking, encoding per split, and what is stored."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_digits, load_iris

from sweeper.errors import TaskError
from sweeper.tasks import files
from sweeper.tasks.data import input_shape, load_split, n_outputs, part_sizes
from sweeper.tasks.spec import TaskSpec


def task(tmp_path, dataset: dict, **fields) -> TaskSpec:
    """The task as a search space in ``tmp_path`` would give it."""
    return TaskSpec.model_validate({"dataset": dataset, **fields}, context={"base_dir": tmp_path})


def refusal(tmp_path, dataset: dict, **fields) -> str:
    with pytest.raises(ValidationError) as caught:
        task(tmp_path, dataset, **fields)
    errors = caught.value.errors()
    assert len(errors) == 1
    return errors[0]["msg"].removeprefix("Value error, ")


def iris_table(n_missing: int = 0) -> pd.DataFrame:
    """Iris with an id column, a text column and text class labels; ``n_missing`` blanks in petal_width."""
    x, y = load_iris(return_X_y=True)
    table = pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    table.insert(0, "id", np.arange(len(y), dtype=float))
    table["colour"] = np.where(x[:, 0] > 5.8, "dark", np.where(x[:, 1] > 3.0, "light", "mid"))
    table["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    table.loc[np.arange(n_missing) * 7 + 3, "petal_width"] = np.nan
    return table


@pytest.fixture
def iris_csv(tmp_path):
    iris_table().to_csv(tmp_path / "iris.csv", index=False)
    return tmp_path / "iris.csv"


def test_a_text_column_is_one_hot_encoded_after_the_numbers_with_the_files_categories(tmp_path, iris_csv):
    t = task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=30, scaling="none")
    split = load_split(t, seed=4)
    table = iris_table()
    assert split.input_shape == input_shape(t) == (5 + 3,)  # 5 numeric columns, colour's 3 categories
    assert n_outputs(t) == 3 and split.n_classes == 3 and t.problem == "multiclass"
    for x, y in ((split.x_train, split.y_train), (split.x_val, split.y_val), (split.x_test, split.y_test)):
        rows = table.iloc[x[:, 0].astype(int)]  # the id column passes through unscaled
        np.testing.assert_array_equal(x[:, :5], rows.iloc[:, :5].to_numpy(np.float32))
        onehot = (rows["colour"].to_numpy()[:, None] == np.array(["dark", "light", "mid"])).astype(np.float32)
        np.testing.assert_array_equal(x[:, 5:], onehot)
        # Class labels are indices into the sorted labels.
        np.testing.assert_array_equal(y, pd.Categorical(rows["species"]).codes)


def test_missing_values_are_refused_naming_every_column_and_how_many_rows(tmp_path):
    table = iris_table(n_missing=4)
    table.loc[[0, 5, 9], "colour"] = None
    table.loc[[1], "sepal_width"] = np.nan
    table.to_csv(tmp_path / "iris.csv", index=False)
    message = refusal(tmp_path, {"path": "iris.csv", "target": "species"})
    assert message == (
        "iris.csv: missing values in 3 columns: sepal_width (1 row), petal_width (4 rows), colour (3 rows); "
        "allowed: impute: median, mean or most_frequent (text columns take their most frequent value), or leave "
        "them out with drop: [sepal_width, petal_width, colour]"
    )
    iris_table(n_missing=2).to_csv(tmp_path / "iris.csv", index=False)
    message = refusal(tmp_path, {"path": "iris.csv", "target": "species"})
    assert message.startswith("iris.csv: missing values in 1 column: petal_width (2 rows); allowed: impute:")
    assert message.endswith("or leave it out with drop: [petal_width]")


def test_imputed_values_are_the_training_parts_median(tmp_path):
    iris_table(n_missing=12).to_csv(tmp_path / "iris.csv", index=False)
    t = task(tmp_path, {"path": "iris.csv", "target": "species", "impute": "median"}, n_train=60, scaling="none")
    split = load_split(t, seed=2)
    table = iris_table(n_missing=12)
    blank = table["petal_width"].isna().to_numpy()
    train_ids = split.x_train[:, 0].astype(int)
    median = np.median(table["petal_width"].to_numpy()[train_ids][~blank[train_ids]])
    all_rows = np.median(table["petal_width"].dropna())
    assert median != pytest.approx(all_rows)  # so the test tells the training part from the whole file
    for x in (split.x_train, split.x_val, split.x_test):
        ids = x[:, 0].astype(int)
        assert blank[ids].any()
        np.testing.assert_array_equal(x[blank[ids], 4], np.float32(median))
        np.testing.assert_array_equal(x[~blank[ids], 4], table["petal_width"].to_numpy(np.float32)[ids[~blank[ids]]])


def test_standard_scaling_makes_every_encoded_column_standard_on_the_training_part(tmp_path, iris_csv):
    split = load_split(task(tmp_path, {"path": "iris.csv", "target": "species", "drop": ["id"]}, n_train=60), seed=0)
    np.testing.assert_allclose(split.x_train.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(split.x_train.std(0), 1, atol=1e-5)


@pytest.mark.parametrize(
    "dataset, said",
    [
        (
            {"path": "iris.csv", "target": "kind"},
            "target: iris.csv has no column 'kind'; columns: id, sepal_length, sepal_width, petal_length, petal_width, "
            "colour, species",
        ),
        (
            {"path": "iris.csv", "target": "species", "features": ["id", "petal"]},
            "features: iris.csv has no column 'petal'; columns: id, sepal_length,",
        ),
        (
            {"path": "iris.csv", "target": "species", "drop": ["sepal"]},
            "drop: iris.csv has no column 'sepal'; columns: ",
        ),
        ({"path": "iris.csv"}, "target: required for a table; name the column of iris.csv to predict"),
        ({"path": "nowhere.csv", "target": "y"}, "nowhere.csv: no such data file (looked for "),
        ({"path": "iris.txt", "target": "y"}, "iris.txt: .txt is not a data file sweeper reads; allowed: .csv, "),
        (
            {"path": "iris.csv", "target": "species", "problem": "binary"},
            "iris.csv: column 'species': 3 classes (setosa, versicolor, virginica); problem binary needs 2",
        ),
        ({"path": "iris.csv", "target": "species", "problem": "regression"}, "iris.csv: column 'species': holds "),
        (
            {"path": "iris.csv", "target": "species", "features": ["id"], "drop": ["id"]},
            "give features: (the columns to use) or drop: (the columns to leave out), not both",
        ),
        ({"path": "iris.csv", "target": "species", "sep": ";"}, "sep: unknown key; allowed: path, target, problem,"),
        ({"target": "species"}, "path: required key missing; give the data file: {path: data.csv, target: column}"),
    ],
)
def test_what_a_file_cannot_give_is_refused_in_one_line_naming_file_and_column(tmp_path, iris_csv, dataset, said):
    (tmp_path / "iris.txt").write_text("y\n1\n")
    message = refusal(tmp_path, dataset)
    assert message.startswith(said), message
    assert "\n" not in message


def test_an_unreadable_file_is_refused_naming_it(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert refusal(tmp_path, {"path": "bad.parquet", "target": "y"}).startswith(
        "bad.parquet: cannot be read as PARQUET: "
    )


def test_a_parquet_file_gives_the_same_split_as_the_same_table_in_csv(tmp_path, iris_csv):
    iris_table().to_parquet(tmp_path / "iris.parquet")
    a = load_split(task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=30), seed=9)
    b = load_split(task(tmp_path, {"path": "iris.parquet", "target": "species"}, n_train=30), seed=9)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize(
    "target, problem, classes",
    [
        (["b", "a", "b", "a"] * 10, "binary", ("a", "b")),
        ([True, False] * 20, "binary", ("False", "True")),
        ([3, 1, 2, 10] * 10, "multiclass", ("1", "2", "3", "10")),
        (list(np.linspace(0, 1, 40)), "regression", ()),
        (list(range(40)), "regression", ()),  # whole numbers, but more than a few distinct values
    ],
)
def test_the_problem_is_inferred_from_the_target_and_said(tmp_path, target, problem, classes):
    pd.DataFrame({"x": np.arange(40.0), "y": target}).to_csv(tmp_path / "t.csv", index=False)
    t = task(tmp_path, {"path": "t.csv", "target": "y"}, n_train=10)
    assert t.problem == problem and t.dataset.data.classes == classes
    assert files.notes({"t": t}) == [
        f"task 't': problem {problem} inferred from column 'y' of t.csv ("
        + (f"{len(classes)} classes: {', '.join(classes)}" if classes else "numbers, not a few whole values")
        + "); give problem: binary, multiclass or regression to choose"
    ]
    given = task(tmp_path, {"path": "t.csv", "target": "y", "problem": problem}, n_train=10)
    assert files.notes({"t": given}) == []
    split = load_split(t.model_copy(update={"scaling": "none"}), seed=0)
    rows = split.x_train[:, 0].astype(int)  # x is the row number
    if classes:  # each label maps to its index among the sorted labels
        expected = [classes.index(str(target[i])) for i in rows]
        assert split.y_train.dtype == np.int64 and split.y_train.tolist() == expected
    else:
        np.testing.assert_array_equal(split.y_train, np.asarray(target, dtype=np.float32)[rows])


def test_a_test_file_is_every_repeats_test_part(tmp_path):
    table = iris_table()
    table.iloc[:120].to_csv(tmp_path / "iris.csv", index=False)
    table.iloc[120:].to_csv(tmp_path / "holdout.csv", index=False)
    t = task(
        tmp_path, {"path": "iris.csv", "target": "species", "test_path": "holdout.csv"}, n_train=45, scaling="none"
    )
    assert part_sizes(t) == (45, 30, 30)  # validation as large as the test part, by default
    first, second = load_split(t, seed=0), load_split(t, seed=1)
    np.testing.assert_array_equal(first.x_test[:, 0], np.arange(120, 150))
    np.testing.assert_array_equal(second.x_test, first.x_test)
    assert not np.array_equal(first.x_train, second.x_train)
    ids = np.concatenate([first.x_train[:, 0], first.x_val[:, 0]]).astype(int)
    assert len(set(ids)) == 75 and ids.max() < 120
    with pytest.raises(
        TaskError,
        match=r"^task.n_test: the test part is the 30 rows of test_path holdout.csv; "
        r"leave n_test out$",
    ):
        part_sizes(t.model_copy(update={"n_test": 10}))


@pytest.mark.parametrize(
    "fields, said",
    [
        (
            {"n_train": 150},
            "task.n_train: 150 leaves no test data; iris.csv has 150 samples, so n_train must be at most 149",
        ),
        (
            {"n_train": 100, "n_val": 40, "n_test": 20},
            "task.n_test: 20 with n_train 100 and n_val 40 needs 160 samples; "
            "iris.csv has 150 samples, so n_test must be at most 10",
        ),
    ],
)
def test_parts_too_large_for_the_file_are_refused(tmp_path, iris_csv, fields, said):
    with pytest.raises(TaskError) as caught:
        load_split(task(tmp_path, {"path": "iris.csv", "target": "species"}, **fields), seed=0)
    assert str(caught.value) == said


def test_a_class_too_rare_to_stratify_is_refused_naming_it(tmp_path):
    table = iris_table().iloc[:102]  # two rows of virginica
    table.to_csv(tmp_path / "iris.csv", index=False)
    with pytest.raises(TaskError) as caught:
        load_split(task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=40), seed=0)
    assert str(caught.value) == (
        "iris.csv: class 'virginica' has 2 rows; a stratified split into 3 parts needs at "
        "least 3 of each class (or n_val: 0 for one part less)"
    )
    split = load_split(task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=40, n_val=0), seed=0)
    assert set(split.y_train) == set(split.y_test) == {0, 1, 2}


@pytest.fixture
def digits_npz(tmp_path):
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "images.npz", X=x.reshape(-1, 8, 8), y=y)
    np.savez(tmp_path / "channels.npz", X=np.stack([x, 16 - x], 1).reshape(-1, 2, 8, 8), y=y)
    return tmp_path


@pytest.mark.parametrize(
    "path, model, shape",
    [
        ("images.npz", "cnn", (1, 8, 8)),
        ("images.npz", "rnn", (8, 8)),
        ("images.npz", "mlp", (64,)),
        ("channels.npz", "cnn", (2, 8, 8)),
        ("channels.npz", "mlp", (128,)),
    ],
)
def test_arrays_take_the_shape_their_model_needs(digits_npz, path, model, shape):
    fields = {"hidden": [16]} if model == "rnn" else {}
    t = task(digits_npz, {"path": path}, model=model, n_train=100, **fields)
    split = load_split(t, seed=0)
    assert input_shape(t) == split.input_shape == shape
    assert split.x_train.shape == (100, *shape) and n_outputs(t) == 10 and t.problem == "multiclass"


def test_images_are_split_as_digits_is(digits_npz):
    # The same samples in the same order, split with the same seed: the bundled digits' parts.
    mine = load_split(task(digits_npz, {"path": "images.npz"}, model="cnn", n_train=200), seed=7)
    bundled = load_split(TaskSpec(dataset="digits", model="cnn", n_train=200), seed=7)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(mine, field), getattr(bundled, field))


@pytest.mark.parametrize(
    "path, model, said",
    [
        ("images.npz", "rnn", None),
        (
            "channels.npz",
            "rnn",
            "model 'rnn' needs sequences, samples of shape (T, F); channels.npz holds samples of shape (2, 8, 8)",
        ),
        (
            "table.csv",
            "cnn",
            "model 'cnn' needs images, samples of shape (H, W) or (C, H, W); table.csv holds samples of shape (1,)",
        ),
    ],
)
def test_a_model_that_cannot_take_the_files_samples_is_refused(digits_npz, path, model, said):
    pd.DataFrame({"x": np.arange(20.0), "y": [0, 1] * 10}).to_csv(digits_npz / "table.csv", index=False)
    dataset = {"path": path, "target": "y"} if path.endswith(".csv") else {"path": path}
    if said is None:
        task(digits_npz, dataset, model=model, hidden=[8])
    else:
        assert refusal(digits_npz, dataset, model=model, hidden=[8]) == said
    too_small = refusal(digits_npz, {"path": "images.npz"}, model="cnn", channels=[4, 4, 4, 4])
    assert too_small.startswith("images.npz: images of 8x8 are too small for 4 convolutions that each halve them")


def test_the_task_carries_the_files_contents_and_their_hash(tmp_path, iris_csv):
    t = task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=30)
    described = files.described({"iris": t}, str(tmp_path))
    assert described == {
        "data_dir": str(tmp_path),
        "tasks": {
            "iris": {
                "path": "iris.csv",
                "sha256": hashlib.sha256(iris_csv.read_bytes()).hexdigest(),
                "rows": 150,
                "test_path": None,
                "test_sha256": None,
                "problem": "multiclass",
                "classes": ["setosa", "versicolor", "virginica"],
            }
        },
    }
    assert files.changed(described, described) is None
    # A copy in another process needs no file: the contents travel with the task.
    copy = pickle.loads(pickle.dumps(t))
    iris_csv.unlink()
    assert copy == t
    np.testing.assert_array_equal(load_split(copy, seed=3).x_train, load_split(t, seed=3).x_train)
    iris_table().iloc[:-1].to_csv(tmp_path / "iris.csv", index=False)
    changed = files.described({"iris": task(tmp_path, {"path": "iris.csv", "target": "species"})}, str(tmp_path))
    assert files.changed(described, changed).startswith(
        f"data file iris.csv of task 'iris' (sha256 {described['tasks']['iris']['sha256'][:12]}... when stored, "
        f"{changed['tasks']['iris']['sha256'][:12]}... now)"
    )


def test_a_fraction_of_a_files_rows_sizes_its_parts_beside_a_fixed_test_file(tmp_path, iris_csv):
    table = iris_table().sample(frac=1.0, random_state=0)  # every class in both files
    table.iloc[:100].to_csv(tmp_path / "main.csv", index=False)
    table.iloc[100:].to_csv(tmp_path / "held.csv", index=False)
    t = task(tmp_path, {"path": "main.csv", "target": "species", "test_path": "held.csv"}, n_train=0.6, n_val=0.2)
    assert part_sizes(t) == (60, 20, 50)
    t = task(tmp_path, {"path": "iris.csv", "target": "species"}, n_train=0.4)
    split = load_split(t, seed=1)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (60, 45, 45)


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("n_train", 1.5, "an integer from 2 to 1,000,000"),
        ("n_train", 1, "an integer from 2 to 1,000,000"),
        ("n_train", True, "an integer from 2 to 1,000,000"),
        ("n_val", -1, "an integer from 0 to 1,000,000"),
        ("n_test", 0, "an integer from 1 to 1,000,000"),
        ("n_test", 1.0, "an integer from 1 to 1,000,000"),
    ],
)
def test_a_part_is_a_count_or_a_fraction_said_in_one_line(key, value, allowed):
    with pytest.raises(ValidationError) as caught:
        TaskSpec(dataset="iris", **{key: value})
    (error,) = caught.value.errors()
    assert error["msg"].removeprefix("Value error, ") == (
        f"{value!r} is not allowed; allowed: a count, {allowed}, or a fraction of the data set, 0 < f < 1"
    )


def test_an_unknown_imputation_is_refused_with_what_is_allowed(tmp_path, iris_csv):
    assert refusal(tmp_path, {"path": "iris.csv", "target": "species", "impute": "mode"}) == (
        "impute: 'mode' is not allowed; allowed: 'median', 'mean' or 'most_frequent'"
    )
