"""What a task's model sees, in words: columns and encodings, what was left out, the label mapping."""

from __future__ import annotations

import json

import numpy as np
from helpers import penguins

from sweeper.tasks import features
from sweeper.tasks.data import load_split
from sweeper.tasks.spec import TaskSpec


def task(tmp_path, dataset: dict, **fields) -> TaskSpec:
    penguins().to_csv(tmp_path / "penguins.csv", index=False)
    return TaskSpec.model_validate({"dataset": dataset, **fields}, context={"base_dir": tmp_path})


def test_a_tables_columns_encodings_imputation_and_labels_are_described(tmp_path):
    t = task(tmp_path, {"path": "penguins.csv", "target": "species", "impute": "median", "drop": ["year"]})
    described = features.described(t)
    assert json.loads(json.dumps(described)) == described  # stored as JSON with the sweep
    assert features.lines(described) == [
        "features of penguins.csv: 8 inputs from 5 columns, scaling standard fitted on the training part",
        "numeric (2): rowid, bill_length_mm [2 rows missing, filled with the training part's median]",
        "one-hot (3): island [Biscoe | Dream | Torgersen], sex [female | male; 5 rows missing, filled with the "
        "training part's most frequent value], colony [south]",
        "left out: year (drop:)",
        "look at rowid: it holds a distinct value in every row, as an id does (kept: leave it out with drop: [rowid])",
        "look at colony: it holds one value in every row (kept: leave it out with drop: [colony])",
        "target species: multiclass, 3 classes: Adelie -> 0, Chinstrap -> 1, Gentoo -> 2",
    ]
    assert features.line(described) == (
        "penguins.csv: 8 inputs; numeric rowid, bill_length_mm; one-hot island (3), sex (2), colony (1); imputed "
        "bill_length_mm (median), sex (most frequent); left out year; target species: multiclass, 3 classes: "
        "Adelie -> 0, Chinstrap -> 1, Gentoo -> 2"
    )
    # The description is what the model is given: as many inputs, the labels as said.
    split = load_split(t, seed=0)
    assert split.x_train.shape[1] == described["inputs"]
    table = penguins()
    np.testing.assert_array_equal(
        np.bincount(split.y_train, minlength=3) + np.bincount(split.y_val, minlength=3) + np.bincount(split.y_test),
        [int((table["species"] == name).sum()) for name in described["classes"]],
    )


def test_a_regression_target_says_how_it_is_scaled_and_features_not_listed_are_left_out(tmp_path):
    t = task(
        tmp_path,
        {
            "path": "penguins.csv",
            "target": "year",
            "problem": "regression",
            "features": ["island", "sex"],
            "impute": "mean",
        },
        n_train=0.5,
        scaling="none",
    )
    assert features.lines(features.described(t)) == [
        "features of penguins.csv: 5 inputs from 2 columns, not scaled",
        "one-hot (2): island [Biscoe | Dream | Torgersen], sex [female | male; 5 rows missing, filled with the "
        "training part's most frequent value]",
        "left out: rowid (not in features:), species (not in features:), bill_length_mm (not in features:), "
        "colony (not in features:)",
        "target year: regression, as it is",
    ]


def test_bundled_and_generated_data_say_their_inputs_and_classes():
    assert features.lines(features.described(TaskSpec(dataset="iris"))) == [
        "features of iris (bundled): 4 numeric inputs, scaling standard fitted on the training part",
        "target: multiclass, 3 classes",
    ]
    assert features.lines(features.described(TaskSpec(dataset="friedman1", scaling="minmax")))[1] == (
        "target: regression, standardized for training with the training part's mean and standard deviation; "
        "errors reported in its own units"
    )
    assert features.lines(features.described(TaskSpec(dataset="digits", model="cnn", hidden=[8]))) == [
        "features of digits (bundled): 64 numeric inputs (samples 8x8), scaling standard fitted on the training part",
        "target: multiclass, 10 classes",
    ]


def test_a_sweep_stored_before_features_were_kept_says_so():
    assert features.lines(None) == ["features: not stored (sweep from an earlier version)"]
    assert features.lines(["sepal_length", "colour"]) == ["features: not stored (sweep from an earlier version)"]
