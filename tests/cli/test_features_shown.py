"""What the model sees, said by `validate`, `run` (one line) and the report's "What ran", read from the store."""

from __future__ import annotations

import json

from helpers import penguins

from sweeper.report.render import feature_lines
from sweeper.store import open_store

SPACE = """\
name: penguins
repeats: 2
task:
  dataset: {path: penguins.csv, target: species, impute: median, drop: [rowid]}
  n_train: 0.5
  hidden: [4]
  epochs: 3
search: {grid: {placement: [input], std: [0.1]}}
"""
TARGET = "target species: multiclass, 3 classes: Adelie -> 0, Chinstrap -> 1, Gentoo -> 2"


def test_validate_run_and_the_report_show_the_columns_encodings_and_labels(sweeper_cli, tmp_path):
    penguins().to_csv(tmp_path / "penguins.csv", index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 's.db'}"

    checked = sweeper_cli("validate", tmp_path / "space.yaml")
    assert checked.exit_code == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].endswith(": ok: sweep 'penguins', 2 configurations x 2 repeats x 1 task(s), metric val_accuracy")
    assert lines[1] == (
        "task 'penguins': features of penguins.csv: 8 inputs from 5 columns, scaling standard fitted on the "
        "training part"
    )
    assert "  left out: rowid (drop:)" in lines and f"  {TARGET}" in lines

    ran = sweeper_cli("run", tmp_path / "space.yaml", "--db", url)
    assert ran.exit_code == 0, ran.stderr
    (said,) = [line for line in ran.stderr.splitlines() if line.startswith("features: ")]
    assert said == (
        "features: task 'penguins': penguins.csv: 8 inputs; numeric bill_length_mm, year; one-hot island (3), "
        f"sex (2), colony (1); imputed bill_length_mm (median), sex (most frequent); left out rowid; {TARGET}"
    )

    report = sweeper_cli("report", "penguins", "--db", url)
    assert report.exit_code == 0, report.stderr
    what_ran = " ".join(report.stdout.split())  # the terminal wraps at its width
    assert "; left out: rowid (drop:); " in what_ran and TARGET in what_ran
    assert "task penguins: penguins.csv, 30 train, 15 validation, 15 test" in what_ran  # n_train: 0.5 of 60

    # The report reads the store only: a sweep stored before features were kept says so, once per task.
    with open_store(url) as store:
        context = store.sweep("penguins").context
    (task,) = context["tasks"]
    assert json.dumps(task["features"])  # plain JSON in sweeper_sweeps.context
    assert feature_lines({**task, "features": ["bill_length_mm", "island"]}) == [
        "features: not stored (sweep from an earlier version)"
    ]
