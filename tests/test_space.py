"""The search-space format: shipped files validate, bad input fails with one precise line, grids expand."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.errors import SpaceError
from sweeper.noise.spec import DEFAULT_GAMMA, NoiseSpec
from sweeper.space import MAX_CONFIGURATIONS, SweepSpec, load_space, parse_space
from sweeper.space.reading import _constraints
from sweeper.tasks.spec import OptimizerSpec, TaskSpec

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SOURCE = "search_spaces/x.yaml"

CASE_STUDY = """\
name: case
seed: 1
repeats: 30
metric: accuracy
task:
  dataset: circles
  dataset_seed: 1
  n_train: 30
  n_val: 0
  hidden: [500]
  optimizer: {name: adam, lr: 0.001}
  epochs: 4000
search:
  sampler: grid
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


def sweep(search: str, task: str = "{dataset: circles}", extra: str = "") -> str:
    """A small sweep text with the given search section (indented YAML under search:)."""
    return f"name: t\ntask: {task}\n{extra}search:\n{search}"


def parse(text: str):
    return parse_space(text, SOURCE)


# --- shipped files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_search_space_validates(path):
    spec = load_space(path)
    if spec.search.sampler == "grid":
        configs, _ = spec.grid_configs()
        assert configs[0] == () and len(configs) > 1
    else:
        assert spec.search.n_trials and spec.search.space is not None


def test_the_shipped_files_cover_the_issue():
    names = {p.name for p in SPACES.glob("*.yaml")}
    assert {
        "seed_case_study.yaml",
        "seed_extensions.yaml",
        "full_grid.yaml",
        "tpe_example.yaml",
        "multi_task.yaml",
    } <= names
    assert names & {"regression_friedman.yaml", "regression_diabetes.yaml"}
    assert names & {"digits_cnn.yaml", "digits_rnn.yaml"}


def test_seed_case_study_is_the_tutorial():
    spec = load_space(SPACES / "seed_case_study.yaml")
    task = spec.tasks["circles"]
    assert (spec.name, spec.seed, spec.repeats, spec.metric) == ("seed-case-study", 1, 30, "test_accuracy")
    assert (task.dataset_seed, task.n_train, task.n_val, task.scaling, task.epochs) == (1, 30, 0, "none", 4000)
    assert (task.hidden, task.activation, task.init, task.optimizer.lr) == ((500,), "relu", "keras", 0.001)
    configs, notes = spec.grid_configs()
    assert configs == [
        (),
        (NoiseSpec("input", "gaussian", 0.01),),
        (NoiseSpec("pre_activation", "gaussian", 0.1),),
        (NoiseSpec("post_activation", "gaussian", 0.1),),
    ]
    assert notes == []
    assert spec.source_text == (SPACES / "seed_case_study.yaml").read_text()


