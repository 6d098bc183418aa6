"""A user's own model is untrusted input: what defines it is hashed and stored, what it does while it is
imported and built is bounded in time and memory, and it never replaces a module of sweeper's process.

Every refusal is one line on stderr, exit status 2, and nothing written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sweeper.tasks import user_models

MODULE = "untrusted_models"

MODELS = """\
import sys
import time

import torch
from torch import nn


def mlp(input_shape, n_outputs, width=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], width), nn.{activation}(), nn.Linear(width, n_outputs))


def exits(input_shape, n_outputs):
    sys.exit(0)


def sleeps(input_shape, n_outputs):
    time.sleep(3)
    return mlp(input_shape, n_outputs)


def local_class(input_shape, n_outputs):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp(input_shape, n_outputs)

        def forward(self, x):
            return self.body(x)

    return Net()


class Counts(nn.Module):
    def __init__(self, n_inputs, n_outputs):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_inputs, 8), nn.ReLU(), nn.Linear(8, n_outputs))

    def forward(self, x):
        return self.body(x).round().long()


def integer(input_shape, n_outputs):
    return Counts(input_shape[0], n_outputs)


def huge(input_shape, n_outputs):
    wide = 100_000
    return nn.Sequential(nn.Linear(input_shape[0], wide), nn.ReLU(), nn.Linear(wide, wide), nn.Linear(wide, n_outputs))
"""

SPACE = """\
name: untrusted
seed: 3
repeats: 2
task:
  dataset: circles
  n_train: 30
  model: {{factory: "{factory}"}}
  epochs: 5
search:
  sampler: grid
  configs:
    - {{placement: input, std: 0.05}}
    - {{placement: pre_activation, std: 0.1}}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A search space's folder holding the model module; the module is imported afresh in every test."""
    path = tmp_path / "project"
    path.mkdir()
    (path / f"{MODULE}.py").write_text(MODELS.format(activation="ReLU"))
    yield path
    sys.modules.pop(MODULE, None)


def space(folder: Path, factory: str = f"{MODULE}:mlp") -> Path:
    path = folder / "space.yaml"
    path.write_text(SPACE.format(factory=factory))
    return path


