"""The shipped examples of a user's own model (examples/models.py) run as a user runs them: validated, run
from another working folder, reported; and from a copy of examples/ elsewhere (paths are the file's)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The search spaces of examples/ that name a factory of models.py, with the factory and its arguments as
#: the report names the model.
OWN_MODEL = {
    "patients_own_model": "models:mlp(widths=[32, 32], activation='relu')",
    "digits_own_cnn": "models:cnn(channels=[4, 8])",
}
REPEATS = 2


def configurations(space: Path) -> int:
    """The baseline and every point of the space's grids."""
    grids = yaml.safe_load(space.read_text())["search"]["grid"]
    return 1 + sum(math.prod(len(values) for values in grid.values()) for grid in grids)


def stored_runs(db: Path) -> list[tuple[int, str, float, float]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("select trial_id, engine, val_accuracy, test_accuracy from sweeper_runs").fetchall()


@pytest.fixture(autouse=True)
def fresh_models_module(monkeypatch):
    """Each test imports ``models`` afresh from the folder of its search space (an import stays in
    sys.modules, which would hide the folder it was found in)."""
    monkeypatch.delitem(sys.modules, "models", raising=False)


def run_and_report(sweeper_cli, space: Path, db: Path) -> str:
    """Validates, runs and reports ``space`` into ``db``; checks what was stored; the report's text."""
    checked = sweeper_cli("validate", space)
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.startswith(f"{space}: ok: sweep ")
    url = f"sqlite:///{db}"
    ran = sweeper_cli("run", space, "--epochs", 2, "--repeats", REPEATS, "--db", url)
    assert ran.exit_code == 0, ran.stderr
    runs = stored_runs(db)
    assert len(runs) == configurations(space) * REPEATS
    # vectorized: no member-by-member fallback; models:mlp, a plain dense stack, on the fused engine
    assert {engine for _, engine, _, _ in runs} == {"fused" if "models:mlp" in space.read_text() else "functional"}
    assert "train one after another" not in ran.stderr
    assert all(math.isfinite(v) and 0 <= v <= 1 for _, _, val, test in runs for v in (val, test))

    name = yaml.safe_load(space.read_text())["name"]
    report = sweeper_cli("report", name, "--db", url, "--format", "json")
    assert report.exit_code == 0, report.stderr
    assert OWN_MODEL[space.stem] in report.stdout
    assert json.loads(report.stdout)
    text = sweeper_cli("report", name, "--db", url)
    assert text.exit_code == 0, text.stderr
    assert OWN_MODEL[space.stem] in " ".join(text.stdout.split())
    return text.stdout


def test_the_own_model_examples_are_shipped():
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= set(OWN_MODEL)
    assert (EXAMPLES / "models.py").is_file()


@pytest.mark.parametrize("stem", sorted(OWN_MODEL))
def test_each_own_model_example_runs_from_another_working_folder(sweeper_cli, stem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_and_report(sweeper_cli, EXAMPLES / f"{stem}.yaml", tmp_path / "sweeps.db")
    assert Path(sys.modules["models"].__file__).parent == EXAMPLES


@pytest.mark.parametrize("stem", sorted(OWN_MODEL))
def test_each_own_model_example_runs_from_a_copy_of_examples(sweeper_cli, stem, tmp_path, monkeypatch):
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_and_report(sweeper_cli, folder / f"{stem}.yaml", tmp_path / "sweeps.db")
    # The copy's module and data were used, not the repository's.
    assert Path(sys.modules["models"].__file__).parent == folder


def test_the_factories_map_samples_to_logits_without_a_layer_that_forces_the_fallback():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import models
    finally:
        sys.path.remove(str(EXAMPLES))
    import torch
    from torch import nn

    for shape, n_outputs, net in [
        ((10,), 1, models.mlp((10,), 1, widths=[8, 8], activation="tanh")),
        ((8, 8), 10, models.cnn((8, 8), 10, channels=[4, 8])),
        ((3, 8, 8), 3, models.cnn((3, 8, 8), 3, channels=[4])),
    ]:
        assert net(torch.zeros(5, *shape)).shape == (5, n_outputs)
        assert not [m for m in net.modules() if isinstance(m, (nn.Dropout, nn.modules.batchnorm._BatchNorm))]
        assert not list(net.buffers())