def test_seed_extensions_hold_repeats_a_hidden_std_grid_and_combined_noise():
    spec = load_space(SPACES / "seed_extensions.yaml")
    configs, notes = spec.grid_configs()
    hidden = [c for c in configs if len(c) == 1 and c[0].placement == "pre_activation"]
    combined = [c for c in configs if len(c) == 2]
    assert spec.repeats == 30 and configs[0] == ()
    assert sorted(c[0].std for c in hidden) == [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    assert (NoiseSpec("input", std=0.01), NoiseSpec("pre_activation", std=0.1)) in combined
    assert len(configs) == 1 + 3 + 4 + 2 * 7 - 2
    assert notes == ["dropped 2 duplicate configurations"]


def test_multi_task_keeps_task_order_and_names():
    spec = load_space(SPACES / "multi_task.yaml")
    assert list(spec.tasks) == ["circles", "moons", "breast_cancer", "wine", "iris"]
    assert spec.tasks["breast_cancer"].n_train == 60 and spec.tasks["moons"].hidden == (500,)


# --- bad input: one line naming the file, the key path and what is allowed ---------------------------

ONE_CONFIG = "search: {configs: [{placement: input, std: 0.1}]}\n"


def bad(case_id: str, text: str, where: str, allowed: str):
    """One row of the table: the text, what the message must say about where, and about what is allowed."""
    return pytest.param(text, where, allowed, id=case_id)


BAD = [
    bad(
        "typo_in_task_key", CASE_STUDY.replace("hidden:", "hiden:"), "task.hiden: unknown key", "did you mean 'hidden'?"
    ),
    bad(
        "typo_in_nested_key", CASE_STUDY.replace("lr:", "lrr:"), "task.optimizer.lrr: unknown key", "did you mean 'lr'?"
    ),
    bad("typo_in_top_key", CASE_STUDY.replace("repeats:", "repeat:"), "repeat: unknown key", "did you mean 'repeats'?"),
    bad(
        "typo_in_dataset",
        CASE_STUDY.replace("dataset: circles", "dataset: circels"),
        "task.dataset: 'circels' is not allowed",
        "did you mean 'circles'?",
    ),
    bad(
        "typo_in_placement",
        sweep("  grid:\n    placement: [input, weights, pre_activaton]\n    std: [0.1]\n"),
        "search.grid.placement[2]: 'pre_activaton' is not allowed; allowed: input, pre_activation,",
        "(did you mean 'pre_activation'?)",
    ),
    bad(
        "baseline_in_grid",
        sweep("  grid: {placement: [none, input], std: 0.1}\n"),
        "search.grid.placement[0]: 'none' is not allowed (the baseline is always run",
        "allowed: input,",
    ),
    bad(
        "typo_in_kind",
        CASE_STUDY.replace("kind: gaussian, std: 0.01", "kind: gausian, std: 0.01"),
        "search.configs[1].kind: 'gausian' is not allowed",
        "did you mean 'gaussian'?",
    ),
    bad(
        "typo_in_batch_size",
        CASE_STUDY.replace("epochs: 4000", "epochs: 4000\n  batch_size: fulll"),
        "task.batch_size: 'fulll' is not allowed; allowed: an integer from 1 to 1,000,000 or full",
        "did you mean 'full'?",
    ),
    bad(
        "negative_std",
        CASE_STUDY.replace("std: 0.01", "std: -0.01"),
        "search.configs[1].std: -0.01 is not allowed",
        "a finite number >= 0",
    ),
    bad(
        "flip_on_input",
        CASE_STUDY.replace("kind: gaussian, std: 0.01", "kind: flip, std: 0.01"),
        "search.configs[1]: kind 'flip'",
        "only to placement 'targets' of classification tasks",
    ),
    bad(
        "gaussian_on_classification_targets",
        sweep("  configs: [{placement: targets, kind: gaussian, std: 0.1}]\n"),
        "search.configs[0]: placement 'targets' with kind 'gaussian'",
        "take only kind 'flip'",
    ),
    bad(
        "flip_on_regression_targets",
        sweep("  configs: [{placement: targets, kind: flip, std: 0.1}]\n", "{dataset: diabetes}"),
        "search.configs[0]: kind 'flip' on regression task 'diabetes'",
        "classification tasks",
    ),
    bad(
        "flip_probability_above_one",
        sweep("  configs: [{placement: targets, std: 1.5}]\n"),
        "search.configs[0]:",
        "std is a flip probability that must be in [0, 1]",
    ),
    bad(
        "std_list_length_mismatch",
        sweep("  configs: [{placement: [input, weights], std: [0.1, 0.2, 0.3]}]\n"),
        "search.configs[0].std: 3 values for 2 placements",
        "one per site",
    ),
    bad(
        "placement_twice",
        sweep("  configs: [{placement: [input, input], std: 0.1}]\n"),
        "search.configs[0].placement:",
        "appears twice",
    ),
    bad(
        "missing_std",
        sweep("  configs: [{placement: input}]\n"),
        "search.configs[0].std: required key missing",
        "noise size",
    ),
    bad(
        "baseline_with_std",
        sweep("  configs: [{placement: none, std: 0.1}]\n"),
        "search.configs[0].std:",
        "takes no other keys",
    ),
    bad(
        "gamma_without_annealing",
        sweep("  configs: [{placement: input, std: 0.1, gamma: 0.5}]\n"),
        "search.configs[0].gamma:",
        "only with schedule annealed",
    ),
    bad(
        "unknown_sampler",
        CASE_STUDY.replace("sampler: grid", "sampler: tpf"),
        "search.sampler: 'tpf' is not allowed",
        "allowed: grid, random, tpe (did you mean 'tpe'?)",
    ),
    bad(
        "tpe_without_n_trials", TPE.replace("  n_trials: 20\n", ""), "search.n_trials: required key missing", "e.g. 60"
    ),
    bad(
        "tpe_zero_trials",
        TPE.replace("n_trials: 20", "n_trials: 0"),
        "search.n_trials: 0 is not allowed",
        "an integer from 1 to 99,999",
    ),
    bad(
        "tpe_without_space", sweep("  sampler: random\n  n_trials: 5\n"), "search.space: required key missing", "random"
    ),
    bad(
        "tpe_with_grid",
        sweep("  sampler: tpe\n  n_trials: 5\n  grid: {placement: input, std: 0.1}\n"),
        "search.grid: applies only to sampler grid",
        "space:",
    ),
    bad(
        "grid_with_n_trials",
        CASE_STUDY.replace("sampler: grid", "sampler: grid\n  n_trials: 3"),
        "search.n_trials: applies only to samplers random and tpe",
        "every configuration",
    ),
    bad("grid_without_configs", sweep("  sampler: grid\n"), "search.configs: required key missing", "grid:"),
    bad("log_uniform_from_zero", TPE.replace("[1e-3, 1]", "[0, 1]"), "search.space.std.log_uniform[0]:", "low > 0"),
    bad(
        "range_typo",
        TPE.replace("log_uniform", "log_unifrom"),
        "search.space.std.log_unifrom: unknown key",
        "did you mean 'log_uniform'?",
    ),
    bad(
        "flip_range_above_one",
        TPE.replace("[1e-3, 1]", "[1e-3, 3]"),
        "search.space.std: reaches 3",
        "for kind 'flip' std is a flip probability that must be in [0, 1]; narrow std",
    ),
    bad(
        "space_kind_fits_no_placement",
        TPE.replace("targets, ", ""),
        "search.space.kind[2]: kind 'flip' fits no placement",
        "targets",
    ),
    bad(
        "grid_all_skipped",
        sweep("  grid: {placement: input, kind: flip, std: [0.1]}\n"),
        "search.grid: every combination is skipped",
        "kind 'flip'",
    ),
    bad(
        "grid_site_list_fits_no_placement",
        sweep("  grid: {placement: [input], std: [[0.1, 0.2]]}\n"),
        "search.grid.std[0]: 2 values",
        "no placement of this grid has 2 sites",
    ),
    bad(
        "bad_yaml_syntax",
        CASE_STUDY.replace("n_train: 30", "n_train: 30: 3"),
        "line 8, column 14: invalid YAML",
        "mapping values",
    ),
    bad(
        "key_given_twice",
        CASE_STUDY.replace("  n_train: 30", "  n_train: 30\n  n_train: 40"),
        "line 9, column 3",
        "the key 'n_train' is given twice",
    ),
    bad(
        "metric_not_fitting_classification",
        CASE_STUDY.replace("metric: accuracy", "metric: mse"),
        "metric: 'mse' is not allowed for classification task 'circles'",
        "allowed: accuracy, loss, val_accuracy, val_loss, train_accuracy, train_loss",
    ),
    bad(
        "metric_not_fitting_regression",
        sweep("  configs: [{placement: input, std: 0.1}]\n", "{dataset: diabetes}", "metric: accuracy\n"),
        "metric: 'accuracy' is not allowed for regression task 'diabetes'",
        "mse, r2",
    ),
    bad(
        "metric_on_the_test_part",
        CASE_STUDY.replace("metric: accuracy", "metric: test_accuracy"),
        "metric: 'test_accuracy' would select on the test part",
        "write metric: accuracy",
    ),
    bad(
        "val_metric_without_validation",
        CASE_STUDY.replace("metric: accuracy", "metric: val_accuracy"),
        "metric: 'val_accuracy' needs a validation part",
        "write metric: accuracy",
    ),
    bad(
        "validation_on_some_tasks_only",
        "name: t\ntasks: [{dataset: circles, n_val: 0}, {dataset: moons}]\n" + ONE_CONFIG,
        "metric: tasks circles have no validation part (n_val: 0) but the others do",
        "give every task n_val: 0",
    ),
    bad("missing_task", "name: t\n" + ONE_CONFIG, "task: required key missing", "tasks:"),
    bad(
        "both_task_and_tasks",
        "name: t\ntask: {dataset: circles}\ntasks: [{dataset: moons}]\n" + ONE_CONFIG,
        "tasks: give either task:",
        "not both",
    ),
    bad(
        "duplicate_task_names",
        "name: t\ntasks: [{dataset: moons}, {dataset: moons}]\n" + ONE_CONFIG,
        "tasks[1].name: 'moons' names two tasks",
        "its own name",
    ),
    bad(
        "typo_in_tasks_list",
        "name: t\ntasks: [{dataset: moons, epoch: 3}]\n" + ONE_CONFIG,
        "tasks[0].epoch: unknown key",
        "did you mean 'epochs'?",
    ),
    bad("cnn_without_images", CASE_STUDY.replace("hidden: [500]", "model: cnn"), "task: model 'cnn' needs", "'digits'"),
    bad(
        "repeats_zero",
        CASE_STUDY.replace("repeats: 30", "repeats: 0"),
        "repeats: 0 is not allowed",
        "allowed: an integer from 1 to 10,000",
    ),
    bad(
        "negative_seed",
        CASE_STUDY.replace("seed: 1", "seed: -1"),
        "seed: -1 is not allowed",
        "allowed: an integer from 0 to 9,223,372,036,854,775,807",
    ),
    bad(
        "bad_name",
        CASE_STUDY.replace("name: case", "name: my sweep"),
        "name: 'my sweep' is not allowed",
        "letters, digits",
    ),
    bad("missing_name", CASE_STUDY.replace("name: case\n", ""), "name: required key missing", ""),
    bad(
        "pack_size_zero",
        CASE_STUDY + "pack_size: 0\n",
        "pack_size: 0 is not allowed",
        "allowed: an integer from 1 to 16,384",
    ),
    bad("empty_file", "", "the file is empty", "name:"),
    bad("not_a_mapping", "- 1\n", "expected a mapping with keys name,", "got [1]"),
]


@pytest.mark.parametrize("text, where, allowed", BAD)
def test_bad_input_fails_with_one_line_naming_file_key_and_what_is_allowed(text, where, allowed):
    with pytest.raises(SpaceError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: ")
    assert where in message
    assert allowed in message


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(SpaceError, match=r"^.*nope\.yaml: no such search-space file$"):
        load_space(tmp_path / "nope.yaml")


def test_numbers_in_exponent_form_are_numbers():
    spec = parse(sweep("  configs: [{placement: input, std: 1e-2}]\n"))
    assert spec.grid_configs()[0][1] == (NoiseSpec("input", "gaussian", 0.01),)


# --- grid expansion ----------------------------------------------------------------------------------


def test_the_issues_full_grid_on_a_classification_task_skips_non_flip_targets():
    spec = parse(
        sweep(
            "  grid:\n"
            "    placement: [input, pre_activation, post_activation, weights, gradients, targets]\n"
            "    kind: [gaussian, multiplicative, uniform]\n"
            "    std: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]\n"
            "    schedule: [constant, annealed]\n"
        )
    )
    configs, notes = spec.grid_configs()
    # 5 placements take all 3 kinds; classification targets take only flip, which is not in the grid.
    assert len(configs) == 1 + 5 * 3 * 7 * 2
    assert len(set(configs)) == len(configs)
    assert len(notes) == 3
    assert all(n.startswith("skipped 14 combinations: placement 'targets' with kind") for n in notes)


def test_full_grid_with_flip_adds_the_targets_combinations():
    spec = load_space(SPACES / "full_grid.yaml")
    configs, notes = spec.grid_configs()
    assert len(configs) == 1 + 5 * 3 * 7 * 2 + 1 * 7 * 2
    flips = [c for c in configs if c and c[0].kind == "flip"]
    assert {c[0].placement for c in flips} == {"targets"} and len(flips) == 14
    assert len(notes) == 5 + 3  # flip at 5 other placements, 3 kinds at the targets


def test_regression_targets_take_additive_noise_but_not_flip():
    spec = parse(
        sweep(
            "  grid: {placement: [targets], kind: [gaussian, uniform, multiplicative, flip], std: [0.1, 0.2]}\n",
            "{dataset: diabetes}",
        )
    )
    configs, notes = spec.grid_configs()
    assert len(configs) == 1 + 3 * 2
    assert notes == [
        "skipped 2 combinations: kind 'flip' on regression task 'diabetes': "
        "flip applies only to placement 'targets' of classification tasks"
    ]
    assert spec.metric == "val_mse" and not spec.higher_is_better


def test_baseline_is_first_and_std_zero_duplicates_of_it_are_dropped():
    spec = parse(
        sweep(
            "  configs: [{placement: input, std: 0.1}, {placement: none}]\n"
            "  grid: {placement: [input, weights], kind: [gaussian, uniform], std: [0, 0.1]}\n"
        )
    )
    configs, notes = spec.grid_configs()
    assert configs[0] == ()
    assert configs.count(()) == 1
    # input/weights x gaussian/uniform at 0.1, of which input gaussian 0.1 is the explicit one
    assert configs[1:] == [
        (NoiseSpec("input", "gaussian", 0.1),),
        (NoiseSpec("input", "uniform", 0.1),),
        (NoiseSpec("weights", "gaussian", 0.1),),
        (NoiseSpec("weights", "uniform", 0.1),),
    ]
    assert notes == ["dropped 4 combinations with std 0: the baseline", "dropped 1 duplicate configuration"]


def test_explicit_duplicates_are_dropped_keeping_the_first():
    spec = parse(
        sweep(
            "  configs:\n"
            "    - {placement: weights, std: 0.1}\n"
            "    - {placement: input, std: 0.1}\n"
            "    - {placement: weights, kind: gaussian, std: 0.1, schedule: constant}\n"
        )
    )
    configs, _ = spec.grid_configs()
    assert [c[0].placement for c in configs[1:]] == ["weights", "input"]


def test_annealed_grid_multiplies_gamma_only_for_annealed_schedules():
    spec = parse(
        sweep("  grid: {placement: gradients, std: [0.1], schedule: [constant, annealed], gamma: [0.55, 1.0]}\n")
    )
    configs, _ = spec.grid_configs()
    assert configs[1:] == [
        (NoiseSpec("gradients", std=0.1),),
        (NoiseSpec("gradients", std=0.1, schedule="annealed", gamma=0.55),),
        (NoiseSpec("gradients", std=0.1, schedule="annealed", gamma=1.0),),
    ]


# --- combined placements -----------------------------------------------------------------------------


def test_combined_placement_takes_a_std_per_site_in_placement_order():
    spec = parse(
        sweep("  configs: [{placement: [pre_activation, input], std: [0.1, 0.01], schedule: [annealed, constant]}]\n")
    )
    (config,) = spec.grid_configs()[0][1:]
    assert config == (
        NoiseSpec("input", "gaussian", 0.01),
        NoiseSpec("pre_activation", "gaussian", 0.1, "annealed", DEFAULT_GAMMA),
    )


def test_combined_placement_scalar_std_applies_to_every_site_and_zero_sites_vanish():
    spec = parse(
        sweep(
            "  configs:\n"
            "    - {placement: [input, weights], std: 0.05, kind: multiplicative}\n"
            "    - {placement: [input, weights], std: [0, 0.05], kind: multiplicative}\n"
        )
    )
    configs, _ = spec.grid_configs()
    assert configs[1] == (NoiseSpec("input", "multiplicative", 0.05), NoiseSpec("weights", "multiplicative", 0.05))
    assert configs[2] == (NoiseSpec("weights", "multiplicative", 0.05),)


def test_grid_placement_elements_may_be_combined_placements_with_per_site_stds():
    spec = parse(sweep("  grid:\n    placement: [input, [input, pre_activation]]\n    std: [0.1, [0.01, 0.1]]\n"))
    configs, notes = spec.grid_configs()
    assert configs[1:] == [
        (NoiseSpec("input", std=0.1),),
        (NoiseSpec("input", std=0.1), NoiseSpec("pre_activation", std=0.1)),
        (NoiseSpec("input", std=0.01), NoiseSpec("pre_activation", std=0.1)),
    ]
    assert notes == ["skipped 1 combination: std [0.01, 0.1] has 2 values for placement 'input' of 1 site"]


def test_targets_default_to_flip_on_classification_and_gaussian_on_regression():
    classification = parse(sweep("  configs: [{placement: targets, std: 0.1}]\n"))
    regression = parse(sweep("  configs: [{placement: targets, std: 0.1}]\n", "{dataset: friedman1}"))
    assert classification.grid_configs()[0][1] == (NoiseSpec("targets", "flip", 0.1),)
    assert regression.grid_configs()[0][1] == (NoiseSpec("targets", "gaussian", 0.1),)


# --- tasks and metric --------------------------------------------------------------------------------


def test_single_task_is_named_after_its_dataset_and_tasks_take_names():
    single = parse(CASE_STUDY)
    multi = parse(
        "name: t\ntasks: [{dataset: moons}, {name: moons-big, dataset: moons, n_samples: 400}]\n" + ONE_CONFIG
    )
    assert list(single.tasks) == ["circles"]
    assert list(multi.tasks) == ["moons", "moons-big"] and multi.tasks["moons-big"].n_samples == 400


def test_metric_defaults_and_direction():
    assert parse(sweep("  configs: [{placement: input, std: 0.1}]\n")).metric == "val_accuracy"
    mixed = parse("name: t\ntasks: [{dataset: circles}, {dataset: diabetes}]\n" + ONE_CONFIG)
    assert mixed.metric == "val_loss" and mixed.direction == "minimize"
    r2 = parse(sweep("  configs: [{placement: input, std: 0.1}]\n", "{dataset: diabetes}", "metric: r2\n"))
    assert r2.higher_is_better and r2.direction == "maximize" and r2.metric == "val_r2"


def test_a_bare_metric_selects_on_validation_or_on_the_test_part_only_without_one():
    configs = "  configs: [{placement: input, std: 0.1}]\n"
    assert parse(sweep(configs, "{dataset: circles}", "metric: accuracy\n")).metric == "val_accuracy"
    assert parse(sweep(configs, "{dataset: circles}", "metric: val_loss\n")).metric == "val_loss"
    without = parse(sweep(configs, "{dataset: circles, n_val: 0}", "metric: accuracy\n"))
    assert without.metric == "test_accuracy" and without.selects_on_test
    assert parse(sweep(configs, "{dataset: circles}", "metric: train_loss\n")).metric == "train_loss"


def test_a_stored_sweep_of_an_earlier_version_may_name_a_test_metric():
    old = CASE_STUDY.replace("metric: accuracy", "metric: test_accuracy").replace("  n_val: 0\n", "")
    assert parse_space(old, SOURCE, stored=True).metric == "test_accuracy"


def test_mixed_problems_skip_targets_that_fit_only_some_tasks():
    spec = parse(
        "name: t\ntasks: [{dataset: circles}, {dataset: diabetes}]\n"
        "search: {grid: {placement: [input, targets], kind: [gaussian, flip], std: [0.1]}}\n"
    )
    configs, notes = spec.grid_configs()
    assert configs == [(), (NoiseSpec("input", std=0.1),)]
    assert len(notes) == 3


# --- overrides ---------------------------------------------------------------------------------------


def test_overrides_replace_repeats_epochs_and_name_and_are_recorded():
    spec = parse(CASE_STUDY)
    quick = spec.with_overrides(repeats=2, epochs=50, name="quick")
    assert (quick.repeats, quick.tasks["circles"].epochs, quick.name) == (2, 50, "quick")
    assert quick.overrides == {"repeats": 2, "epochs": 50, "name": "quick"}
    assert quick.source_text == spec.source_text
    assert (spec.repeats, spec.tasks["circles"].epochs, spec.name, spec.overrides) == (30, 4000, "case", {})
    assert spec.with_overrides() == spec


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"repeats": 0}, "--repeats"),
        ({"epochs": -1}, "--epochs"),
        ({"repeats": 10_001}, "--repeats"),
        ({"epochs": 10**20}, "--epochs"),
        ({"name": "a b"}, "--name"),
    ],
)
def test_bad_overrides_fail_naming_the_flag(kwargs, flag):
    with pytest.raises(SpaceError, match=f"^{SOURCE}: {flag}: .* is not allowed; allowed: "):
        parse(CASE_STUDY).with_overrides(**kwargs)


