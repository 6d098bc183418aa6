"""A task on a user's data file travels to Ray workers as data, not as a path they might not see."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sweeper.driver.planner import PlannedRun, plan  # noqa: E402
from sweeper.engine.population import train_population  # noqa: E402
from sweeper.space import load_space  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_packed_job_holds_the_files_contents_and_no_path_to_them(tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.py"))
    spec = load_space(folder / "patients_holdout.yaml").with_overrides(epochs=3)
    name, task = next(iter(spec.tasks.items()))
    config = spec.grid_configs()[0][1]
    packs = plan(spec.seed, spec.tasks, [PlannedRun(0, config, name, r) for r in range(2)], {name: 2})
    here = train_population(packs[0].task, packs[0].members, "cpu")

    # What the Ray executor hands to Tune (tune.with_parameters puts the packs in Ray's object store).
    shipped = ray.cloudpickle.dumps(packs)
    for path in (folder, folder / "patients.csv", folder / "patients_holdout.csv"):
        assert str(path).encode() not in shipped
    shutil.rmtree(folder)  # a worker that cannot see the driver's files
    there = train_population(ray.cloudpickle.loads(shipped)[0].task, packs[0].members, "cpu")
    assert [r.final for r in there] == [r.final for r in here]
    assert here[0].final["test_accuracy"] * 80 == pytest.approx(round(here[0].final["test_accuracy"] * 80))
