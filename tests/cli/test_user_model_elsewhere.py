"""A sweep of a user's model whose module was found in the folder it ran from: `rerun` and resuming find it
from any folder (where the sweep found it, stored with its hash), and refuse in one line if it changed or
is gone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from sweeper.store import open_store

EXAMPLE_MODELS = Path(__file__).parents[2] / "examples" / "models.py"
#: A module name no other test imports.
MODULE = "elsewhere_models"

SPACE = f"""\
name: elsewhere
seed: 1
repeats: 2
task:
  dataset: circles
  n_train: 0.3
  model: {{factory: "{MODULE}:mlp", args: {{widths: [8], activation: relu}}}}
  epochs: 5
search: {{grid: {{placement: [pre_activation], std: [0.1]}}}}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding the model module, its search space in a subfolder, and a sweep run from the
    project folder (so the module was found there, not beside the search space)."""
    (tmp_path / "project" / "spaces").mkdir(parents=True)
    shutil.copy(EXAMPLE_MODELS, tmp_path / "project" / f"{MODULE}.py")
    (tmp_path / "project" / "spaces" / "space.yaml").write_text(SPACE)
    (tmp_path / "elsewhere").mkdir()
    yield tmp_path
    sys.modules.pop(MODULE, None)


def _forget():
    """A later process: the module is not imported yet."""
    sys.modules.pop(MODULE, None)


def test_rerun_and_resume_find_the_model_from_another_folder_and_refuse_a_changed_one(
    sweeper_cli, project, monkeypatch
):
    url = f"sqlite:///{project / 's.db'}"
    monkeypatch.chdir(project / "project")
    ran = sweeper_cli("run", "spaces/space.yaml", "--db", url)
    assert ran.exit_code == 0, ran.stderr
    runs = json.loads(sweeper_cli("runs", "elsewhere", "--db", url, "--format", "json").stdout)
    with open_store(url) as store:
        entry = store.sweep("elsewhere")["data_files"]["tasks"]["circles"]
    assert entry["model_dir"] == str((project / "project").resolve())

    _forget()
    monkeypatch.chdir(project / "elsewhere")
    rerun = sweeper_cli("rerun", "elsewhere", 1, "--db", url, "--format", "json")
    assert rerun.exit_code == 0, rerun.stderr
    rows = json.loads(rerun.stdout)
    stored = {r["repeat"]: r["test_accuracy"] for r in runs if r["trial"] == 1}
    assert {r["repeat"]: r["new_test_accuracy"] for r in rows} == stored and all(r["same"] for r in rows)

    _forget()  # resuming with one more repeat, from another folder
    grown = sweeper_cli("run", project / "project" / "spaces" / "space.yaml", "--db", url, "--repeats", "3")
    assert grown.exit_code == 0, grown.stderr
    assert len(json.loads(sweeper_cli("runs", "elsewhere", "--db", url, "--format", "json").stdout)) == 2 * 3

    module = project / "project" / f"{MODULE}.py"
    module.write_text(module.read_text() + "\n# changed\n")
    _forget()
    changed = sweeper_cli("rerun", "elsewhere", 1, "--db", url)
    assert changed.exit_code == 2
    (line,) = changed.stderr.strip().splitlines()
    assert line.startswith(f"error: sweep 'elsewhere': the model {MODULE}:mlp of task 'circles' (sha256 of its ")
    assert "changed since the sweep was stored" in line

    module.unlink()
    _forget()
    for command in (("rerun", "elsewhere", 1), ("run", project / "project" / "spaces" / "space.yaml")):
        gone = sweeper_cli(*command, "--db", url)
        assert gone.exit_code == 2
        (line,) = gone.stderr.strip().splitlines()
        assert f"cannot import {MODULE!r}" in line
        assert line.endswith(
            f"the sweep found it in {(project / 'project').resolve()} when it was stored: restore it there)"
        )