# --- sizes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [SweepSpec, TaskSpec, OptimizerSpec])
def test_every_numeric_field_has_a_range(model):
    """Integers have both bounds; floats have a lower bound and refuse inf and NaN."""
    numeric = {name: _constraints(model, name) for name in model.model_fields}
    numeric = {name: c for name, c in numeric.items() if c[0] is not None}
    assert numeric, "no numeric field found: the test would prove nothing"
    for name, (kind, metadata) in numeric.items():
        low = [m for m in metadata if hasattr(m, "ge") or hasattr(m, "gt")]
        high = [m for m in metadata if hasattr(m, "le") or hasattr(m, "lt")]
        assert low, f"{model.__name__}.{name} has no lower bound"
        if kind is int:
            assert high, f"{model.__name__}.{name} has no upper bound"
        else:
            assert any(getattr(m, "allow_inf_nan", True) is False for m in metadata), (
                f"{model.__name__}.{name} accepts inf and NaN"
            )


def grid_of(n_stds: int, limit: int | None = None) -> str:
    stds = ", ".join(f"{0.01 * (i + 1):g}" for i in range(n_stds))
    cap = "" if limit is None else f"  max_configurations: {limit}\n"
    return sweep(f"{cap}  grid: {{placement: [input, pre_activation], kind: [gaussian, uniform], std: [{stds}]}}\n")


