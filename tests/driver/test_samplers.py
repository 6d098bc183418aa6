"""Random and TPE sweeps run n_trials proposals plus the baseline, and their Optuna study lives in the same database."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from sweeper.driver._optuna import BASELINE_USER_ATTR
from sweeper.store import Store, open_store

N_TRIALS, REPEATS = 3, 2
SPACE_YAML = """\
name: sampled-{sampler}
seed: 2
repeats: 2
pack_size: 2        # one trial per round: the sampler is told each result before it proposes the next
task: {{dataset: circles, n_train: 30, hidden: [8], epochs: 20}}
search:
  sampler: {sampler}
  n_trials: 3
  space:
    placement: [input, pre_activation, [input, pre_activation]]
    kind: [gaussian, multiplicative]
    std: {{log_uniform: [1e-3, 1]}}
    schedule: [constant, annealed]
    gamma: {{uniform: [0.3, 1.0]}}
"""


@pytest.fixture(scope="module")
def sampled(swept_once):
    """``sampled(sampler, backend)``: the database URL of the tiny sampled sweep, run once per module."""
    return lambda sampler, backend: swept_once(SPACE_YAML.format(sampler=sampler), backend)


CASES = [("tpe", "sqlite"), ("random", "sqlite"), pytest.param("tpe", "postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("sampler, backend", CASES)
def test_a_sampled_sweep_runs_the_baseline_and_n_trials_proposals(sampled, sampler, backend):
    with open_store(sampled(sampler, backend), create=False) as store:
        trials = store.trials(f"sampled-{sampler}")
        runs = store.runs(f"sampled-{sampler}")
        (sweep,) = store.sweeps()

    assert [t["trial"] for t in trials] == list(range(N_TRIALS + 1))
    assert trials[0]["label"] == "none" and trials[0]["params"] == []
    assert all(t["params"] for t in trials[1:])
    assert len({t["label"] for t in trials}) == N_TRIALS + 1
    assert all(t["status"] == "complete" and t["n_runs"] == REPEATS for t in trials)
    assert all(math.isfinite(t["objective"]) for t in trials)
    assert len(runs) == (N_TRIALS + 1) * REPEATS
    assert (sweep["status"], sweep["n_trials"], sweep["n_runs"]) == ("completed", N_TRIALS + 1, len(runs))


@pytest.mark.parametrize("sampler, backend", CASES)
def test_the_optuna_study_lives_in_the_same_database(sampled, sampler, backend):
    url = sampled(sampler, backend)
    with open_store(url, create=False) as store:
        trials = store.trials(f"sampled-{sampler}")

    study = optuna.load_study(study_name=f"sampled-{sampler}", storage=url)

    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == N_TRIALS + 1
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    by_number = {t.number: t for t in study.trials}
    for row in trials:
        frozen = by_number[row["optuna_trial_id"]]
        assert frozen.value == pytest.approx(row["objective"], rel=1e-12)
        if row["trial"] == 0:
            assert frozen.user_attrs.get(BASELINE_USER_ATTR) is True and frozen.params == {}
        else:
            assert frozen.params["placement"] == row["placement"]
            for site in row["params"]:
                assert frozen.params[f"{site['placement']}.std"] == pytest.approx(site["std"], rel=1e-12)
    assert sorted(row["optuna_trial_id"] for row in trials) == list(range(N_TRIALS + 1))


@pytest.mark.postgres
def test_the_same_seed_proposes_the_same_trials_on_either_backend(sampled):
    def proposals(url):
        with open_store(url, create=False) as store:
            return [(t["trial"], json.dumps(t["params"]), t["objective"]) for t in store.trials("sampled-tpe")]

    assert proposals(sampled("tpe", "postgresql")) == proposals(sampled("tpe", "sqlite"))


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_rerun_reproduces_a_sampled_trial(sampled, sampler, sweeper_cli):
    url = sampled(sampler, "sqlite")

    result = sweeper_cli("rerun", f"sampled-{sampler}", N_TRIALS, "--db", url, "--format", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["repeat"] for r in rows] == list(range(REPEATS))
    assert all(r["same"] is True for r in rows)


def test_a_resumed_random_sweep_proposes_what_an_uninterrupted_one_does(sampled, tmp_path, sweeper_cli, monkeypatch):
    with open_store(sampled("random", "sqlite"), create=False) as store:
        uninterrupted = [(t["trial"], t["label"]) for t in store.trials("sampled-random")]
    space = tmp_path / "space.yaml"
    space.write_text(SPACE_YAML.format(sampler="random"))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    save_runs = Store.save_runs
    calls = []

    def interrupted_on_the_third_pack(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return save_runs(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_runs", interrupted_on_the_third_pack)
    assert sweeper_cli("run", space, "--db", url).exit_code == 130
    monkeypatch.undo()

    resumed = sweeper_cli("run", space, "--db", url)

    assert resumed.exit_code == 0, resumed.stderr
    with open_store(url, create=False) as store:
        trials = store.trials("sampled-random")
    assert len(trials) == N_TRIALS + 1
    assert [(t["trial"], t["label"]) for t in trials] == uninterrupted
