"""A sweep's Optuna study says what sweeper knows: ``optuna.load_study`` gives the trials, parameters and
values ``sweeper trials`` shows, the metric's name, each trial's label, runs, mean and interval, and its
mean validation curve; the trials the driver writes in bulk are what Optuna's own ask and tell write."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

REPEATS, EPOCHS, LOG_EVERY = 3, 20, 10
SPACE_YAML = """\
name: study-{sampler}
seed: 4
repeats: 3
task: {{dataset: circles, n_train: 30, hidden: [8], epochs: 20, log_every: 10}}
search:
{search}
"""
SEARCHES = {
    "grid": "  grid: {placement: [input, pre_activation], std: [0.01, 0.3], schedule: [constant, annealed]}",
    "tpe": "  sampler: tpe\n  n_trials: 3\n  space: {placement: [input, weights], std: {log_uniform: [0.001, 0.3]}}",
}
CASES = [("grid", "sqlite"), ("tpe", "sqlite"), pytest.param("grid", "postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def swept(swept_once):
    """``swept(sampler, backend)``: the URL of a database holding the finished sweep ``study-<sampler>``."""
    return lambda sampler, backend: swept_once(SPACE_YAML.format(sampler=sampler, search=SEARCHES[sampler]), backend)


@pytest.mark.parametrize("sampler, backend", CASES)
def test_load_study_gives_what_sweeper_trials_shows(swept, sweeper_cli, sampler, backend):
    url = swept(sampler, backend)
    listed = sweeper_cli("trials", f"study-{sampler}", "--db", url, "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)

    study = optuna.load_study(study_name=f"study-{sampler}", storage=url)

    assert study.metric_names == ["val_accuracy"]
    assert sorted(t.number for t in study.trials) == sorted(row["optuna_trial_id"] for row in rows)
    by_number = {t.number: t for t in study.trials}
    widths = []
    for row in rows:
        trial = by_number[row["optuna_trial_id"]]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.value == row["objective"]
        assert trial.user_attrs["label"] == row["label"]
        assert trial.user_attrs["n_runs"] == row["n_runs"] == REPEATS
        assert trial.user_attrs["mean"] == row["objective"]
        low, high = trial.user_attrs["ci"]
        assert low <= row["objective"] <= high  # [m, m] where every repeat scored the same
        widths.append(high - low)
        # The mean validation curve over the repeats: at each logged epoch, ending at the objective.
        assert sorted(trial.intermediate_values) == list(range(LOG_EVERY, EPOCHS + 1, LOG_EVERY))
        assert trial.intermediate_values[EPOCHS] == pytest.approx(row["objective"], rel=1e-12)
        if sampler == "grid" or row["trial"] > 0:  # a sampled sweep's baseline is outside the sampled space
            assert trial.params["placement"] == row["placement"]
        if sampler == "grid":
            assert trial.params["std"] == (row["std"] or 0.0)
            assert trial.params["schedule"] == (row["schedule"] or "none")
        elif row["trial"] > 0:
            (site,) = row["params"]
            assert trial.params[f"{site['placement']}.std"] == site["std"]
    assert max(widths) > 0  # the intervals are real intervals, not the mean twice


class _Replay(optuna.samplers.BaseSampler):
    """Answers each trial's suggest calls with the parameters of the same-numbered trial of another study."""

    def __init__(self, trials):
        self.params = {t.number: t.params for t in trials}

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.params[trial.number][param_name]


def _rebuilt(trials, url: str, name: str, metric_names) -> list:
    """The same trials made by Optuna's own ask, suggest, report, set_user_attr and tell, in ``url``."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize", sampler=_Replay(trials))
    study.set_metric_names(metric_names)
    for frozen in trials:
        trial = study.ask()
        for param, distribution in frozen.distributions.items():
            if isinstance(distribution, CategoricalDistribution):
                trial.suggest_categorical(param, distribution.choices)
            else:
                trial.suggest_float(param, distribution.low, distribution.high, log=distribution.log)
        for step, value in frozen.intermediate_values.items():
            trial.report(value, step)
        for key, value in frozen.user_attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, frozen.value)
    return optuna.load_study(study_name=name, storage=url).trials


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_grids_bulk_written_trials_are_what_optunas_ask_and_tell_write(swept, request, tmp_path, backend):
    url = swept("grid", backend)
    stored = optuna.load_study(study_name="study-grid", storage=url)
    other = f"sqlite:///{tmp_path / 'rebuilt.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")()

    rebuilt = _rebuilt(stored.trials, other, "study-grid", stored.metric_names)

    assert len(stored.trials) == len(rebuilt) == 9
    fields = ("number", "state", "values", "params", "distributions", "user_attrs", "system_attrs")
    for ours, theirs in zip(stored.trials, rebuilt):
        assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
        assert list(ours.params) == list(theirs.params)  # in the order they were suggested
        assert ours.intermediate_values == theirs.intermediate_values
        assert all(math.isfinite(v) for v in ours.intermediate_values.values())
        assert ours.datetime_start <= ours.datetime_complete
    other_study = optuna.load_study(study_name="study-grid", storage=other)
    assert (stored.metric_names, stored.directions) == (other_study.metric_names, other_study.directions)


def test_a_completed_sweep_records_each_configurations_verdict_in_the_study(swept, sweeper_cli, tmp_path):
    url = swept("grid", "sqlite")
    study = optuna.load_study(study_name="study-grid", storage=url)  # as the sweep left it: no report yet
    reported = sweeper_cli("report", "study-grid", "--db", url, "--format", "json")
    assert reported.exit_code == 0, reported.stderr
    configs = json.loads(reported.stdout)["configs"]
    with_numbers = json.loads(sweeper_cli("trials", "study-grid", "--db", url, "--format", "json").stdout)
    optuna_number = {row["trial"]: row["optuna_trial_id"] for row in with_numbers}

    verdicts = {t.number: t.user_attrs["verdict"] for t in study.trials}
    assert verdicts == {optuna_number[c["trial"]]: c["verdict"] for c in configs}
    assert verdicts[optuna_number[0]] == "baseline"
    assert all(t.user_attrs["label"] for t in study.trials)  # the attributes the run wrote are kept