def test_a_grid_as_large_as_its_limit_is_accepted_and_one_more_is_refused():
    accepted = parse(grid_of(6, limit=25)).grid_configs()[0]  # 2 x 2 x 6 + the baseline
    assert len(accepted) == 25

    with pytest.raises(SpaceError) as info:
        parse(grid_of(6, limit=24))
    assert str(info.value) == (
        f"{SOURCE}: search: 25 configurations (search.grid: 2 placements x 2 kinds x 6 stds; and the baseline) are "
        "more than allowed; allowed: at most 24 configurations (search.max_configurations; raise it to run a larger "
        "sweep)"
    )


def test_the_default_limit_is_100000_configurations():
    assert MAX_CONFIGURATIONS == 100_000
    with pytest.raises(SpaceError, match=r"search: 100,001 configurations .* at most 100,000 configurations"):
        parse(grid_of(25_000))  # 2 x 2 x 25,000 + the baseline
    assert len(parse(grid_of(24_999)).grid_configs()[0]) == 99_997


def test_explicit_configurations_and_several_grids_count_together():
    text = sweep(
        "  max_configurations: 6\n  configs: [{placement: input, std: 0.5}, {placement: weights, std: 0.5}]\n"
        "  grid: [{placement: input, std: [0.1, 0.2]}, {placement: [input, weights], std: 0.3,"
        " schedule: [constant, annealed], gamma: [0.5, 1]}]\n"
    )
    with pytest.raises(SpaceError) as info:
        parse(text)
    assert (
        "search: 11 configurations (search.configs: 2 listed; search.grid[0]: 2 stds; search.grid[1]: 2 placements"
        " x 3 schedule and gamma choices; and the baseline)"
    ) in str(info.value)
    assert len(parse(text.replace("max_configurations: 6", "max_configurations: 11")).grid_configs()[0]) == 11


