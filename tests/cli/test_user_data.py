"""The shipped examples of a user's own data, run as a user runs them, and what a changed data file stops."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPACES = sorted(EXAMPLES.glob("*.yaml"))
#: Configurations of each example space: the baseline and its grid.
CONFIGS = {"patients": 5, "patients_holdout": 5, "digits_images": 5}


def test_the_data_examples_are_shipped():
    assert {p.stem for p in SPACES} >= set(CONFIGS)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of examples/ in a folder of its own, the working directory elsewhere (paths are the file's)."""
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES, folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder


def contents(db: Path) -> list[str]:
    """Every row of every table (the file's bytes also change when SQLite moves its log into it)."""
    with sqlite3.connect(db) as connection:
        return list(connection.iterdump())


def runs_stored(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from sweeper_runs").fetchone()[0]


@pytest.mark.parametrize("stem", sorted(CONFIGS))
def test_each_example_validates_and_runs_from_another_folder(sweeper_cli, project, stem):
    space = project / f"{stem}.yaml"
    result = sweeper_cli("validate", space)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{space}: ok: sweep ")
    inferred = (
        "problem binary inferred from column 'outcome'"
        if "patients" in stem
        else "problem multiclass inferred from y of digits.npz (10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"
    )
    assert inferred in " ".join(result.stderr.split())

    db = project.parent / "sweeps.db"
    result = sweeper_cli("run", space, "--epochs", 2, "--repeats", 2, "--db", f"sqlite:///{db}")
    assert result.exit_code == 0, result.stderr
    assert runs_stored(db) == CONFIGS[stem] * 2


def test_a_changed_data_file_stops_resume_and_rerun_and_nothing_is_written(sweeper_cli, project):
    space, db = project / "patients_holdout.yaml", project.parent / "sweeps.db"
    url = f"sqlite:///{db}"
    assert sweeper_cli("run", space, "--epochs", 2, "--repeats", 2, "--db", url).exit_code == 0
    assert sweeper_cli("report", "patients-holdout", "--db", url).exit_code == 0
    assert sweeper_cli("rerun", "patients-holdout", 1, "--db", url).exit_code == 0
    before = contents(db)

    holdout = project / "patients_holdout.csv"
    text = holdout.read_text()
    assert ",B," in text
    holdout.write_text(text.replace(",B,", ",A,", 1))  # one patient's sex recoded
    for args in (("run", space, "--epochs", 2, "--repeats", 2), ("rerun", "patients-holdout", 1)):
        result = sweeper_cli(*args, "--db", url)
        assert result.exit_code == 2
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith(
            "error: sweep 'patients-holdout': data file patients_holdout.csv of task 'patients' (sha256 "
        )
        assert line.endswith(
            "changed since the sweep was stored, so new runs would not match the stored ones: "
            "restore the file, or run it under another --name"
        )
    assert contents(db) == before
    # The report reads stored rows: it is made without the data files (their part sizes then unsaid).
    (project / "patients.csv").unlink()
    report = sweeper_cli("report", "patients-holdout", "--db", url, "-f", "json")
    assert report.exit_code == 0, report.stderr


def test_a_data_file_that_cannot_serve_is_refused_before_a_database_is_made(sweeper_cli, project):
    space = project / "patients.yaml"
    space.write_text(space.read_text().replace("impute: median", "impute: median, features: [age, weight]"))
    result = sweeper_cli("run", space, "--db", f"sqlite:///{project / 'new.db'}")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {space}: task.dataset: features: patients.csv has no column 'weight'; columns: age, sex, bmi, bp, "
        "tc, ldl, hdl, tch, ltg, glu, outcome"
    )
    assert not (project / "new.db").exists()
