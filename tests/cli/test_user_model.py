"""A sweep of a user's own model from the command line: checked before anything is written, run,
reported, and a trial rerun alone from another process's point of view (the module found afresh)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

TOYS = Path(__file__).parents[1] / "engine" / "user_models" / "toy_models.py"
#: A module name no other test imports: the sweep's folder is where it is found.
MODULE = "cli_user_models"

SPACE = """\
name: own-model
seed: 3
repeats: 2
task:
  dataset: circles
  n_train: 30
  model: {{factory: "{factory}", args: {args}{sites}}}
  epochs: 10
search:
  sampler: grid
  configs:
    - {{placement: input, std: 0.05}}
    - {{placement: {placement}, std: 0.1}}
"""


def space(
    folder: Path,
    factory: str = f"{MODULE}:mlp",
    args: str = "{width: 8}",
    sites: str = "",
    placement: str = "pre_activation",
) -> Path:
    path = folder / "space.yaml"
    path.write_text(
        SPACE.format(factory=factory, args=args, sites=f", sites: {sites}" if sites else "", placement=placement)
    )
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A search space's folder holding the model module, as a user keeps it beside the file."""
    path = tmp_path_factory.mktemp("own_model")
    shutil.copy(TOYS, path / f"{MODULE}.py")
    return path


def test_a_sweep_of_an_own_model_validates_runs_reports_and_reruns_alone(sweeper_cli, folder, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = space(folder)
    assert sweeper_cli("validate", path).exit_code == 0
    ran = sweeper_cli("run", path, "--db", url)
    assert ran.exit_code == 0, ran.stderr
    runs = json.loads(sweeper_cli("runs", "own-model", "--db", url, "--format", "json").stdout)
    # an nn.Sequential of Linear and ReLU: the fused engine (tests/engine/test_user_model_fused.py)
    assert len(runs) == 3 * 2 and {r["engine"] for r in runs} == {"fused"}
    report = sweeper_cli("report", "own-model", "--db", url, "--format", "json")
    assert report.exit_code == 0 and f"{MODULE}:mlp(width=8)" in report.stdout
    # A later process: the module is not imported yet, and is found from the folder it is run in.
    del sys.modules[MODULE]
    monkeypatch.chdir(folder)
    rerun = sweeper_cli("rerun", "own-model", 2, "--db", url, "--format", "json")
    assert rerun.exit_code == 0, rerun.stderr
    rows = json.loads(rerun.stdout)
    assert [r["repeat"] for r in rows] == [0, 1] and all(r["same"] for r in rows)
    stored = {r["repeat"]: r["test_accuracy"] for r in runs if r["trial"] == 2}
    assert {r["repeat"]: r["new_test_accuracy"] for r in rows} == stored


@pytest.mark.parametrize(
    "case, says",
    [
        (
            dict(factory="no_such_module:make"),
            "model factory 'no_such_module:make': cannot import 'no_such_module': "
            "ModuleNotFoundError: No module named 'no_such_module' (searched ",
        ),
        (dict(factory=f"{MODULE}:nothing"), f"model factory '{MODULE}:nothing': module '{MODULE}' ("),
        (
            dict(factory=f"{MODULE}:raises", args="{}"),
            f"model factory '{MODULE}:raises' raised ValueError: width must be even",
        ),
        (
            dict(factory=f"{MODULE}:wrong_output", args="{}"),
            f"model factory '{MODULE}:wrong_output': the model maps a batch of shape (2, 2) to (2, 2); allowed: (2, 1)",
        ),
        (
            dict(args="{width: 8, depth: 1, colour: red}"),
            f"model factory '{MODULE}:mlp' raised TypeError: mlp() got an unexpected keyword argument 'colour'",
        ),
        (
            dict(factory=f"{MODULE}:no_activation", args="{}"),
            f"placement 'pre_activation' finds no site in model factory '{MODULE}:no_activation': the model has no "
            "activation module (nn.ReLU, nn.Tanh, nn.GELU, ...); name the modules in task.model.sites; its modules: "
            "0 (Linear), 1 (Linear)",
        ),
        (
            dict(sites='["3", head]'),
            f"model factory '{MODULE}:mlp': sites ['head'] name no module of the model; its "
            "modules: 0 (Flatten), 1 (Linear), 2 (ReLU), 3 (Linear)",
        ),
        (
            dict(factory=f"{MODULE}:fails_training", args="{}"),
            f"model {MODULE}:fails_training(): its forward pass in training mode on a batch of shape (2, 2) raised "
            "RuntimeError: no training here",
        ),
        (
            dict(factory="not a factory"),
            "task.model: factory 'not a factory' is not module:function, e.g. my_models:make_net",
        ),
    ],
)
def test_a_model_that_cannot_be_used_is_one_line_exit_2_and_nothing_written(sweeper_cli, folder, tmp_path, case, says):
    db = tmp_path / "s.db"
    for command in (("validate",), ("run", "--db", f"sqlite:///{db}")):
        result = sweeper_cli(command[0], space(folder, **case), *command[1:])
        assert result.exit_code == 2, result.stdout
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {folder / 'space.yaml'}: task.model: ") and says in line, line
        assert not db.exists()


def test_ray_ships_the_module_of_an_own_model_with_the_job(folder):
    pytest.importorskip("ray")
    from sweeper.driver.prepare import check_data
    from sweeper.driver.ray_executor import runtime_env
    from sweeper.space import load_space
    from sweeper.tasks.spec import TaskSpec

    spec = load_space(space(folder))
    check_data(spec)  # imports the module from the search space's folder, as a run does first
    (module,) = runtime_env(spec.tasks.values())["py_modules"]
    assert module.__name__ == MODULE and Path(module.__file__) == folder / f"{MODULE}.py"
    assert runtime_env([TaskSpec()]) == {}  # built-in families need nothing shipped


def test_settings_of_the_built_in_families_are_refused_beside_an_own_model(sweeper_cli, folder):
    path = space(folder)
    path.write_text(path.read_text().replace("  epochs: 10\n", "  epochs: 10\n  hidden: [8]\n  activation: tanh\n"))
    result = sweeper_cli("validate", path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: task: activation, hidden: only the built-in families (mlp, cnn, rnn) "
        "take it; your own model takes its settings as args: {factory: ..., args: {...}}\n"
    )


def test_a_model_that_trains_member_by_member_is_said_once_with_its_cost_by_validate_and_run(
    sweeper_cli, folder, tmp_path
):
    from sweeper.engine import functional

    path = space(folder, factory=f"{MODULE}:batchnorm", args="{width: 8}")
    said = re.compile(
        rf"note: model {MODULE}:batchnorm\(width=8\): its forward pass updates buffers in place \(1.running_mean, "
        r"1.running_var, 1.num_batches_tracked\); its members train one after another \(the same numbers\), so a "
        r"pack of (\d+) takes about \1 times as long as a vectorized pack of \1 would$"
    )
    for command in (("validate",), ("run", "--db", f"sqlite:///{tmp_path / 's.db'}")):
        functional._SAID.clear()
        result = sweeper_cli(*command[:1], path, *command[1:])
        assert result.exit_code == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if "one after another" in line]
        assert len(lines) == 1 and said.match(lines[0]), lines  # once: the engine does not say it again
        assert int(said.match(lines[0])[1]) >= 2
    functional._SAID.clear()
    assert "one after another" not in sweeper_cli("validate", space(folder)).stderr  # a vectorized model: nothing