def test_sampled_trials_count_against_the_limit_with_the_baseline():
    assert parse(TPE.replace("n_trials: 20", "n_trials: 20\n  max_configurations: 21")).search.n_trials == 20
    with pytest.raises(SpaceError, match=r"search.n_trials: 20 is not allowed; allowed: an integer from 1 to 19 "):
        parse(TPE.replace("n_trials: 20", "n_trials: 20\n  max_configurations: 20"))


# --- dropout, decays, relative noise -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, where, allowed",
    [
        (
            sweep("  configs: [{placement: pre_activation, kind: dropout, std: 1.0}]\n"),
            "search.configs[0]: kind 'dropout' with std 1",
            "the dropout rate, a probability that must be in [0, 1)",
        ),
        (
            sweep("  configs: [{placement: gradients, kind: dropout, std: 0.5}]\n"),
            "search.configs[0]: kind 'dropout' on placement 'gradients'",
            "(at weights it is DropConnect)",
        ),
        (
            sweep("  grid: {placement: targets, kind: dropout, std: [0.1]}\n", "{dataset: diabetes}"),
            "search.grid: every combination is skipped",
            "kind 'dropout' on placement 'targets'",
        ),
        (
            TPE.replace("[gaussian, multiplicative, flip]", "[gaussian, dropout]").replace("targets, ", ""),
            "search.space.std: reaches 1",
            "for kind 'dropout' std is the dropout rate, a probability that must be in [0, 1)",
        ),
        (
            sweep("  configs: [{placement: input, std: 0.1, std_min: 0.01}]\n"),
            "search.configs[0].std_min:",
            "only with schedules linear and cosine",
        ),
        (
            sweep("  configs: [{placement: input, std: 0.1, schedule: linear, std_min: 0.2}]\n"),
            "search.configs[0]: std_min 0.2 with std 0.1",
            "ends at or below where it starts",
        ),
        (
            sweep("  configs: [{placement: input, std: 0.1, schedule: cosine, std_min: -1}]\n"),
            "search.configs[0].std_min: -1 is not allowed",
            "a finite number >= 0",
        ),
        (
            sweep("  configs: [{placement: pre_activation, std: 0.1, relative: true}]\n"),
            "search.configs[0]: relative gaussian noise on placement 'pre_activation'",
            "applies to kinds gaussian and uniform at placements input and targets",
        ),
        (
            sweep("  configs: [{placement: input, std: 0.1, relative: yes please}]\n"),
            "search.configs[0].relative: 'yes please' is not allowed",
            "true or false",
        ),
        (
            sweep(
                "  sampler: tpe\n  n_trials: 5\n  space: {placement: weights, std: [0.1], relative: [false, true]}\n"
            ),
            "search.space.relative:",
            "placements input and targets",
        ),
        (
            sweep(
                "  sampler: tpe\n  n_trials: 5\n  space: {placement: input, std: {uniform: [0.1, 1]}, "
                "schedule: linear, std_min: [0.05, 0.2]}\n"
            ),
            "search.space.std_min: reaches 0.2, above the smallest std 0.1",
            "at most the smallest std",
        ),
    ],
    ids=[
        "dropout_rate_one",
        "dropout_on_gradients",
        "dropout_on_targets",
        "dropout_range_reaches_one",
        "std_min_without_decay",
        "std_min_above_std",
        "negative_std_min",
        "relative_on_hidden_units",
        "relative_not_a_boolean",
        "relative_in_a_space_without_data_sites",
        "std_min_range_above_std",
    ],
)
def test_new_noise_keys_fail_with_one_line_naming_the_key_and_what_is_allowed(text, where, allowed):
    with pytest.raises(SpaceError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{SOURCE}: {where}") and allowed in message, message


def test_dropout_and_dropconnect_configurations_parse():
    spec = parse(sweep("  configs: [{placement: [pre_activation, weights], kind: dropout, std: [0.5, 0.2]}]\n"))
    (config,) = spec.grid_configs()[0][1:]
    assert config == (NoiseSpec("pre_activation", "dropout", 0.5), NoiseSpec("weights", "dropout", 0.2))


def test_decay_grid_multiplies_std_min_only_for_decaying_schedules():
    spec = parse(
        sweep("  grid: {placement: input, std: [0.2], schedule: [constant, linear, cosine], std_min: [0, 0.05]}\n")
    )
    configs, _ = spec.grid_configs()
    assert configs[1:] == [
        (NoiseSpec("input", std=0.2),),
        (NoiseSpec("input", std=0.2, schedule="linear"),),
        (NoiseSpec("input", std=0.2, schedule="linear", std_min=0.05),),
        (NoiseSpec("input", std=0.2, schedule="cosine"),),
        (NoiseSpec("input", std=0.2, schedule="cosine", std_min=0.05),),
    ]


def test_grid_counts_std_min_and_relative_choices_before_expanding():
    text = sweep(
        "  max_configurations: 4\n  grid: {placement: input, std: [0.1], schedule: [constant, linear], "
        "std_min: [0, 0.01, 0.02], relative: [false, true]}\n"
    )
    with pytest.raises(SpaceError) as info:
        parse(text)
    assert "9 configurations (search.grid: 4 schedule and std_min choices x 2 relatives; and the baseline)" in str(
        info.value
    )


def test_relative_grid_axis_skips_sites_that_have_no_features_to_scale_by():
    spec = parse(
        sweep(
            "  grid: {placement: [input, weights], std: [0.1], relative: [false, true]}\n",
            "{dataset: circles, scaling: none}",
        )
    )
    configs, notes = spec.grid_configs()
    assert configs[1:] == [
        (NoiseSpec("input", std=0.1),),
        (NoiseSpec("input", std=0.1, relative=True),),
        (NoiseSpec("weights", std=0.1),),
    ]
    assert notes == [
        "skipped 1 combination: relative gaussian noise on placement 'weights': relative noise "
        "applies to kinds gaussian and uniform at placements input and targets (σ in units of each "
        "feature's standard deviation)"
    ]


def test_relative_noise_under_standard_scaling_is_accepted_with_a_note_that_it_changes_nothing():
    spec = parse(
        sweep(
            "  configs: [{placement: [input, targets], std: 0.1, relative: true}]\n",
            "{dataset: diabetes, scaling: standard}",
        )
    )
    (config,) = spec.grid_configs()[0][1:]
    assert all(site.relative for site in config)
    assert spec.search.notes == (
        "relative input noise changes nothing on task 'diabetes': its scaling is standard, so every input feature "
        "already has standard deviation 1 on the training part",
        "relative targets noise changes nothing on task 'diabetes': with scaling standard its regression targets "
        "are standardized on the training part",
    )
    raw = parse(
        sweep("  configs: [{placement: input, std: 0.1, relative: true}]\n", "{dataset: diabetes, scaling: none}")
    )
    assert raw.search.notes == ()


def test_tpe_has_no_grid():
    with pytest.raises(SpaceError, match="suggest"):
        parse(TPE).grid_configs()
