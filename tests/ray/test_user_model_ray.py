"""A user's own model on Ray: its module travels with the job, so workers that cannot see the driver's
files import the code the driver checked, and train the numbers a local run trains."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from sweeper.driver.executors import LocalExecutor  # noqa: E402
from sweeper.driver.planner import Pack, PlannedRun, member  # noqa: E402
from sweeper.driver.prepare import check_data  # noqa: E402
from sweeper.driver.ray_executor import RayExecutor, runtime_env  # noqa: E402
from sweeper.space import load_space  # noqa: E402

TOYS = Path(__file__).parents[1] / "engine" / "user_models" / "toy_models.py"
MODULE = "ray_user_models"  # imported by no other test
SPACE = f"""\
name: own-model-ray
task: {{dataset: circles, n_train: 30, model: {{factory: "{MODULE}:encoder", args: {{width: 6}}}}, epochs: 6,
        log_every: 3}}
search:
  configs: [{{placement: pre_activation, std: 0.2}}]
"""


@pytest.mark.slow
def test_workers_import_the_module_shipped_with_the_job_and_train_the_local_numbers(tmp_path):
    folder = tmp_path / "elsewhere"  # on no worker's path, and not their working directory
    folder.mkdir()
    shutil.copy(TOYS, folder / f"{MODULE}.py")
    (folder / "space.yaml").write_text(SPACE)
    spec = load_space(folder / "space.yaml")
    check_data(spec)  # imports the module from the file's folder, as sweeper run does first
    name, task = next(iter(spec.tasks.items()))
    config = spec.search.configs[0]
    pack = Pack(name, task, tuple(member(spec.seed, task, PlannedRun(0, config, name, r)) for r in range(2)), (0, 0))

    executor = RayExecutor("cpu", env=runtime_env(spec.tasks.values()))  # starts a Ray of its own
    try:
        ((_, remote),) = list(executor.run([pack]))
    finally:
        executor.close()
    ((_, local),) = list(LocalExecutor("cpu").run([pack]))
    for a, b in zip(remote, local):
        assert a.engine == b.engine == "functional"
        for key, curve in b.curves.items():
            np.testing.assert_allclose(a.curves[key], curve, rtol=1e-6, atol=1e-6, err_msg=key)