def refused(sweeper_cli, path: Path, tmp_path: Path) -> list[str]:
    """The one line each of validate and run is refused with; run writes nothing."""
    db = tmp_path / "s.db"
    lines = []
    for command in (("validate",), ("run", "--db", f"sqlite:///{db}")):
        result = sweeper_cli(command[0], path, *command[1:])
        assert result.exit_code == 2, (result.stdout, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        lines.append(line)
        assert not db.exists()
    assert lines[0] == lines[1]
    return lines


def test_a_model_changed_since_the_sweep_was_stored_stops_resume_and_rerun(sweeper_cli, folder, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = space(folder)
    ran = sweeper_cli("run", path, "--db", url)
    assert ran.exit_code == 0, ran.stderr
    stored = sweeper_cli("sweeps", "--db", url, "-f", "json").stdout
    # One line of the model changed: a 1-layer ReLU net becomes a tanh net.
    (folder / f"{MODULE}.py").write_text(MODELS.format(activation="Tanh"))
    for args in (("run", path), ("rerun", "untrusted", 1)):
        result = sweeper_cli(*args, "--db", url)
        assert result.exit_code == 2, result.stdout
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(
            f"error: sweep 'untrusted': the model {MODULE}:mlp of task 'circles' (sha256 of its Python files "
        ), line
        assert line.endswith(
            "changed since the sweep was stored, so new runs would not match the stored ones: restore the "
            "model's files, or run it under another --name"
        )
    assert sweeper_cli("sweeps", "--db", url, "-f", "json").stdout == stored
    # A helper file beside the module is part of the model too; restored, the sweep goes on.
    (folder / f"{MODULE}.py").write_text(MODELS.format(activation="ReLU"))
    assert sweeper_cli("rerun", "untrusted", 1, "--db", url).exit_code == 0
    (folder / "helpers.py").write_text("WIDTH = 8\n")
    assert sweeper_cli("rerun", "untrusted", 1, "--db", url).exit_code == 2


def test_the_stored_model_hash_covers_the_python_files_of_the_modules_folder(folder):
    from sweeper.tasks.spec import ModelFactory

    factory = ModelFactory(factory=f"{MODULE}:mlp")
    before = user_models.source_sha256(factory, folder)
    assert [f.name for f in user_models.source_files(factory, folder)] == [f"{MODULE}.py"]
    (folder / "notes.txt").write_text("not Python")
    assert user_models.source_sha256(factory, folder) == before
    (folder / "layers.py").write_text("# a helper\n")
    assert user_models.source_sha256(factory, folder) != before


def test_a_factory_that_calls_sys_exit_is_refused(sweeper_cli, folder, tmp_path):
    (line, _) = refused(sweeper_cli, space(folder, f"{MODULE}:exits"), tmp_path)
    assert line == (
        f"error: {folder / 'space.yaml'}: task.model: model factory '{MODULE}:exits' called sys.exit(0); "
        "a factory returns a model, it does not end the process"
    )


def test_a_module_that_calls_sys_exit_when_imported_is_refused(sweeper_cli, folder, tmp_path):
    (folder / "quits.py").write_text("import sys\nsys.exit(0)\n")
    (line, _) = refused(sweeper_cli, space(folder, "quits:mlp"), tmp_path)
    assert "model factory 'quits:mlp': cannot import 'quits': called sys.exit(0)" in line, line


def test_a_factory_that_takes_too_long_is_refused_saying_what_timed_out(sweeper_cli, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(user_models, "TIME_LIMIT_S", 0.5)
    (line, _) = refused(sweeper_cli, space(folder, f"{MODULE}:sleeps"), tmp_path)
    assert line.endswith(
        f"task.model: model factory '{MODULE}:sleeps': building the model on the meta device took longer than "
        "0.5 s; allowed: a module and model that import, build and run one batch within that time"
    ), line


def test_a_factory_defining_its_class_inside_the_function_is_refused(sweeper_cli, folder, tmp_path):
    (line, _) = refused(sweeper_cli, space(folder, f"{MODULE}:local_class"), tmp_path)
    assert line.endswith(
        f"model factory '{MODULE}:local_class': each call makes a new class (local_class.<locals>.Net, defined "
        "inside the function), so the members of a pack cannot be stacked; allowed: a class defined at module level"
    ), line


def test_a_model_returning_integers_is_refused(sweeper_cli, folder, tmp_path):
    (line, _) = refused(sweeper_cli, space(folder, f"{MODULE}:integer"), tmp_path)
    assert line.endswith(
        f"model factory '{MODULE}:integer': the model's output is int64; allowed: floating-point numbers "
        "(float32), which a loss can differentiate"
    ), line


def test_a_model_too_large_is_refused_from_the_meta_device_before_it_is_built(
    sweeper_cli, folder, tmp_path, monkeypatch
):
    from sweeper.engine import sizing

    monkeypatch.setattr(sizing, "free_memory", lambda device: 8 << 30)
    (line, _) = refused(sweeper_cli, space(folder, f"{MODULE}:huge"), tmp_path)
    assert line.endswith(
        f"model factory '{MODULE}:huge': the model's parameters alone need 40.0 GB but 8.6 GB are free on the CPU "
        "it is built on; allowed: a model that fits (fewer or narrower layers)"
    ), line


def test_a_module_named_as_an_installed_package_is_refused_and_never_imported(sweeper_cli, folder, tmp_path):
    import psycopg

    (folder / "psycopg.py").write_text("raise SystemExit('imported the user file')\n")
    (line, _) = refused(sweeper_cli, space(folder, "psycopg:make"), tmp_path)
    assert line.endswith(
        f"model factory 'psycopg:make': 'psycopg' in {folder} has the name of an installed module, which it "
        "would replace; allowed: a module name of your own (rename the file)"
    ), line
    assert sys.modules["psycopg"] is psycopg


def test_a_users_module_imports_installed_modules_not_files_beside_it(sweeper_cli, folder, tmp_path):
    # The user's module imports colorsys (not imported yet); a colorsys.py beside it must not be what it gets.
    (folder / "colorsys.py").write_text("raise SystemExit('imported the user file')\n")
    (folder / "uses_colorsys.py").write_text(
        "import colorsys\nfrom untrusted_models import mlp\nassert colorsys.rgb_to_hsv(0, 0, 0)[2] == 0\n"
    )
    sys.modules.pop("colorsys", None)
    try:
        result = sweeper_cli("validate", space(folder, "uses_colorsys:mlp"))
        assert result.exit_code == 0, result.stderr
        assert Path(sys.modules["colorsys"].__file__).parent != folder
    finally:
        sys.modules.pop("uses_colorsys", None)


def test_a_factory_inside_sweeper_is_refused(sweeper_cli, folder, tmp_path):
    (line, _) = refused(sweeper_cli, space(folder, "sweeper.cli:main"), tmp_path)
    assert line.endswith(
        "model factory 'sweeper.cli:main': is inside sweeper itself; allowed: a module of your own"
        " (or sweeper's own factories: sweeper.engine.bench)"
    ), line


def test_a_module_that_takes_too_long_to_import_is_refused_saying_so(sweeper_cli, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(user_models, "TIME_LIMIT_S", 0.5)
    (folder / "slow_import.py").write_text("import time\ntime.sleep(3)\n\ndef mlp(*args):\n    pass\n")
    try:
        (line, _) = refused(sweeper_cli, space(folder, "slow_import:mlp"), tmp_path)
    finally:
        sys.modules.pop("slow_import", None)
    assert line.endswith(
        "model factory 'slow_import:mlp': importing 'slow_import' took longer than 0.5 s; allowed: a module and "
        "model that import, build and run one batch within that time"
    ), line


def test_a_model_of_an_installed_package_is_defined_by_its_version_not_its_files():
    from importlib import metadata

    from sweeper.tasks.spec import ModelFactory

    factory = ModelFactory(factory="torch.nn:Linear")  # no model a user would sweep, but installed
    expected = user_models.hashlib.sha256(b"torch.nn:Linear")
    expected.update(f"\0installed\0torch=={metadata.version('torch')}".encode())
    assert user_models.source_sha256(factory) == expected.hexdigest()
