"""The Optuna adapter: configurations drawn by Optuna's samplers from a random/TPE space (moved here from
tests/test_space.py with the adapter), and a grid's parameters as Optuna's plots read them."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from sweeper.driver._optuna import GridParams, enqueue_baseline, suggest
from sweeper.errors import SpaceError
from sweeper.space import load_space, parse_space

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
SOURCE = "search_spaces/x.yaml"
CASE_STUDY = """\
name: case
task: {dataset: circles, n_val: 0}
search:
  configs:
    - {placement: none}
    - {placement: input, kind: gaussian, std: 0.01}
    - {placement: pre_activation, kind: gaussian, std: 0.1}
"""
TPE = """\
name: tpe
task: {dataset: circles, epochs: 10}
search:
  sampler: tpe
  n_trials: 20
  space:
    placement: [input, pre_activation, targets, [input, pre_activation]]
    kind: [gaussian, multiplicative, flip]
    std: {log_uniform: [1e-3, 1]}
    schedule: [constant, annealed]
"""


def sweep(search: str, task: str = "{dataset: circles}") -> str:
    return f"name: t\ntask: {task}\nsearch:\n{search}"


def parse(text: str):
    return parse_space(text, SOURCE)


def test_suggest_draws_valid_configurations_from_a_real_tpe_study():
    spec = parse(TPE)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction=spec.direction)
    enqueue_baseline(study)
    seen = []
    for _ in range(spec.search.n_trials):
        trial = study.ask()
        config = suggest(spec, trial)
        seen.append(config)
        study.tell(trial, float(len(config)))
    assert seen[0] == ()
    for config in seen[1:]:
        assert 1 <= len(config) <= 2
        for site in config:
            assert 1e-3 <= site.std <= 1
            assert (site.kind == "flip") == (site.placement == "targets")
    assert len({"+".join(site.placement for site in c) for c in seen[1:]}) >= 3
    params = study.trials[1].params
    assert "placement" in params
    if params["placement"] != "targets":
        assert f"{params['placement'].split('+')[0]}.kind" in params


def test_suggest_from_random_sampler_is_reproducible():
    spec = load_space(SPACES / "tpe_example.yaml")

    def draw():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        return [suggest(spec, study.ask()) for _ in range(5)]

    assert draw() == draw()


def test_suggest_draws_std_min_and_relative_where_they_apply():
    spec = parse(
        sweep(
            "  sampler: random\n  n_trials: 30\n  space: {placement: [input, pre_activation], "
            "kind: [gaussian, dropout], std: {uniform: [0.2, 0.5]}, schedule: [constant, cosine], "
            "std_min: {uniform: [0, 0.1]}, relative: [false, true]}\n",
            "{dataset: circles, scaling: none}",
        )
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sites = [site for _ in range(30) for site in suggest(spec, study.ask())]
    assert {s.kind for s in sites} == {"gaussian", "dropout"}
    assert all(s.std_min == 0 for s in sites if s.schedule == "constant")
    assert any(0 < s.std_min <= 0.1 for s in sites if s.schedule == "cosine")
    assert any(s.relative for s in sites)
    assert all(s.placement == "input" and s.kind == "gaussian" for s in sites if s.relative)


def test_a_grid_has_no_space_to_suggest_from():
    with pytest.raises(SpaceError, match="grid_configs"):
        suggest(parse(CASE_STUDY), optuna.create_study().ask())


def grid(search: str):
    return parse(sweep(search)).grid_configs()[0]


def test_a_single_site_grid_names_its_parameters_plainly_with_the_grids_values():
    configs = grid("  grid: {placement: [input, weights], std: [0.001, 0.01, 0.1], schedule: [constant, annealed]}\n")
    params = GridParams(configs)

    # kind and gamma have one value wherever there is noise: left out
    assert params.distributions == {
        "placement": CategoricalDistribution(("none", "input", "weights")),
        "std": FloatDistribution(0.0, 0.1),
        "schedule": CategoricalDistribution(("none", "constant", "annealed")),
    }
    assert params.params(configs[0]) == {"placement": "none", "std": 0.0, "schedule": "none"}
    assert [params.params(c) for c in configs[1:]] == [
        {"placement": p, "std": s, "schedule": sch}
        for p in ("input", "weights")
        for s in (0.001, 0.01, 0.1)
        for sch in ("constant", "annealed")
    ]


def test_positive_values_spanning_a_decade_are_a_log_range_and_words_keep_the_files_order():
    configs = grid("  grid: {placement: [input], std: [0.1], schedule: annealed, gamma: [0.3, 0.55, 3.0]}\n")
    params = GridParams(configs)

    assert params.distributions["gamma"] == FloatDistribution(0.3, 3.0, log=True)
    assert "gamma" not in params.params(configs[0])  # the baseline anneals nothing
    assert params.distributions["placement"] == CategoricalDistribution(("none", "input"))


def test_a_grid_of_combined_placements_names_each_placements_noise():
    configs = grid(
        "  configs:\n    - {placement: [input, weights], std: [0.1, 0.2]}\n"
        "    - {placement: weights, std: 0.3, kind: multiplicative}\n"
    )
    params = GridParams(configs)

    # input's noise is the same wherever there is some: placement says where
    assert params.params(configs[1]) == {"placement": "input+weights", "weights.kind": "gaussian", "weights.std": 0.2}
    assert params.params(configs[2]) == {"placement": "weights", "weights.kind": "multiplicative", "weights.std": 0.3}


def test_a_grid_rows_distribution_does_not_grow_with_the_grid():
    def rows(n_stds: int) -> list[dict]:
        stds = ", ".join(f"{(i + 1) * 1e-4:.4f}" for i in range(n_stds))
        configs = grid(f"  grid: {{placement: [input, pre_activation], std: [{stds}]}}\n")
        return GridParams(configs).rows(configs[-1])

    small, large = rows(2), rows(5_000)

    assert [r["param_name"] for r in small] == [r["param_name"] for r in large] == ["placement", "std"]

    # Only the std range's upper end differs: 0.0002 and 0.5.
    def without_high(row):
        distribution = json.loads(row["distribution_json"])
        distribution["attributes"].pop("high", None)
        return distribution

    assert [without_high(r) for r in small] == [without_high(r) for r in large]
    assert max(len(r["distribution_json"]) for r in large) < 120
