"""What the driver stores for the report when a sweep starts: the plan, and per task its data and training."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris

from sweeper.driver.context import sweep_context
from sweeper.driver.prepare import check_data
from sweeper.space import load_space, parse_space

CIRCLES = """
name: context-circles
seed: 3
repeats: 4
metric: accuracy
task: {dataset: circles, dataset_seed: 1, n_train: 30, n_val: 0, hidden: [16], epochs: 5,
       optimizer: {name: sgd, lr: 0.1, momentum: 0.9}}
search:
  sampler: grid
  configs: [{placement: none}, {placement: input, kind: gaussian, std: 0.01}]
"""


def test_a_bundled_task_s_context_has_its_split_sizes_model_training_and_plan():
    spec = parse_space(CIRCLES)
    context = sweep_context(spec, check_data(spec))  # the sizes of repeat 0's split, as run_sweep stores them

    (task,) = context["tasks"]
    assert {k: context[k] for k in ("planned", "space", "sweep_seed", "repeats")} == {
        "planned": 2,
        "space": "grid of 2 configurations",
        "sweep_seed": 3,
        "repeats": 4,
    }
    assert (task["dataset"], task["dataset_seed"], task["n_train"], task["n_val"], task["n_test"]) == (
        "circles",
        1,
        30,
        0,
        70,
    )
    assert task["optimizer"] == "sgd lr 0.1 momentum 0.9" and task["epochs"] == 5
    assert task["features"]["kind"] == "generated" and task["features"]["inputs"] == 2  # not a table


def test_a_table_s_context_names_the_columns_it_was_read_with(tmp_path):
    x, y = load_iris(return_X_y=True)
    table = pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    table["colour"] = np.where(x[:, 0] > 5.8, "dark", "light")
    table["species"] = y
    table.to_csv(tmp_path / "iris.csv", index=False)
    (tmp_path / "space.yaml").write_text(
        "name: context-iris\nrepeats: 2\nmetric: accuracy\n"
        "task: {dataset: {path: iris.csv, target: species, drop: [sepal_width]}, n_train: 60, epochs: 2}\n"
        "search: {sampler: random, n_trials: 3, space: {placement: [input], std: [0.1, 0.2]}}\n"
    )

    spec = load_space(tmp_path / "space.yaml")
    context = sweep_context(spec, check_data(spec))

    (task,) = context["tasks"]
    assert context["planned"] == 4 and context["space"] == "random, 3 trials and the baseline"
    columns = [(c["name"], c["encoding"]) for c in task["features"]["columns"]]
    assert columns == [("sepal_length", "numeric"), ("petal_length", "numeric"), ("petal_width", "numeric")] + [
        ("colour", "one-hot")
    ]
    assert task["features"]["dropped"] == [{"name": "sepal_width", "why": "drop:"}]
    assert task["n_train"] + task["n_val"] + task["n_test"] == 150
