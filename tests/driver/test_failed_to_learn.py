"""Gradient noise of σ = 1e6 leaves the loss finite and the network at chance: its runs are stored as failed to
learn, distinct from diverged, listed with every run and counted by the report, which says so; a sweep whose
networks learn has no such flag."""

from __future__ import annotations

import json

import pytest

SPACE_YAML = """\
name: {name}
seed: 5
repeats: 4
metric: accuracy
task: {{dataset: moons, n_train: 30, hidden: [16], optimizer: {{name: adam, lr: 0.01}}, epochs: 200}}
search:
  sampler: grid
  configs:
{configs}
"""
DROWNED = "    - {placement: gradients, std: 1.0e6}\n"
LEARNING = "    - {placement: input, std: 0.05}\n    - {placement: weights, std: 0.01}\n"
REPEATS = 4


@pytest.fixture(scope="module")
def swept(tmp_path_factory, sweeper_cli):
    """The URL of a database with sweep ``drowned`` (σ = 1e6 on the gradients among learning configurations) and
    sweep ``learning`` (the same without it)."""
    folder = tmp_path_factory.mktemp("swept")
    url = f"sqlite:///{folder / 'sweeps.db'}"
    for name, configs in (("drowned", DROWNED + LEARNING), ("learning", LEARNING)):
        path = folder / f"{name}.yaml"
        path.write_text(SPACE_YAML.format(name=name, configs=configs.rstrip("\n")))
        result = sweeper_cli("run", path, "--db", url)
        assert result.exit_code == 0, result.stderr
    return url


def runs(sweeper_cli, url: str, sweep: str) -> list[dict]:
    result = sweeper_cli("runs", sweep, "--db", url, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def report(sweeper_cli, url: str, sweep: str) -> dict:
    result = sweeper_cli("report", sweep, "--db", url, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_drowned_in_gradient_noise_are_stored_as_failed_to_learn_not_diverged(swept, sweeper_cli):
    rows = runs(sweeper_cli, swept, "drowned")

    drowned = [r for r in rows if r["placement"] == "gradients"]
    assert len(drowned) == REPEATS
    assert all(r["failed_to_learn"] is True and r["diverged"] is False for r in drowned)
    assert all(r["train_loss"] is not None and r["train_accuracy"] < 0.6 for r in drowned)  # finite, at chance
    learning = [r for r in rows if r["placement"] != "gradients"]
    assert all(r["failed_to_learn"] is False and r["train_accuracy"] > 0.9 for r in learning)


def test_the_report_counts_runs_that_failed_to_learn_and_says_so(swept, sweeper_cli):
    made = report(sweeper_cli, swept, "drowned")
    stored = [r for r in runs(sweeper_cli, swept, "drowned") if r["placement"] == "gradients"]

    counts = {c["label"]: (c["n"], c["diverged"], c["failed_to_learn"]) for c in made["configs"]}
    assert counts == {
        "none": (4, 0, 0),
        "gradients gaussian σ=1e+06": (4, 0, 4),
        "input gaussian σ=0.05": (4, 0, 0),
        "weights gaussian σ=0.01": (4, 0, 0),
    }
    (drowned,) = [c for c in made["configs"] if c["label"].startswith("gradients")]
    # A run that failed to learn is a real outcome: its finite metric counts in the mean.
    assert drowned["mean"] == pytest.approx(sum(r["test_accuracy"] for r in stored) / REPEATS)
    assert (
        "gradients gaussian σ=1e+06: 4 of 4 runs failed to learn (training metric no better than chance or than "
        "before training); such runs count in the means as they finished."
    ) in made["summary"]
    assert "failed_to_learn" in made["methods"]


def test_a_sweep_whose_networks_learn_flags_none(swept, sweeper_cli):
    rows = runs(sweeper_cli, swept, "learning")
    made = report(sweeper_cli, swept, "learning")
    trials = json.loads(sweeper_cli("trials", "learning", "--db", swept, "--format", "json").stdout)

    assert [r["failed_to_learn"] for r in rows] == [False] * len(rows) and len(rows) == 3 * REPEATS
    assert [c["failed_to_learn"] for c in made["configs"]] == [0, 0, 0]
    assert [t["n_failed_to_learn"] for t in trials] == [0, 0, 0]
    assert "failed to learn" not in made["summary"]
