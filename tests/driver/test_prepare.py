"""One pre-flight (``sweeper.driver.prepare``): ``run`` and ``validate`` read a data file, import and check a
task's own model and size its packs once each, and ``run`` trains what was checked without checking it again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sweeper import regular_files
from sweeper.driver.executors import Executor
from sweeper.tasks import user_models

#: A module name no other test imports: the search space's folder is where it is found.
MODULE = "prepare_once_model"
#: Writes a line to prepare_once_model.log beside it each time the module is executed.
MODEL = """\
from pathlib import Path

from torch import nn

with Path(__file__).with_suffix(".log").open("a") as log:
    log.write("imported\\n")


def make(input_shape, n_outputs):
    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, n_outputs))
"""
SPACE = f"""\
name: once
seed: 1
repeats: 2
task:
  dataset: {{path: points.csv, target: label, problem: binary}}
  n_train: 30
  model: {{factory: "{MODULE}:make"}}
  epochs: 2
search:
  sampler: grid
  configs:
    - {{placement: input, std: 0.1}}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """A search space with its data file and its model's module beside it, the module not yet imported."""
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    x = np.random.default_rng(0).normal(size=(80, 2))
    rows = [f"{a:.6f},{b:.6f},{int(a * b > 0)}" for a, b in x]
    (tmp_path / "points.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
    (tmp_path / f"{MODULE}.py").write_text(MODEL)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def counted(monkeypatch, owner, name: str, calls: list, keep=lambda *args: True) -> None:
    """``owner.name`` still does what it did, and appends its arguments to ``calls`` (those ``keep`` keeps)."""
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        if keep(*args):
            calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_command_reads_the_data_file_imports_checks_and_sizes_the_model_once(
    sweeper_cli, folder, monkeypatch, command
):
    reads, checks, sized = [], [], []
    counted(monkeypatch, regular_files, "read_regular", reads, keep=lambda path, *_: Path(path).name == "points.csv")
    counted(monkeypatch, user_models, "check_model", checks)
    counted(monkeypatch, Executor, "pack_size", sized)
    db = ("--db", f"sqlite:///{folder / 'sweeps.db'}") if command == "run" else ()

    result = sweeper_cli(command, folder / "space.yaml", *db)

    assert result.exit_code == 0, result.stderr
    assert len(reads) == 1
    assert (folder / f"{MODULE}.log").read_text() == "imported\n"
    assert len(checks) == 1 and len(sized) == 1
    if command == "run":
        assert "4 runs trained in " in result.stderr  # the baseline and one noise, 2 repeats each


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_bad_file_is_refused_before_torch_and_optuna_are_imported(tmp_path, command):
    """They take seconds to import: a file that cannot be read is refused without them."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from sweeper.cli import app\n"
        f"result = CliRunner().invoke(app, [{command!r}, {str(tmp_path / 'missing.yaml')!r}])\n"
        "print(result.exit_code, result.stderr.strip(), 'torch' in sys.modules, 'optuna' in sys.modules, sep='|')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.stdout.splitlines() == [f"2|error: {tmp_path / 'missing.yaml'}: no such search-space file|False|False"]
